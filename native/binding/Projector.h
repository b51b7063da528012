// JS class Projector: holds a loaded vision encoder (native/engine/Projector.h) bound to a text Model.
//
// Lifetime: Contexts share the encoder's state; dispose() drops the Projector's own reference (idempotent).
// Thread: methods on the JS thread; load runs in ProjectorLoadWorker (libuv pool).
#pragma once

#include <napi.h>

#include "engine/Projector.h"

namespace llama_vlm {

class Projector : public Napi::ObjectWrap<Projector> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit Projector(const Napi::CallbackInfo &info);

    // [sync, JS thread] the loaded projector; throws a DISPOSED error if there is none.
    SharedProjector Get(Napi::Env env) const;
    void SetLoaded(SharedProjector state) { state_ = std::move(state); }

  private:
    // load(model: Model, path: string, params: {useGpu, threads, imageMinTokens, imageMaxTokens, flashAttention,
    // imageCacheBytes}): Promise<void>
    Napi::Value Load(const Napi::CallbackInfo &info);
    // info(): { supportsVision, usesMrope, marker, cacheHits, cacheMisses, cacheBytes }
    Napi::Value Info(const Napi::CallbackInfo &info);
    // dispose(): void
    Napi::Value Dispose(const Napi::CallbackInfo &info);

    SharedProjector state_;
    bool loading_ = false;
};

}  // namespace llama_vlm
