#include "Finish.h"

#include <algorithm>

namespace llama_vlm {

const char *StopReasonName(StopReason reason) {
    switch (reason) {
        case StopReason::Eos:
            return "eos";
        case StopReason::Stop:
            return "stop";
        case StopReason::Length:
            return "length";
        case StopReason::Abort:
            return "abort";
        case StopReason::Context:
            break;
    }
    return "context";
}

StopStrings::StopStrings(std::vector<std::string> stops) {
    for (std::string &stop : stops) {
        if (!stop.empty()) stops_.push_back(std::move(stop));
    }
}

std::string StopStrings::Push(const std::string &piece) {
    if (matched_) return "";
    if (stops_.empty()) return piece;  // most requests: nothing to hold back, no copy of the held bytes
    std::string buffer = held_ + piece;
    held_.clear();
    // The held bytes hold no whole stop string, so any match ends in this piece; the earliest one wins.
    size_t first = std::string::npos;
    for (const std::string &stop : stops_) first = std::min(first, buffer.find(stop));
    if (first != std::string::npos) {
        matched_ = true;
        buffer.resize(first);
        return buffer;
    }
    const size_t keep = PartialTail(buffer);
    held_ = buffer.substr(buffer.size() - keep);
    buffer.resize(buffer.size() - keep);
    return buffer;
}

std::string StopStrings::Flush() {
    std::string rest;
    rest.swap(held_);
    return rest;
}

size_t StopStrings::PartialTail(const std::string &buffer) const {
    size_t best = 0;
    for (const std::string &stop : stops_) {
        for (size_t n = std::min(stop.size() - 1, buffer.size()); n > best; --n) {
            if (buffer.compare(buffer.size() - n, n, stop, 0, n) == 0) {
                best = n;
                break;
            }
        }
    }
    return best;
}

}  // namespace llama_vlm
