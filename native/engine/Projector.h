// The vision encoder: an mtmd_context loaded from an mmproj GGUF and bound to a text model, with its cache of
// encoded images. Contexts share it through SharedProjector; it keeps the text model alive.
// Thread: LoadProjector blocks (call it off the JS thread). Encoding happens on a Context's encoder thread under
// ProjectorState::encodeMutex (mtmd encodes one image at a time).
#pragma once

#include <mtmd.h>

#include <cstdint>
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

struct ProjectorLoadParams {
    std::string path;
    bool useGpu = true;
    int32_t threads = 4;
    int32_t imageMinTokens = -1;
    int32_t imageMaxTokens = -1;
    int32_t flashAttention = -1;  // llama_flash_attn_type: -1 auto, 0 off, 1 on
    size_t imageCacheBytes = 0;
    bool hugePages = true;  // the encoder's weights and compute buffer on transparent huge pages (HugePages.h)
};

// [sync, blocking, any thread] throws VlmError(INVALID_MODEL) when mtmd cannot load the file for this model.
SharedProjector LoadProjector(SharedModel model, const ProjectorLoadParams &params);

}  // namespace llama_vlm
