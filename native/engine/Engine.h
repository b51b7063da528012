// The generation engine of one Context: owns the llama_context and the one thread that touches it.
//
// Two stages, two threads:
// - the encoder thread takes submitted requests in order, tokenizes them (mtmd preprocessing), checks
//   they fit a sequence, and encodes their images (or takes them from the projector's cache), keeping
//   up to `parallel` prepared requests ready ahead of the decoder;
// - the decode thread gives each prepared request a free slot (a sequence id). Every step carries the
//   next token of every generating slot, plus prompt text of prefilling slots up to the batch budget,
//   in one llama_decode; image embeddings are decoded into their slot between steps. A finished slot
//   frees its sequence and the next prepared request takes it (continuous batching).
// So image encoding overlaps decoding, and a request's image is usually ready when its slot frees.
//
// Where the ggml (OpenMP) threads run: every OS thread that runs ggml work keeps a team of worker threads, and
// once the process has more of them than cores, libgomp makes every team's barriers sleep after a few spins
// instead of spinning (tens of thousands of context switches a request, 10–20 % slower steps). So only the decode
// thread keeps a team: when it is idle, the encoder stage leaves a request's images to it, and it encodes each when
// the request's prefill reaches it (the text before an image decoded first, as llama-mtmd-cli does); when it is
// busy, the encoder stage encodes on a short-lived thread whose team ends with it. The warm-up decode at creation
// runs on one too.
//
// The engine finishes every request itself (Finish.h): EOS, a stop string, maxTokens (0: in the encoder stage,
// before it takes a slot), a full sequence, an abort — each on the step that decided it, freeing the slot at once.
//
// Thread: Submit/Cancel/Stop may be called from any thread. The llama_context is touched by the
// decode thread only. Events go out through the sink, called from either stage's thread.
#pragma once

#include <llama-cpp.h>
#include <llama.h>
#include <mtmd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "Errors.h"
#include "FastForward.h"
#include "Finish.h"
#include "Model.h"
#include "Projector.h"
#include "Sampler.h"

namespace llama_vlm {

struct Image {
    std::vector<unsigned char> rgb;  // width * height * 3 bytes, sRGB
    uint32_t width = 0;
    uint32_t height = 0;
    std::string id;  // content hash (cache key)
};

struct Request {
    uint64_t id = 0;
    // Filled by the encoder stage:
    mtmd::input_chunks chunks;           // with a projector
    std::vector<llama_token> textOnly;   // without one
    std::vector<Embeddings> embeddings;  // per chunk; set for image chunks (by the decoder if left for it)
    std::vector<std::string> cacheKeys;  // per chunk: the image cache's key, empty for text
    int32_t promptTokens = 0;
    int32_t imageTokens = 0;
    int32_t imageCacheHits = 0;
    double imageEncodeMs = 0;
    // Set by Submit:
    std::vector<std::string> textParts;  // images.size() + 1 parts; image i sits between parts i and i+1
    std::vector<Image> images;
    bool addSpecial = true;  // BOS and other specials the vocabulary adds at the start
    SamplerPtr sampler;      // built at submit, on the caller's thread, so that a bad grammar fails there
    int32_t maxTokens = -1;  // -1: until the sequence's context is full
    int32_t nProbs = 0;
    bool fastForward = false;
    // Grammar fast-forward (FastForward.h): set at submit for a grammar-constrained request that asks for it.
    std::unique_ptr<GrammarForcer> forcer;
    std::vector<std::string> stop;  // stop strings: the request ends before the first one its output contains
    std::atomic<bool> cancelled{false};
};

struct Timings {
    double imageEncodeMs = 0;
    int32_t imageTokens = 0;
    int32_t imageCacheHits = 0;
    double promptMs = 0;
    double imagePrefillMs = 0;  // part of promptMs: image embeddings decoded into the KV cache
    int32_t promptTokens = 0;
    double generateMs = 0;
    int32_t generatedTokens = 0;  // sampled and forced
    int32_t forcedTokens = 0;     // of generatedTokens: written by grammar fast-forward, not sampled
};

// A request's output goes out as bytes that are safe to show: the Token events' `bytes` and the Done event's,
// concatenated, are the request's text. Bytes that could be the start of a stop string are held back (a Token event
// may carry none) until later output decides; the Done event releases what is left (for "stop", nothing: the
// text ends before the stop string).
struct Event {
    enum class Kind { Token, Done, Error } kind = Kind::Token;
    uint64_t requestId = 0;
    llama_token token = -1;                            // Token
    std::string bytes;                                 // Token, Done: output bytes released now
    std::vector<std::pair<llama_token, float>> probs;  // Token: top nProbs (token, probability), before sampling;
                                                       // a forced token's is itself with probability 1
    StopReason stopReason = StopReason::Eos;           // Done
    Timings timings;                                   // Done
    ErrorCode code = ErrorCode::NativeError;           // Error
    std::string message;                               // Error
};

struct EngineParams {
    uint32_t contextSize = 4096;
    uint32_t batchSize = 512;
    uint32_t ubatchSize = 512;
    uint32_t parallel = 1;
    int32_t threads = 4;
    int32_t threadsBatch = 4;
    int32_t flashAttention = -1;
    int32_t typeK = 1;  // ggml_type, F16
    int32_t typeV = 1;
    bool warmup = true;     // one decode at creation, as llama.cpp's tools do (Engine::Warmup)
    bool hugePages = true;  // the KV cache and compute buffers on transparent huge pages (HugePages.h)
};

class Engine {
  public:
    using Sink = std::function<void(std::vector<Event> &&)>;

