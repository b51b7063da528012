// Transparent huge pages for the model's weights in RAM, and for a context's KV cache and compute buffers (Linux). A
// decode step reads every weight once; with 4 KiB pages a 1.6 GiB model needs ~400,000 page translations per token,
// and generation is both slower and far less steady than with 2 MiB pages (docs/architecture.md, "Performance
// notes"). ggml allocates its CPU buffers with posix_memalign, which gets 4 KiB pages under the usual THP setting
// (`madvise`), so the engine advises them itself:
//
//   HugePageLoad hp;                 // before llama_model_load_from_file
//   progress callback: hp.OnProgress();   // the first call comes after the buffers exist, before the weights are
//                                         // written: advising then costs nothing, later faults take 2 MiB pages
//   after the load: hp.Finish(model);     // the weight buffers exactly: advise, and collapse what is still small
//
//   HugePageLoad hp;                 // before llama_init_from_model
//   after it: hp.AdviseNewMappings();     // the context's buffers (llama.h does not expose them)
//
// Best effort: a kernel without THP, or with THP set to `never`, leaves the memory as it was. A no-op off Linux.
// Thread: the loading (or context-creating) thread.
#pragma once

#include <llama.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace llama_vlm {

struct HugePageReport {
    size_t weightBytes = 0;    // weights in anonymous CPU memory, whole 2 MiB pages of them
    size_t hugePageBytes = 0;  // of those, the bytes on huge pages after Finish (the kernel's count)
    double finishMs = 0;       // what Finish took (collapsing pages the early advice missed)
};

class HugePageLoad {
  public:
    HugePageLoad();
    // [sync] cheap after the first call.
    void OnProgress();
    // [sync, blocking] for a context: advises the anonymous mappings that appeared since construction (its KV cache
    // and compute buffers) and collapses the pages already written (the KV cache, cleared at creation). Buffers not
    // yet touched take huge pages when first written.
    void AdviseNewMappings();
    // [sync, blocking] advises the CPU-resident weight buffers of `model` (not the memory-mapped file: the page cache
    // decides those) and collapses the pages that are still small.
    HugePageReport Finish(const llama_model *model);

  private:
    // The 2 MiB-aligned parts of the anonymous mappings that are new since construction.
    std::vector<std::pair<uintptr_t, uintptr_t>> NewMappings() const;

    std::vector<std::pair<uintptr_t, uintptr_t>> before_;  // anonymous mappings before the load
    bool advised_ = false;
};

// [sync] bytes of the model's CPU-resident weights on huge pages now (AnonHugePages in /proc/self/smaps); 0 off Linux.
size_t WeightBytesOnHugePages(const llama_model *model);

}  // namespace llama_vlm
