#include "Projector.h"

#include "Errors.h"
#include "Logger.h"
#include "SafeJs.h"

namespace llama_vlm {
namespace {

struct ProjectorParams {
    std::string path;
    bool useGpu = true;
    int32_t threads = 4;
    int32_t imageMinTokens = -1;
    int32_t imageMaxTokens = -1;
    int32_t flashAttention = -1;  // llama_flash_attn_type: -1 auto, 0 off, 1 on
    double imageCacheBytes = 0;
};

class ProjectorLoadWorker : public PromiseWorker<> {
  public:
    ProjectorLoadWorker(Napi::Env env, Projector *owner, Napi::Object ownerObject, SharedModel model,
                        ProjectorParams params)
        : PromiseWorker(env, "llama-vlm:ProjectorLoadWorker"),
          owner_(owner),
          model_(std::move(model)),
          params_(std::move(params)) {
        ownerRef_ = Napi::Persistent(ownerObject);
    }

    void Execute() override {
        mtmd_context_params mp = mtmd_context_params_default();
        mp.use_gpu = params_.useGpu;
        mp.n_threads = params_.threads;
        mp.print_timings = false;
        mp.warmup = false;
        mp.image_min_tokens = params_.imageMinTokens;
        mp.image_max_tokens = params_.imageMaxTokens;
        mp.flash_attn_type = static_cast<llama_flash_attn_type>(params_.flashAttention);
        TakeLastError();
        mtmd_context *ctx = nullptr;
        try {
            ctx = mtmd_init_from_file(params_.path.c_str(), model_.get(), mp);
        } catch (const std::exception &e) {
            Fail("INVALID_MODEL",
                 std::string("llama.cpp could not load the projector ") + params_.path + ": " + e.what());
            return;
        }
        if (ctx == nullptr) {
            std::string why = TakeLastError();
            Fail("INVALID_MODEL",
                 "llama.cpp could not load the projector " + params_.path + (why.empty() ? "" : ": " + why));
            return;
        }
        state_ = std::make_shared<ProjectorState>();
        state_->model = model_;
        state_->ctx.reset(ctx);
        state_->cache = std::make_unique<ImageCache>(static_cast<size_t>(params_.imageCacheBytes));
    }

    napi_value Resolved(SafeJs &js) override {
        owner_->SetLoaded(std::move(state_));
        return js.Undefined();
    }

  private:
    Projector *owner_;
    Napi::ObjectReference ownerRef_;
    SharedModel model_;
    ProjectorParams params_;
    SharedProjector state_;
};

}  // namespace

Embeddings ImageCache::Get(const std::string &key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) {
        ++misses_;
        return nullptr;
    }
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
}

void ImageCache::Put(const std::string &key, Embeddings value) {
    const size_t size = value->size() * sizeof(float);
    std::lock_guard<std::mutex> lock(mutex_);
    if (size > capacity_ || index_.count(key) != 0) return;
    while (used_ + size > capacity_ && !lru_.empty()) {
        used_ -= lru_.back().second->size() * sizeof(float);
        index_.erase(lru_.back().first);
        lru_.pop_back();
    }
    lru_.emplace_front(key, std::move(value));
    index_[key] = lru_.begin();
    used_ += size;
}

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
    if (!state_) throw ToJsError(env, "DISPOSED", "the projector is not loaded or was disposed");
    return state_;
}

Napi::Value Projector::Load(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (loading_ || state_) throw ToJsError(env, "NATIVE_ERROR", "Projector.load may be called once");
    loading_ = true;
    SharedModel model = Model::Unwrap(info[0].As<Napi::Object>())->Get(env);
    Napi::Object p = info[2].As<Napi::Object>();
    ProjectorParams params;
    params.path = info[1].As<Napi::String>().Utf8Value();
    params.useGpu = p.Get("useGpu").ToBoolean().Value();
    params.threads = p.Get("threads").As<Napi::Number>().Int32Value();
    params.imageMinTokens = p.Get("imageMinTokens").As<Napi::Number>().Int32Value();
    params.imageMaxTokens = p.Get("imageMaxTokens").As<Napi::Number>().Int32Value();
    params.flashAttention = p.Get("flashAttention").As<Napi::Number>().Int32Value();
    params.imageCacheBytes = p.Get("imageCacheBytes").As<Napi::Number>().DoubleValue();
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
