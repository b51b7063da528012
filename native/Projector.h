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

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "Model.h"

namespace llama_vlm {

using Embeddings = std::shared_ptr<const std::vector<float>>;

// Encoded images by content hash, least recently used first out, bounded in bytes (0 disables).
// Thread: any (own mutex).
class ImageCache {
  public:
    explicit ImageCache(size_t capacityBytes) : capacity_(capacityBytes) {}
    Embeddings Get(const std::string &key);
    void Put(const std::string &key, Embeddings value);
    size_t hits() const { return hits_; }
    size_t misses() const { return misses_; }
    size_t bytes() const { return used_; }

  private:
    using Entry = std::pair<std::string, Embeddings>;
    std::mutex mutex_;
    size_t capacity_;
    size_t used_ = 0;
    size_t hits_ = 0;
    size_t misses_ = 0;
    std::list<Entry> lru_;  // most recent first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

struct ProjectorState {
    SharedModel model;
    mtmd::context_ptr ctx;
    std::mutex encodeMutex;
    std::unique_ptr<ImageCache> cache;
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
    // info(): { supportsVision, usesMrope, marker, cacheHits, cacheMisses, cacheBytes }
    Napi::Value Info(const Napi::CallbackInfo &info);
    // dispose(): void
    Napi::Value Dispose(const Napi::CallbackInfo &info);

    SharedProjector state_;
    bool loading_ = false;
};

}  // namespace llama_vlm
