// Readers of the plain objects lib/ sends (validated there; their shapes are declared in lib/backend/types.ts)
// into the engine's structs. Thread: JS thread; a payload that does not have its declared shape throws a JS error.
#pragma once

#include <napi.h>

#include <memory>

#include "engine/Engine.h"
#include "engine/Fit.h"
#include "engine/Model.h"
#include "engine/Projector.h"
#include "engine/Sampler.h"

namespace llama_vlm {

// NativeSampling (lib/sampling.ts).
SamplerParams ReadSamplerParams(const Napi::Object &object);
// NativeContextParams.
EngineParams ReadEngineParams(const Napi::Object &object);
// NativeRequest, except its sampling (ReadSamplerParams) and what the Context assigns: the id and the chain.
std::shared_ptr<Request> ReadRequest(Napi::Env env, const Napi::Object &object);
ModelLoadParams ReadModelLoadParams(const Napi::String &path, const Napi::Object &object);
ProjectorLoadParams ReadProjectorLoadParams(const Napi::String &path, const Napi::Object &object);
FitParams ReadFitParams(const Napi::String &path, const Napi::Object &object);

}  // namespace llama_vlm
