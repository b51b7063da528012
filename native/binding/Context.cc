#include "Context.h"

#include <cstdlib>
#include <string>

#include "JsError.h"
#include "Model.h"
#include "Payload.h"
#include "Projector.h"
#include "SafeJs.h"

namespace llama_vlm {
namespace {

class ContextInitWorker : public PromiseWorker<> {
  public:
    ContextInitWorker(Napi::Env env, Context *owner, Napi::Object ownerObject, SharedModel model,
                      SharedProjector projector, EngineParams params)
        : PromiseWorker(env, "llama-vlm:ContextInitWorker"),
          owner_(owner),
          model_(std::move(model)),
          projector_(std::move(projector)),
          params_(params) {
        ownerRef_ = Napi::Persistent(ownerObject);
    }

    void Execute() override {
        try {
            engine_ = std::make_unique<Engine>(model_, projector_, params_);
        } catch (const VlmError &e) {
            Fail(e.code(), e.what());
        } catch (const std::exception &e) {
            Fail(ErrorCode::NativeError, std::string("creating the context failed: ") + e.what());
        }
    }

    napi_value Resolved(SafeJs &js) override {
        owner_->Started(std::move(engine_));
        return js.Undefined();
    }

  private:
    Context *owner_;
    Napi::ObjectReference ownerRef_;
    SharedModel model_;
    SharedProjector projector_;
    EngineParams params_;
    std::unique_ptr<Engine> engine_;
};

// Stops the engine thread off the JS thread: it may be inside a long image encode.
class ContextDisposeWorker : public PromiseWorker<> {
  public:
    ContextDisposeWorker(Napi::Env env, std::unique_ptr<Engine> engine, Napi::ThreadSafeFunction events, bool active)
        : PromiseWorker(env, "llama-vlm:ContextDisposeWorker"),
          engine_(std::move(engine)),
          events_(std::move(events)),
          active_(active) {}

    void Execute() override {
        engine_.reset();  // Stop() + join; the last events (DISPOSED) are queued on the TSFN before release
        if (active_) events_.Release();
    }

  private:
    std::unique_ptr<Engine> engine_;
    Napi::ThreadSafeFunction events_;
    bool active_;
};

napi_value EventsToJs(SafeJs &js, const std::vector<Event> &events) {
    napi_value out = js.Array(events.size());
    for (size_t i = 0; i < events.size() && js.ok(); ++i) {
        const Event &e = events[i];
        napi_value o = js.Object();
        js.Set(o, "id", static_cast<double>(e.requestId));
        switch (e.kind) {
            case Event::Kind::Token: {
                js.Set(o, "type", "token");
                js.Set(o, "token", e.token);
                js.Set(o, "bytes", js.Bytes(e.bytes));
                if (!e.probs.empty()) {
                    napi_value probs = js.Array(e.probs.size());
                    for (size_t k = 0; k < e.probs.size(); ++k) {
                        napi_value p = js.Object();
                        js.Set(p, "token", e.probs[k].first);
                        js.Set(p, "probability", e.probs[k].second);
                        js.Set(probs, static_cast<uint32_t>(k), p);
                    }
                    js.Set(o, "probs", probs);
                }
                break;
            }
            case Event::Kind::Done: {
                js.Set(o, "type", "done");
                js.Set(o, "stopReason", StopReasonName(e.stopReason));
                js.Set(o, "bytes", js.Bytes(e.bytes));
                napi_value t = js.Object();
                js.Set(t, "imageEncodeMs", e.timings.imageEncodeMs);
                js.Set(t, "imageTokens", e.timings.imageTokens);
                js.Set(t, "imageCacheHits", e.timings.imageCacheHits);
                js.Set(t, "promptMs", e.timings.promptMs);
                js.Set(t, "imagePrefillMs", e.timings.imagePrefillMs);
                js.Set(t, "promptTokens", e.timings.promptTokens);
                js.Set(t, "generateMs", e.timings.generateMs);
                js.Set(t, "generatedTokens", e.timings.generatedTokens);
                js.Set(t, "forcedTokens", e.timings.forcedTokens);
                js.Set(o, "timings", t);
                break;
            }
            case Event::Kind::Error:
                js.Set(o, "type", "error");
                js.Set(o, "code", ErrorCodeName(e.code));
                js.Set(o, "message", e.message);
                break;
        }
        js.Set(out, static_cast<uint32_t>(i), o);
    }
    return out;
}

}  // namespace

Napi::Function Context::Init(Napi::Env env) {
    return DefineClass(env, "Context",
                       {
                           InstanceMethod("init", &Context::InitEngine),
                           InstanceMethod("submit", &Context::Submit),
                           InstanceMethod("cancel", &Context::Cancel),
                           InstanceMethod("info", &Context::Info),
                           InstanceMethod("ref", &Context::Ref),
                           InstanceMethod("unref", &Context::Unref),
                           InstanceMethod("dispose", &Context::Dispose),
                           InstanceMethod("testFault", &Context::TestFault),
                       });
}

Context::Context(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Context>(info) {}

Context::~Context() {
    if (cleanupEnv_ != nullptr) napi_remove_env_cleanup_hook(cleanupEnv_, &Context::OnEnvCleanup, this);
    Stop();
}

void Context::Stop() {
    engine_.reset();
    if (eventsActive_) events_.Abort();
    eventsActive_ = false;
}

// Runs before the thread-safe function's own cleanup hook (hooks run last-registered first): the engine stops and
// the function is aborted while it still exists. Without this, the finalizer did both at teardown, and Node 24
// frees an environment's thread-safe functions before it runs finalizers: the abort hung on a freed mutex.
void Context::OnEnvCleanup(void *arg) {
    auto *self = static_cast<Context *>(arg);
    self->cleanupEnv_ = nullptr;
    self->Stop();
}

Napi::Value Context::InitEngine(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (initStarted_) throw ToJsError(env, ErrorCode::NativeError, "Context.init may be called once");
    initStarted_ = true;
    model_ = Model::Unwrap(info[0].As<Napi::Object>())->Get(env);
    SharedProjector projector;
    if (info[1].IsObject()) projector = Projector::Unwrap(info[1].As<Napi::Object>())->Get(env);
    EngineParams params = ReadEngineParams(info[2].As<Napi::Object>());
    parallel_ = params.parallel;
    batchSize_ = params.batchSize;
    events_ = Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "llama-vlm:ContextEvents", 0, 1);
    events_.Unref(env);
    eventsActive_ = true;
    if (napi_add_env_cleanup_hook(env, &Context::OnEnvCleanup, this) == napi_ok) cleanupEnv_ = env;
    auto *worker =
        new ContextInitWorker(env, this, info.This().As<Napi::Object>(), model_, std::move(projector), params);
    worker->Queue();
    return worker->Promise();
}

void Context::Started(std::unique_ptr<Engine> engine) {
    engine_ = std::move(engine);
    Napi::ThreadSafeFunction tsfn = events_;
    engine_->Start([tsfn](std::vector<Event> &&events) mutable {
        auto *batch = new std::vector<Event>(std::move(events));
        napi_status status = tsfn.BlockingCall(batch, [](Napi::Env env, Napi::Function fn, std::vector<Event> *data) {
            std::unique_ptr<std::vector<Event>> owned(data);
            if (env == nullptr || fn == nullptr) return;
            SafeJs js(env);
            napi_value batch = EventsToJs(js, *owned);
            js.Call(fn, {batch});
        });
        if (status != napi_ok) delete batch;
    });
}

Napi::Value Context::Submit(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!engine_) throw ToJsError(env, ErrorCode::Disposed, "the context is not initialised or was disposed");
    Napi::Object r = info[0].As<Napi::Object>();
    std::shared_ptr<Request> request = ReadRequest(env, r);
    SamplerParams sampling = ReadSamplerParams(r.Get("sampling").As<Napi::Object>());
    const llama_vocab *vocab = llama_model_get_vocab(model_.get());
    try {
        request->sampler = BuildSamplerChain(sampling, vocab, llama_vocab_n_tokens(vocab));
        if (request->fastForward) {
            if (sampling.grammar.empty())
                throw VlmError(ErrorCode::InvalidOption, "fastForward needs a grammar or a JSON schema");
            request->forcer = std::make_unique<GrammarForcer>(vocab, sampling.grammar);
        }
    } catch (const VlmError &e) {
        throw ToJsError(env, e);
    }
    request->id = nextId_++;
    const uint64_t id = request->id;
    engine_->Submit(std::move(request));
    return Napi::Number::New(env, static_cast<double>(id));
}

