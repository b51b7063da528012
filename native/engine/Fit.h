// gpuLayers: "auto" — llama.cpp's own fitting (common/fit.h) of layers and KV cache to free device memory.
// Thread: blocking (call it off the JS thread). It loads the model's metadata without allocating (no_alloc), so it
// is cheap; while it runs, llama.cpp's log goes through the fitter's own handler (restored afterwards).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace llama_vlm {

struct FitParams {
    std::string path;
    uint32_t contextSize = 0;  // per sequence
    uint32_t parallel = 1;
    uint32_t batchSize = 0;
    uint32_t ubatchSize = 0;
    int32_t typeK = 1;  // ggml_type
    int32_t typeV = 1;
    size_t marginBytes = 0;  // free memory to leave on each device
};

struct FitDevice {
    std::string name;
    int64_t free = 0;
    int64_t total = 0;
    size_t model = 0;
    size_t context = 0;
    size_t compute = 0;
};

struct FitPlan {
    bool fits = false;
    int32_t gpuLayers = 0;
    std::vector<FitDevice> devices;  // empty when llama.cpp could not break the plan down
};

// [sync, blocking, any thread] throws VlmError(INVALID_MODEL) when llama.cpp cannot read the file.
FitPlan FitModelToDevices(const FitParams &params);

}  // namespace llama_vlm
