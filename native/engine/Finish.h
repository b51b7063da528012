// How a request ends: its stop reason, and the stop strings the engine finds in its output.
//
// The engine finishes every request itself (EOS, stop string, maxTokens, full context, abort), on the decode step
// that decided it, so the sequence's slot frees at once. The stop reasons are lib/context.ts StopReason: the addon
// exports their names as `stopReasons`, and test/model/stop-engine.test.ts holds the two lists equal.
// Thread: a StopStrings belongs to one slot and is used by the decode thread only.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace llama_vlm {

enum class StopReason { Eos, Stop, Length, Abort, Context };

constexpr StopReason kStopReasons[] = {StopReason::Eos, StopReason::Stop, StopReason::Length, StopReason::Abort,
                                       StopReason::Context};

const char *StopReasonName(StopReason reason);

// Finds stop strings in a sequence's output bytes, across token boundaries, and holds back any tail that could
// still become one, so that no released byte is ever part of a stop string. Stop strings match exactly as given.
// Matching is on UTF-8 bytes: UTF-8 is self-synchronising, so a stop string matches the bytes exactly where it
// matches the decoded text (output that is not valid UTF-8 aside, which lib/ shows as U+FFFD).
class StopStrings {
  public:
    StopStrings() = default;
    explicit StopStrings(std::vector<std::string> stops);

    // Takes the next token's piece; returns the bytes now safe to release. On a match: the bytes before the
    // stop string, and matched() is true from then on (later pieces release nothing).
    std::string Push(const std::string &piece);
    // At the end of the request: the bytes still held back (none after a match).
    std::string Flush();
    bool matched() const { return matched_; }

  private:
    // Length of the longest suffix of `buffer` that is a proper prefix of some stop string.
    size_t PartialTail(const std::string &buffer) const;

    std::vector<std::string> stops_;
    std::string held_;
    bool matched_ = false;
};

}  // namespace llama_vlm
