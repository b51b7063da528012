// gpuLayers: "auto" — llama.cpp's own fitting (common/fit.h) of layers and KV cache to free device memory.
#pragma once

#include <napi.h>

namespace llama_vlm {

// fitModel(path: string, params: { contextSize, parallel, batchSize, ubatchSize, typeK, typeV, marginBytes })
//   : Promise<{ status: "fit" | "no-fit", gpuLayers: number, devices: { name, free, total, model, context, compute }[]
//   }>
// [async] runs in the libuv pool. It loads the model's metadata without allocating (no_alloc), so it is
// cheap; while it runs, llama.cpp's log goes through the fitter's own handler (restored afterwards).
Napi::Value FitModel(const Napi::CallbackInfo &info);

}  // namespace llama_vlm