    // [sync, any thread] creates the llama_context (may allocate a lot: call off the JS thread).
    // Throws VlmError on failure. The thread starts with Start().
    Engine(SharedModel model, SharedProjector projector, const EngineParams &params);
    ~Engine();
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;

    void Start(Sink sink);
    // Queues a request; events for it follow through the sink.
    void Submit(std::shared_ptr<Request> request);
    // Marks a request cancelled: it finishes with stopReason "abort" within one step.
    void Cancel(uint64_t requestId);
    // Stops the thread: queued and running requests get a DISPOSED error. Blocks until the thread exits.
    void Stop();
    // Test-only (LLAMA_VLM_TEST_FAULTS=1): the decoder thread calls GGML_ABORT before its next llama_decode,
    // a real native abort that takes the process down, to test process isolation.
    void AbortBeforeNextDecode() { abortBeforeDecode_.store(true); }
    // Test-only (LLAMA_VLM_TEST_FAULTS=1): the next request's work in that stage throws a std::runtime_error, as
    // llama.cpp may; that request fails with NATIVE_ERROR and the engine goes on with the others.
    enum class ThrowAt : int { Nowhere = 0, Prepare = 1, Prefill = 2 };
    void ThrowInNextRequest(ThrowAt stage) { throwAt_.store(static_cast<int>(stage)); }

    uint32_t contextSize() const { return nCtx_; }
    uint32_t sequenceContextSize() const { return nCtxSeq_; }

  private:
    struct Slot;

    void RunEncoder();
    void Prepare(Request &request);
    void Warmup();
    void EncodeChunks(Request &request, const std::vector<size_t> &todo);
    void RunDecoder();
    bool Admit();
    void Prefill(Slot &slot, llama_batch &batch, int32_t &budget);
    // How many tokens grammar fast-forward may add after the slot's sampled token.
    size_t ForcedLimit(const Slot &slot) const;
    void Finish(Slot &slot, StopReason reason, std::vector<Event> &events);
    void Fail(Slot &slot, ErrorCode code, const std::string &message, std::vector<Event> &events);
    void Free(Slot &slot);
    void Forget(uint64_t requestId);

    SharedModel model_;
    SharedProjector projector_;
    llama_context_ptr ctx_;
    const llama_vocab *vocab_ = nullptr;
    uint32_t nCtx_ = 0;
    uint32_t nCtxSeq_ = 0;
    uint32_t nBatch_ = 0;
    int32_t nVocab_ = 0;
    std::unique_ptr<TokenPieces> pieces_;  // built on the decode thread for the first fast-forward request

    std::vector<std::unique_ptr<Slot>> slots_;
    Sink sink_;
    std::thread encoder_;
    std::thread decoder_;
    std::mutex mutex_;
    std::mutex stopMutex_;
    std::condition_variable wakeEncoder_;
    std::condition_variable wakeDecoder_;
    std::deque<std::shared_ptr<Request>> incoming_;  // submitted, not yet prepared
    std::deque<std::shared_ptr<Request>> ready_;     // prepared, waiting for a slot
    uint32_t parallel_ = 1;
    std::unordered_map<uint64_t, std::shared_ptr<Request>> live_;
    bool decoderIdle_ = false;  // the decode thread waits with every slot free; guarded by mutex_
    std::atomic<bool> stopping_{false};
    std::atomic<bool> abortBeforeDecode_{false};
    std::atomic<int> throwAt_{0};
    void MaybeThrowTestFault(ThrowAt stage);
};

}  // namespace llama_vlm
