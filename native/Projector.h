// JS class Projector: wraps an mtmd_context (the vision encoder, loaded from an mmproj GGUF) bound to a
// text Model.
//
// Lifetime: the mtmd_context lives in a shared ProjectorState that Contexts share; it keeps the text
// model alive. dispose() drops the Projector's own reference (idempotent).
// Thread: methods on the JS thread; load runs in ProjectorLoadWorker; encoding happens on a Context's
// engine thread under ProjectorState::encodeMutex (mtmd encodes one image at a time).
#pragma once

#include <mtmd.h>
#include <napi.h>

#include <memory>
#include <mutex>

#include "Model.h"

namespace llama_vlm {

struct ProjectorState {
    SharedModel model;
    mtmd::context_ptr ctx;
    std::mutex encodeMutex;
};
using SharedProjector = std::shared_ptr<ProjectorState>;

class Projector : public Napi::ObjectWrap<Projector> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit Projector(const Napi::CallbackInfo &info);

    // [sync, JS thread] the loaded projector; throws a DISPOSED error if there is none.
    SharedProjector Get(Napi::Env env) const;
    void SetLoaded(SharedProjector state) { state_ = std::move(state); }

  private:
    // load(model: Model, path: string, params: {useGpu, threads, imageMinTokens, imageMaxTokens, flashAttention}):
    // Promise<void>
    Napi::Value Load(const Napi::CallbackInfo &info);
    // info(): { supportsVision: boolean, usesMrope: boolean, marker: string }
    Napi::Value Info(const Napi::CallbackInfo &info);
    // dispose(): void
    Napi::Value Dispose(const Napi::CallbackInfo &info);

    SharedProjector state_;
    bool loading_ = false;
};

}  // namespace llama_vlm
