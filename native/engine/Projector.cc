#include "Projector.h"

#include <exception>
#include <optional>

#include "Errors.h"
#include "HugePages.h"
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
    // With warmup, mtmd reserves the encoder's compute buffer (for the largest image) while it loads, where the
    // huge-page advice below reaches it; without, the buffer is allocated at the first encode, on 4 KiB pages.
    mp.warmup = params.hugePages;
    mp.image_min_tokens = params.imageMinTokens;
    mp.image_max_tokens = params.imageMaxTokens;
    mp.flash_attn_type = static_cast<llama_flash_attn_type>(params.flashAttention);
    TakeLastError();
    mtmd_context *ctx = nullptr;
    std::optional<HugePageLoad> hugePages;
    if (params.hugePages) {
        hugePages.emplace();
        // mtmd reports 0 before it allocates the encoder's weights and then a fraction after each tensor it reads: at
        // the first fraction the weight buffer exists and is almost all unwritten, so its faults take huge pages.
        mp.progress_callback = [](float progress, void *data) {
            if (progress > 0) static_cast<HugePageLoad *>(data)->OnProgress();
            return true;
        };
        mp.progress_callback_user_data = &*hugePages;
    }
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
    // The encoder's reserved compute buffer, allocated after the weights, is advised before its first use.
    if (hugePages) hugePages->AdviseNewMappings();
    auto state = std::make_shared<ProjectorState>();
    state->model = std::move(model);
    state->ctx.reset(ctx);
    state->cache = std::make_unique<ImageCache>(params.imageCacheBytes);
    return state;
}

}  // namespace llama_vlm
