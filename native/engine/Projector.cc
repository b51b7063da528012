#include "Projector.h"

#include <exception>

#include "Errors.h"
#include "Log.h"

namespace llama_vlm {

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

SharedProjector LoadProjector(SharedModel model, const ProjectorLoadParams &params) {
    mtmd_context_params mp = mtmd_context_params_default();
    mp.use_gpu = params.useGpu;
    mp.n_threads = params.threads;
    mp.print_timings = false;
    mp.warmup = false;
    mp.image_min_tokens = params.imageMinTokens;
    mp.image_max_tokens = params.imageMaxTokens;
    mp.flash_attn_type = static_cast<llama_flash_attn_type>(params.flashAttention);
    TakeLastError();
    mtmd_context *ctx = nullptr;
    try {
        ctx = mtmd_init_from_file(params.path.c_str(), model.get(), mp);
    } catch (const std::exception &e) {
        throw VlmError(ErrorCode::InvalidModel,
                       std::string("llama.cpp could not load the projector ") + params.path + ": " + e.what());
    }
    if (ctx == nullptr) {
        std::string why = TakeLastError();
        throw VlmError(ErrorCode::InvalidModel,
                       "llama.cpp could not load the projector " + params.path + (why.empty() ? "" : ": " + why));
    }
    auto state = std::make_shared<ProjectorState>();
    state->model = std::move(model);
    state->ctx.reset(ctx);
    state->cache = std::make_unique<ImageCache>(params.imageCacheBytes);
    return state;
}

}  // namespace llama_vlm
