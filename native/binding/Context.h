// JS class Context: a llama_context with its engine threads (native/engine/Engine.h), for one Model and an
// optional Projector. Requests go in with submit(); their tokens and endings come back as batches of
// events, one call per decode step, through a ThreadSafeFunction.
//
// Lifetime: init() creates the engine off the JS thread; dispose() stops it off the JS thread (running
// requests end with DISPOSED) and is idempotent. The finalizer stops a forgotten engine as a backstop.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "engine/Engine.h"

namespace llama_vlm {

class Context : public Napi::ObjectWrap<Context> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit Context(const Napi::CallbackInfo &info);
    ~Context() override;

    void Started(std::unique_ptr<Engine> engine);

  private:
    // init(model: Model, projector: Projector | null, params: NativeContextParams, onEvents: (events) => void):
    // Promise<void>
    Napi::Value InitEngine(const Napi::CallbackInfo &info);
    // submit(request: NativeRequest): number — the request id
    Napi::Value Submit(const Napi::CallbackInfo &info);
    // cancel(id: number): void
    Napi::Value Cancel(const Napi::CallbackInfo &info);
    // info(): { contextSize, totalContextSize, parallel, batchSize }
    Napi::Value Info(const Napi::CallbackInfo &info);
    // ref(): void / unref(): void — whether pending events keep the event loop alive
    Napi::Value Ref(const Napi::CallbackInfo &info);
    Napi::Value Unref(const Napi::CallbackInfo &info);
    // dispose(): Promise<void>
    Napi::Value Dispose(const Napi::CallbackInfo &info);
    // testFault("abort" | "throw-prepare" | "throw-prefill"): only with LLAMA_VLM_TEST_FAULTS=1 in the environment;
    // see Engine::AbortBeforeNextDecode and Engine::ThrowInNextRequest.
    Napi::Value TestFault(const Napi::CallbackInfo &info);

    // Stops the engine (joining its threads) and aborts the events function, if still running. JS thread.
    void Stop();
    // The environment is being torn down: Stop() while the events function still exists.
    static void OnEnvCleanup(void *arg);

    std::unique_ptr<Engine> engine_;
    Napi::ThreadSafeFunction events_;
    bool eventsActive_ = false;
    napi_env cleanupEnv_ = nullptr;  // set while OnEnvCleanup is registered
    bool initStarted_ = false;
    uint32_t parallel_ = 1;
    uint32_t batchSize_ = 0;
    uint64_t nextId_ = 1;
    SharedModel model_;  // for building samplers and reading the vocabulary on the JS thread
};

}  // namespace llama_vlm
