#include "Projector.h"

#include "JsError.h"
#include "Model.h"
#include "Payload.h"
#include "SafeJs.h"

namespace llama_vlm {
namespace {

class ProjectorLoadWorker : public PromiseWorker<> {
  public:
    ProjectorLoadWorker(Napi::Env env, Projector *owner, Napi::Object ownerObject, SharedModel model,
                        ProjectorLoadParams params)
        : PromiseWorker(env, "llama-vlm:ProjectorLoadWorker"),
          owner_(owner),
          model_(std::move(model)),
          params_(std::move(params)) {
        ownerRef_ = Napi::Persistent(ownerObject);
    }

    void Execute() override {
        try {
            state_ = LoadProjector(model_, params_);
        } catch (const VlmError &e) {
            Fail(e.code(), e.what());
        } catch (const std::exception &e) {
            Fail(ErrorCode::NativeError, std::string("loading the projector failed: ") + e.what());
        }
    }

    napi_value Resolved(SafeJs &js) override {
        owner_->SetLoaded(std::move(state_));
        return js.Undefined();
    }

  private:
    Projector *owner_;
    Napi::ObjectReference ownerRef_;  // keeps the JS Projector alive while loading
    SharedModel model_;
    ProjectorLoadParams params_;
    SharedProjector state_;
};

}  // namespace

Napi::Function Projector::Init(Napi::Env env) {
    return DefineClass(env, "Projector",
                       {
                           InstanceMethod("load", &Projector::Load),
                           InstanceMethod("info", &Projector::Info),
                           InstanceMethod("dispose", &Projector::Dispose),
                       });
}

Projector::Projector(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Projector>(info) {}

SharedProjector Projector::Get(Napi::Env env) const {
    if (!state_) throw ToJsError(env, ErrorCode::Disposed, "the projector is not loaded or was disposed");
    return state_;
}

Napi::Value Projector::Load(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (loading_ || state_) throw ToJsError(env, ErrorCode::NativeError, "Projector.load may be called once");
    loading_ = true;
    SharedModel model = Model::Unwrap(info[0].As<Napi::Object>())->Get(env);
    ProjectorLoadParams params = ReadProjectorLoadParams(info[1].As<Napi::String>(), info[2].As<Napi::Object>());
    auto *worker =
        new ProjectorLoadWorker(env, this, info.This().As<Napi::Object>(), std::move(model), std::move(params));
    worker->Queue();
    return worker->Promise();
}

Napi::Value Projector::Info(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    SharedProjector state = Get(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("supportsVision", mtmd_support_vision(state->ctx.get()));
    o.Set("usesMrope", mtmd_decode_use_mrope(state->ctx.get()));
    o.Set("marker", mtmd_get_marker(state->ctx.get()));
    o.Set("cacheHits", static_cast<double>(state->cache->hits()));
    o.Set("cacheMisses", static_cast<double>(state->cache->misses()));
    o.Set("cacheBytes", static_cast<double>(state->cache->bytes()));
    return o;
}

Napi::Value Projector::Dispose(const Napi::CallbackInfo &info) {
    state_.reset();
    return info.Env().Undefined();
}

}  // namespace llama_vlm