Napi::Value Context::Cancel(const Napi::CallbackInfo &info) {
    if (engine_) engine_->Cancel(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    return info.Env().Undefined();
}

Napi::Value Context::Info(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!engine_) throw ToJsError(env, ErrorCode::Disposed, "the context is not initialised or was disposed");
    Napi::Object o = Napi::Object::New(env);
    o.Set("contextSize", engine_->sequenceContextSize());
    o.Set("totalContextSize", engine_->contextSize());
    o.Set("parallel", parallel_);
    o.Set("batchSize", batchSize_);
    return o;
}

Napi::Value Context::Ref(const Napi::CallbackInfo &info) {
    if (eventsActive_) events_.Ref(info.Env());
    return info.Env().Undefined();
}

Napi::Value Context::Unref(const Napi::CallbackInfo &info) {
    if (eventsActive_) events_.Unref(info.Env());
    return info.Env().Undefined();
}

Napi::Value Context::Dispose(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto *worker = new ContextDisposeWorker(env, std::move(engine_), events_, eventsActive_);
    eventsActive_ = false;
    worker->Queue();
    return worker->Promise();
}

Napi::Value Context::TestFault(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const char *enabled = std::getenv("LLAMA_VLM_TEST_FAULTS");
    if (enabled == nullptr || std::string(enabled) != "1") {
        throw ToJsError(env, ErrorCode::InvalidOption, "test faults are off: set LLAMA_VLM_TEST_FAULTS=1 to use them");
    }
    const std::string fault = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if (fault != "abort" && fault != "throw-prepare" && fault != "throw-prefill") {
        throw ToJsError(env, ErrorCode::InvalidOption,
                        "the test faults are \"abort\", \"throw-prepare\" and \"throw-prefill\"");
    }
    if (!engine_) throw ToJsError(env, ErrorCode::Disposed, "the context is not initialised or was disposed");
    if (fault == "abort")
        engine_->AbortBeforeNextDecode();
    else
        engine_->ThrowInNextRequest(fault == "throw-prepare" ? Engine::ThrowAt::Prepare : Engine::ThrowAt::Prefill);
    return env.Undefined();
}

}  // namespace llama_vlm
