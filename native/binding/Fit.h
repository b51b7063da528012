// gpuLayers: "auto" from JS (the fitting itself: native/engine/Fit.h).
#pragma once

#include <napi.h>

namespace llama_vlm {

// fitModel(path: string, params: { contextSize, parallel, batchSize, ubatchSize, typeK, typeV, marginBytes })
//   : Promise<{ status: "fit" | "no-fit", gpuLayers: number, devices: { name, free, total, model, context, compute }[]
//   }>
// [async] runs in the libuv pool (FitWorker).
Napi::Value FitModel(const Napi::CallbackInfo &info);

}  // namespace llama_vlm
