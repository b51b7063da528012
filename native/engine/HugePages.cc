#include "HugePages.h"

#include <ggml-backend.h>
#include <llama-model.h>  // llama_model::tensors_by_name: the weights' buffers (llama.h does not expose them)

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <set>
#include <string_view>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace llama_vlm {

#if defined(__linux__)
namespace {

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1; older kernels answer EINVAL and khugepaged collapses the range later
#endif

using Range = std::pair<uintptr_t, uintptr_t>;
constexpr uintptr_t kHugePage = uintptr_t{2} << 20;

// Private read-write anonymous mappings (where large malloc blocks live), sorted by address.
std::vector<Range> AnonymousMappings() {
    std::vector<Range> out;
    FILE *maps = std::fopen("/proc/self/maps", "re");
    if (maps == nullptr) return out;
    char line[512];
    while (std::fgets(line, sizeof(line), maps) != nullptr) {
        uintptr_t begin = 0;
        uintptr_t end = 0;
        char perms[8] = {};
        unsigned long long inode = 1;
        int pathAt = 0;
        if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %llu %n", &begin, &end, perms, &inode, &pathAt) <
            4)
            continue;
        const bool named = line[pathAt] != '\0' && line[pathAt] != '\n';
        if (inode == 0 && !named && std::string_view(perms) == "rw-p") out.emplace_back(begin, end);
    }
    std::fclose(maps);
    std::sort(out.begin(), out.end());
    return out;
}

// The whole 2 MiB pages inside [begin, end).
Range HugeAligned(uintptr_t begin, uintptr_t end) {
    return {(begin + kHugePage - 1) & ~(kHugePage - 1), end & ~(kHugePage - 1)};
}

size_t Advise(Range r, int advice) {
    if (r.second <= r.first) return 0;
    const size_t len = r.second - r.first;
    return madvise(reinterpret_cast<void *>(r.first), len, advice) == 0 ? len : 0;
}

// Weight buffers in ordinary anonymous CPU memory: the CPU buffer type, and the CPU device's extra buffer types
// (repacked weights), which allocate from it. Not the memory-mapped file's buffers (a buffer type of their own,
// without a device), nor a GPU's host buffers (pinned memory, owned by the GPU's device).
bool IsCpuWeightBuffer(ggml_backend_buffer_t buffer) {
    if (buffer == nullptr) return false;
    ggml_backend_buffer_type_t type = ggml_backend_buffer_get_type(buffer);
    if (type == ggml_backend_cpu_buffer_type()) return true;
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(type);
    return dev != nullptr && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
}

// The 2 MiB-aligned ranges of the model's CPU weight buffers, sorted.
std::vector<Range> WeightRanges(const llama_model *model) {
    std::set<ggml_backend_buffer_t> buffers;
    for (const auto &named : model->tensors_by_name) {
        if (named.second != nullptr && IsCpuWeightBuffer(named.second->buffer)) buffers.insert(named.second->buffer);
    }
    std::vector<Range> out;
    for (ggml_backend_buffer_t buffer : buffers) {
        const auto base = reinterpret_cast<uintptr_t>(ggml_backend_buffer_get_base(buffer));
        const Range r = HugeAligned(base, base + ggml_backend_buffer_get_size(buffer));
        if (r.second > r.first) out.push_back(r);
    }
    std::sort(out.begin(), out.end());
    return out;
}

// AnonHugePages of the mappings that overlap `ranges` (advising a range splits it into a mapping of its own), each
// capped at the overlap.
size_t HugeBytesIn(const std::vector<Range> &ranges) {
    if (ranges.empty()) return 0;
    FILE *smaps = std::fopen("/proc/self/smaps", "re");
    if (smaps == nullptr) return 0;
    size_t total = 0;
    size_t overlap = 0;  // of the current mapping with `ranges`
    char line[512];
    while (std::fgets(line, sizeof(line), smaps) != nullptr) {
        uintptr_t begin = 0;
        uintptr_t end = 0;
        unsigned long long kb = 0;
        if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &begin, &end) == 2) {  // a mapping's first line
            overlap = 0;
            for (const Range &r : ranges) {
                const uintptr_t lo = std::max(begin, r.first);
                const uintptr_t hi = std::min(end, r.second);
                if (hi > lo) overlap += hi - lo;
            }
        } else if (overlap > 0 && std::sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) {
            total += std::min<size_t>(overlap, static_cast<size_t>(kb) * 1024);
        }
    }
    std::fclose(smaps);
    return total;
}

}  // namespace

HugePageLoad::HugePageLoad() : before_(AnonymousMappings()) {}

std::vector<Range> HugePageLoad::NewMappings() const {
    std::vector<Range> out;
    for (const Range &now : AnonymousMappings()) {
        uintptr_t at = now.first;
        for (const Range &old : before_) {
            if (old.second <= at || old.first >= now.second) continue;
            if (old.first > at) out.push_back(HugeAligned(at, old.first));
            at = std::max(at, old.second);
        }
        if (at < now.second) out.push_back(HugeAligned(at, now.second));
    }
    return out;
}

void HugePageLoad::OnProgress() {
    if (advised_) return;
    advised_ = true;
    // The mappings that appeared since the load began are the weight buffers, not yet written. Any other thread's
    // new mapping advised with them only changes its page size.
    for (const Range &r : NewMappings()) Advise(r, MADV_HUGEPAGE);
}

void HugePageLoad::AdviseNewMappings() {
    // MADV_COLLAPSE reports failure for a range with unwritten parts (a compute buffer) but collapses what is written.
    for (const Range &r : NewMappings()) {
        if (Advise(r, MADV_HUGEPAGE) > 0) Advise(r, MADV_COLLAPSE);
    }
}

HugePageReport HugePageLoad::Finish(const llama_model *model) {
    HugePageReport report;
    const auto start = std::chrono::steady_clock::now();
    const std::vector<Range> ranges = WeightRanges(model);
    for (const Range &r : ranges) {
        if (Advise(r, MADV_HUGEPAGE) == 0) continue;  // THP not built into this kernel
        report.weightBytes += r.second - r.first;
        // Pages already huge (advised before they were written) are skipped quickly; THP set to `never` refuses.
        Advise(r, MADV_COLLAPSE);
    }
    report.finishMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    report.hugePageBytes = HugeBytesIn(ranges);
    return report;
}

size_t WeightBytesOnHugePages(const llama_model *model) {
    return HugeBytesIn(WeightRanges(model));
}

#else

HugePageLoad::HugePageLoad() = default;
void HugePageLoad::OnProgress() {}
void HugePageLoad::AdviseNewMappings() {}
HugePageReport HugePageLoad::Finish(const llama_model * /*model*/) {
    return {};
}
size_t WeightBytesOnHugePages(const llama_model * /*model*/) {
    return 0;
}

#endif

}  // namespace llama_vlm
