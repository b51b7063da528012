#include "Engine.h"

#include <mtmd-helper.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#if defined(__linux__)
#include <pthread.h>
#endif

#include "HugePages.h"
#include "Log.h"

namespace llama_vlm {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// The code and message for an exception caught around one request's work: a VlmError keeps its code; anything
// else llama.cpp or the standard library throws (std::bad_alloc, std::runtime_error, …) is NATIVE_ERROR, so that
// one request fails and the engine thread lives on instead of ending in std::terminate.
void DescribeException(std::exception_ptr error, ErrorCode &code, std::string &message) {
    try {
        std::rethrow_exception(error);
    } catch (const VlmError &e) {
        code = e.code();
        message = e.what();
    } catch (const std::exception &e) {
        code = ErrorCode::NativeError;
        message = std::string("llama.cpp failed: ") + e.what();
    } catch (...) {
        code = ErrorCode::NativeError;
        message = "llama.cpp failed with an exception that is not a std::exception";
    }
}

// Names the calling thread (Linux: shown by top -H and /proc/<pid>/task/*/comm; threads it starts, ggml's OpenMP
// workers included, inherit the name).
void NameThread(const char *name) {
#if defined(__linux__)
    pthread_setname_np(pthread_self(), name);
#else
    (void)name;
#endif
}

// Runs fn on a new thread named `name` and waits for it; rethrows what fn threw. For ggml work that must not leave a
// thread team behind: the team of a thread ends with it (Engine.h).
template <typename Fn>
void RunOnShortLivedThread(const char *name, Fn &&fn) {
    std::exception_ptr error;
    std::thread([&] {
        NameThread(name);
        try {
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    }).join();
    if (error) std::rethrow_exception(error);
}

// Owns a llama_batch: freed on every way out of the scope that made it.
class OwnedBatch {
  public:
    explicit OwnedBatch(int32_t nTokens) : batch(llama_batch_init(nTokens, 0, 1)) {}
    ~OwnedBatch() { llama_batch_free(batch); }
    OwnedBatch(const OwnedBatch &) = delete;
    OwnedBatch &operator=(const OwnedBatch &) = delete;
    llama_batch batch;
};

void BatchAdd(llama_batch &batch, llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
    const int32_t i = batch.n_tokens++;
    batch.token[i] = token;
    batch.pos[i] = pos;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = seq;
    batch.logits[i] = logits ? 1 : 0;
}

// Samples like llama_sampler_sample and also returns the top-n probabilities of the distribution the token
// was drawn from: the candidates the chain kept (grammar, logit bias and truncating samplers applied),
// softmax of their logits. That is what a confidence should be read from: a token the grammar forces has
// probability 1 here, not its raw probability.
llama_token SampleWithProbs(llama_sampler *chain, const float *logits, int32_t nVocab, int32_t n,
                            std::vector<std::pair<llama_token, float>> &probs) {
    std::vector<llama_token_data> data(static_cast<size_t>(nVocab));
    for (int32_t i = 0; i < nVocab; ++i) data[static_cast<size_t>(i)] = {i, logits[i], 0.0f};
    llama_token_data_array cur{data.data(), data.size(), -1, false};
    llama_sampler_apply(chain, &cur);
    if (cur.selected < 0 || static_cast<size_t>(cur.selected) >= cur.size) {
        throw VlmError(ErrorCode::NativeError, "the sampler chain selected no token");
    }
    const llama_token token = cur.data[cur.selected].id;
    llama_sampler_accept(chain, token);
    std::vector<llama_token_data> kept;
    for (size_t i = 0; i < cur.size; ++i) {
        if (!(std::isinf(cur.data[i].logit) && cur.data[i].logit < 0)) kept.push_back(cur.data[i]);
    }
    std::sort(kept.begin(), kept.end(),
              [](const llama_token_data &a, const llama_token_data &b) { return a.logit > b.logit; });
    double sum = 0.0;
    for (const auto &t : kept) sum += std::exp(static_cast<double>(t.logit - kept[0].logit));
    probs.clear();
    for (size_t i = 0; i < kept.size() && i < static_cast<size_t>(n); ++i) {
        probs.emplace_back(kept[i].id,
                           static_cast<float>(std::exp(static_cast<double>(kept[i].logit - kept[0].logit)) / sum));
    }
    return token;
}

// Takes a forced token through the chain as sampling would take the only token the grammar allows: the chain runs
// over that one candidate (so the dist sampler draws once, as it does for every sampled token, and a seeded request
// goes on drawing the same numbers) and accepts it (the grammar advances, the penalties count it).
void Force(llama_sampler *chain, llama_token token) {
    llama_token_data only{token, 0.0f, 0.0f};
    llama_token_data_array cur{&only, 1, -1, false};
    llama_sampler_apply(chain, &cur);
    llama_sampler_accept(chain, token);
}

// Every live engine, so that process exit can stop their threads before llama.cpp's and ggml's static
// state is destroyed (process.exit() runs atexit handlers, not environment cleanup hooks).
struct Registry {
    std::mutex mutex;
    std::vector<Engine *> engines;
};

Registry &registry() {
    static Registry *instance = new Registry();  // never destroyed: used during exit
    return *instance;
}

void StopAllEnginesAtExit() {
    std::vector<Engine *> engines;
    {
        std::lock_guard<std::mutex> lock(registry().mutex);
        engines = registry().engines;
    }
    for (Engine *engine : engines) engine->Stop();
}

}  // namespace

struct Engine::Slot {
    enum class State { Idle, Prefill, Generate };
    llama_seq_id seq = 0;
    State state = State::Idle;
    std::shared_ptr<Request> request;
    SamplerPtr sampler;
    StopStrings stops;
    size_t chunkIndex = 0;
    size_t tokenOffset = 0;
    llama_pos nPast = 0;
    int32_t cellsUsed = 0;
    std::vector<llama_token> pending;  // decoded in the next step: the sampled token, then the tokens it forces
    std::unique_ptr<GrammarForcer> forcer;
    int32_t batchIndex = -1;
    int32_t nGenerated = 0;
    int32_t nForced = 0;
    Timings timings;
    double encodeInSlotMs = 0;  // images this thread encoded during the prefill: not prompt time
    Clock::time_point started;
    Clock::time_point firstToken;

    void Reset() {
        state = State::Idle;
        request.reset();
        sampler.reset();
        stops = StopStrings();
        chunkIndex = 0;
        tokenOffset = 0;
        nPast = 0;
        cellsUsed = 0;
        pending.clear();
        forcer.reset();
        batchIndex = -1;
        nGenerated = 0;
        encodeInSlotMs = 0;
        nForced = 0;
        timings = Timings();
    }
};

Engine::Engine(SharedModel model, SharedProjector projector, const EngineParams &params)
    : model_(std::move(model)), projector_(std::move(projector)) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = params.contextSize * params.parallel;
    cp.n_batch = params.batchSize;
    cp.n_ubatch = params.ubatchSize;
    cp.n_seq_max = params.parallel;
    cp.n_threads = params.threads;
    cp.n_threads_batch = params.threadsBatch;
    cp.flash_attn_type = static_cast<llama_flash_attn_type>(params.flashAttention);
    cp.type_k = static_cast<ggml_type>(params.typeK);
    cp.type_v = static_cast<ggml_type>(params.typeV);
    cp.kv_unified = false;  // each sequence gets its own contextSize: no request can starve another
    cp.no_perf = true;
    cp.abort_callback = [](void *data) { return static_cast<Engine *>(data)->stopping_.load(); };
    cp.abort_callback_data = this;
    TakeLastError();
    std::optional<HugePageLoad> hugePages;
    if (params.hugePages) hugePages.emplace();
    llama_context *ctx = llama_init_from_model(model_.get(), cp);
    if (ctx != nullptr && hugePages) hugePages->AdviseNewMappings();
    if (ctx == nullptr) {
        std::string why = TakeLastError();
        throw VlmError(ErrorCode::NativeError,
                       "llama.cpp could not create the context" + (why.empty() ? "" : ": " + why));
    }
    ctx_.reset(ctx);
    vocab_ = llama_model_get_vocab(model_.get());
    nVocab_ = llama_vocab_n_tokens(vocab_);
    nCtx_ = llama_n_ctx(ctx);
    nCtxSeq_ = llama_n_ctx_seq(ctx);
    nBatch_ = llama_n_batch(ctx);
    parallel_ = params.parallel;
    if (params.warmup) Warmup();
    {
        // Registered when the first engine exists, after the static state of llama.cpp, ggml and the
        // OpenMP runtime that a context brings up, so that it runs before their destructors.
        static std::once_flag once;
        std::call_once(once, [] { std::atexit(StopAllEnginesAtExit); });
        std::lock_guard<std::mutex> lock(registry().mutex);
        registry().engines.push_back(this);
    }
    for (uint32_t i = 0; i < params.parallel; ++i) {
        auto slot = std::make_unique<Slot>();
        slot->seq = static_cast<llama_seq_id>(i);
        slots_.push_back(std::move(slot));
    }
}

Engine::~Engine() {
    {
        std::lock_guard<std::mutex> lock(registry().mutex);
        auto &list = registry().engines;
        list.erase(std::remove(list.begin(), list.end(), this), list.end());
    }
    Stop();
}

void Engine::Start(Sink sink) {
    sink_ = std::move(sink);
    encoder_ = std::thread([this] { RunEncoder(); });
    decoder_ = std::thread([this] { RunDecoder(); });
}

void Engine::Submit(std::shared_ptr<Request> request) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        live_[request->id] = request;
        incoming_.push_back(std::move(request));
    }
    wakeEncoder_.notify_one();
}

void Engine::Cancel(uint64_t requestId) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = live_.find(requestId);
        if (it != live_.end()) it->second->cancelled.store(true);
    }
    wakeDecoder_.notify_one();
}

void Engine::Stop() {
    std::lock_guard<std::mutex> once(stopMutex_);  // dispose, the destructor and process exit may all call this
    stopping_.store(true);
    wakeEncoder_.notify_all();
    wakeDecoder_.notify_all();
    if (encoder_.joinable()) encoder_.join();
    if (decoder_.joinable()) decoder_.join();
    // Both stages are gone: whatever never reached a slot is told so here.
    std::vector<Event> events;
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto *queue : {&incoming_, &ready_}) {
        for (auto &req : *queue) {
            Event e;
            e.kind = Event::Kind::Error;
            e.requestId = req->id;
            e.code = ErrorCode::Disposed;
            e.message = "the context was disposed";
            events.push_back(std::move(e));
        }
        queue->clear();
    }
    live_.clear();
    if (!events.empty() && sink_) sink_(std::move(events));
}

void Engine::Forget(uint64_t requestId) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_.erase(requestId);
}

// Encoder stage: tokenize, check the fit, encode images (or take them from the cache).
void Engine::Prepare(Request &req) {
    if (!projector_) {
        std::string text;
        for (const std::string &part : req.textParts) text += part;
        req.textOnly = Tokenize(vocab_, text, req.addSpecial, true);
        req.promptTokens = static_cast<int32_t>(req.textOnly.size());
    } else {
        std::vector<mtmd::bitmap> bitmaps;
        for (const Image &image : req.images) {
            mtmd::bitmap bitmap(mtmd_bitmap_init(image.width, image.height, image.rgb.data()));
            if (!image.id.empty()) bitmap.set_id(image.id.c_str());
            bitmaps.push_back(std::move(bitmap));
        }
        std::vector<mtmd_input_text> texts(req.textParts.size());
        std::vector<mtmd_input_part> parts;
        for (size_t i = 0; i < req.textParts.size(); ++i) {
            texts[i] = {req.textParts[i].data(), req.textParts[i].size(), false, true};
            parts.push_back({&texts[i], nullptr});
            if (i < bitmaps.size()) parts.push_back({nullptr, bitmaps[i].ptr.get()});
        }
        std::vector<const mtmd_input_part *> partPtrs;
        for (const auto &p : parts) partPtrs.push_back(&p);
        req.chunks.ptr.reset(mtmd_input_chunks_init());
        TakeLastError();
        int32_t rc = mtmd_tokenize_from_parts(projector_->ctx.get(), req.chunks.ptr.get(), partPtrs.data(),
                                              partPtrs.size(), req.addSpecial);
        if (rc != 0) {
            std::string why = TakeLastError();
            throw VlmError(rc == 2 ? ErrorCode::ImageDecodeFailed : ErrorCode::NativeError,
                           "the vision encoder could not prepare the prompt (mtmd_tokenize returned " +
                               std::to_string(rc) + ")" + (why.empty() ? "" : ": " + why));
        }
        req.images.clear();  // the chunks hold the preprocessed pixels now
        req.promptTokens = static_cast<int32_t>(mtmd_helper_get_n_tokens(req.chunks.ptr.get()));
        const size_t n = req.chunks.size();
        if (n == 0 || mtmd_input_chunk_get_type(req.chunks[n - 1]) != MTMD_INPUT_CHUNK_TYPE_TEXT) {
            throw VlmError(ErrorCode::InvalidOption, "the prompt must end with text after its last image");
        }
        for (size_t i = 0; i < n; ++i) {
            if (mtmd_input_chunk_get_type(req.chunks[i]) != MTMD_INPUT_CHUNK_TYPE_TEXT) {
                req.imageTokens += static_cast<int32_t>(mtmd_input_chunk_get_n_tokens(req.chunks[i]));
            }
        }
    }
    if (req.promptTokens == 0) throw VlmError(ErrorCode::InvalidOption, "the prompt is empty");
    if (static_cast<uint32_t>(req.promptTokens) + 1 > nCtxSeq_) {
        throw VlmError(ErrorCode::OverContext,
                       "the prompt needs " + std::to_string(req.promptTokens) + " tokens (" +
                           std::to_string(req.imageTokens) + " of them for images) but a sequence holds " +
                           std::to_string(nCtxSeq_) + "; raise contextSize or shorten the prompt or images");
    }
    // Nothing to generate: the request ends in the encoder stage (RunEncoder), and its images need no encoding.
    if (!projector_ || req.maxTokens == 0) return;

    const size_t n = req.chunks.size();
    req.embeddings.resize(n);
    auto isMedia = [&](size_t i) { return mtmd_input_chunk_get_type(req.chunks[i]) != MTMD_INPUT_CHUNK_TYPE_TEXT; };
    // Cache keys: the image's content hash, plus which of that image's chunks this is (an image can become
    // several chunks, e.g. tiles) and its token count.
    req.cacheKeys.assign(n, std::string());
    std::unordered_map<std::string, int> seen;
    for (size_t i = 0; i < n; ++i) {
        const char *id = isMedia(i) ? mtmd_input_chunk_get_id(req.chunks[i]) : nullptr;
        if (id == nullptr || *id == '\0') continue;
        req.cacheKeys[i] = std::string(id) + "#" + std::to_string(seen[id]++) + ":" +
                           std::to_string(mtmd_input_chunk_get_n_tokens(req.chunks[i]));
    }
    std::vector<size_t> todo;
    for (size_t i = 0; i < n; ++i) {
        if (!isMedia(i)) continue;
        if (!req.cacheKeys[i].empty()) {
            if (Embeddings hit = projector_->cache->Get(req.cacheKeys[i])) {
                req.embeddings[i] = std::move(hit);
                ++req.imageCacheHits;
                continue;
            }
        }
        todo.push_back(i);
    }
    if (todo.empty()) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        // The decode thread is idle (every slot free, nothing prepared), and stays so until this request is ready:
        // only this thread fills ready_. It encodes the images itself when the request's prefill reaches them
        // (Prefill), so no second ggml thread team runs, and the text before an image is decoded before the image
        // is encoded, as llama-mtmd-cli does.
        if (decoderIdle_ && ready_.empty()) return;
    }
    // The decode thread is busy: encode here, overlapping it, on a thread whose ggml team ends with it (Engine.h).
    RunOnShortLivedThread("vlm-encode-job", [&] { EncodeChunks(req, todo); });
}

// Encodes the media chunks `todo` (ascending indices) of a request into req.embeddings and the projector's cache.
// Returns early, leaving some unencoded, if the request is cancelled or the engine stops.
void Engine::EncodeChunks(Request &req, const std::vector<size_t> &todo) {
    const size_t nEmbd = static_cast<size_t>(llama_model_n_embd_inp(model_.get()));
    // Encode as llama-mtmd-cli does: consecutive media chunks together in one mtmd batch where the projector
    // allows it (one pass for encoders that support batching), each run of them split by text.
    for (size_t t = 0; t < todo.size();) {
        if (req.cancelled.load() || stopping_.load()) return;
        const auto t0 = Clock::now();
        size_t u = t;
        {
            std::lock_guard<std::mutex> lock(projector_->encodeMutex);
            mtmd::batch_ptr batch(mtmd_batch_init(projector_->ctx.get()));
            TakeLastError();
            if (mtmd_batch_add_chunk(batch.get(), req.chunks[todo[t]]) != 0) {
                std::string why = TakeLastError();
                throw VlmError(ErrorCode::NativeError,
                               "the vision encoder rejected an image" + (why.empty() ? "" : ": " + why));
            }
            for (u = t + 1; u < todo.size() && todo[u] == todo[u - 1] + 1; ++u) {
                if (mtmd_batch_add_chunk(batch.get(), req.chunks[todo[u]]) != 0) break;
            }
            if (mtmd_batch_encode(batch.get()) != 0) {
                std::string why = TakeLastError();
                throw VlmError(ErrorCode::NativeError,
                               "the vision encoder failed on an image" + (why.empty() ? "" : ": " + why));
            }
            for (size_t v = t; v < u; ++v) {
                const mtmd_input_chunk *chunk = req.chunks[todo[v]];
                const float *out = mtmd_batch_get_output_embd(batch.get(), chunk);
                if (out == nullptr) throw VlmError(ErrorCode::NativeError, "the vision encoder returned no embeddings");
                auto embd =
                    std::make_shared<std::vector<float>>(out, out + mtmd_input_chunk_get_n_tokens(chunk) * nEmbd);
                if (!req.cacheKeys[todo[v]].empty()) projector_->cache->Put(req.cacheKeys[todo[v]], embd);
                req.embeddings[todo[v]] = std::move(embd);
            }
        }
        req.imageEncodeMs += MsSince(t0);
        t = u;
    }
}

// As llama.cpp's tools do at load (common_init_from_params): one decode of BOS and EOS, then an empty cache, so that
// the first request does not pay for first use (compute buffers touched, graph allocation). On a thread of its own,
// whose ggml thread team ends with it (Engine.h).
void Engine::Warmup() {
    RunOnShortLivedThread("vlm-warmup", [&] {
        std::vector<llama_token> tokens;
        for (llama_token t : {llama_vocab_bos(vocab_), llama_vocab_eos(vocab_)}) {
            if (t != LLAMA_TOKEN_NULL) tokens.push_back(t);
        }
        if (tokens.empty()) tokens.push_back(0);
        OwnedBatch owned(static_cast<int32_t>(tokens.size()));
        for (size_t i = 0; i < tokens.size(); ++i) {
            BatchAdd(owned.batch, tokens[i], static_cast<llama_pos>(i), 0, i + 1 == tokens.size());
        }
        const int32_t rc = llama_decode(ctx_.get(), owned.batch);
        llama_memory_clear(llama_get_memory(ctx_.get()), true);
        llama_synchronize(ctx_.get());
        if (rc != 0) throw VlmError(ErrorCode::NativeError, "the warm-up decode failed (" + std::to_string(rc) + ")");
    });
}

void Engine::MaybeThrowTestFault(ThrowAt stage) {
    // Read before the exchange: this runs for every prefill step, and the hook is armed only in tests.
    int expected = static_cast<int>(stage);
    if (throwAt_.load(std::memory_order_relaxed) == expected &&
        throwAt_.compare_exchange_strong(expected, static_cast<int>(ThrowAt::Nowhere))) {
        throw std::runtime_error("llama-vlm test fault: a std::runtime_error thrown in the " +
                                 std::string(stage == ThrowAt::Prepare ? "encoder" : "decoder") + " stage");
    }
}

void Engine::RunEncoder() {
    NameThread("vlm-encode");
    while (true) {
        std::shared_ptr<Request> req;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            // Keep at most `parallel` prepared requests ahead: enough to refill every slot, bounded memory.
            wakeEncoder_.wait(lock,
                              [&] { return stopping_.load() || (!incoming_.empty() && ready_.size() < parallel_); });
            if (stopping_.load()) return;
            req = std::move(incoming_.front());
            incoming_.pop_front();
        }
        std::vector<Event> events;
        if (!req->cancelled.load()) {
            try {
                MaybeThrowTestFault(ThrowAt::Prepare);
                Prepare(*req);
            } catch (...) {
                Event ev;
                ev.kind = Event::Kind::Error;
                ev.requestId = req->id;
                DescribeException(std::current_exception(), ev.code, ev.message);
                events.push_back(std::move(ev));
            }
        }
        if (events.empty() && (req->cancelled.load() || req->maxTokens == 0)) {
            Event ev;
            ev.kind = Event::Kind::Done;
            ev.requestId = req->id;
            ev.stopReason = req->cancelled.load() ? StopReason::Abort : StopReason::Length;
            ev.timings.imageEncodeMs = req->imageEncodeMs;
            ev.timings.imageTokens = req->imageTokens;
            ev.timings.imageCacheHits = req->imageCacheHits;
            ev.timings.promptTokens = req->promptTokens;
            events.push_back(std::move(ev));
        }
        if (stopping_.load()) {
            std::lock_guard<std::mutex> lock(mutex_);
            incoming_.push_front(std::move(req));  // the decoder's shutdown reports it
            return;
        }
        if (!events.empty()) {
            Forget(req->id);
            sink_(std::move(events));
            continue;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ready_.push_back(std::move(req));
        }
        // Requests submitted together are gathered by the decoder's short wait when it leaves idle.
        wakeDecoder_.notify_one();
    }
}

bool Engine::Admit() {
    bool any = false;
    bool admitted = false;
    for (auto &slot : slots_) {
        if (slot->state == Slot::State::Idle && !ready_.empty()) {
            slot->request = std::move(ready_.front());
            ready_.pop_front();
            slot->state = Slot::State::Prefill;
            slot->started = Clock::now();
            slot->sampler = std::move(slot->request->sampler);
            slot->forcer = std::move(slot->request->forcer);
            slot->stops = StopStrings(slot->request->stop);
            slot->timings.promptTokens = slot->request->promptTokens;
            slot->timings.imageTokens = slot->request->imageTokens;
            slot->timings.imageCacheHits = slot->request->imageCacheHits;
            slot->timings.imageEncodeMs = slot->request->imageEncodeMs;
            admitted = true;
        }
        any = any || slot->state != Slot::State::Idle;
    }
    if (admitted) wakeEncoder_.notify_one();
    return any;
}

void Engine::Prefill(Slot &slot, llama_batch &batch, int32_t &budget) {
    Request &req = *slot.request;
    if (!projector_) {
        while (budget > 0 && slot.tokenOffset < req.textOnly.size()) {
            const bool lastToken = slot.tokenOffset + 1 == req.textOnly.size();
            BatchAdd(batch, req.textOnly[slot.tokenOffset], slot.nPast++, slot.seq, lastToken);
            if (lastToken) slot.batchIndex = batch.n_tokens - 1;
            ++slot.tokenOffset;
            ++slot.cellsUsed;
            --budget;
        }
        return;
    }
    bool added = false;
    const size_t nChunks = req.chunks.size();
    while (slot.chunkIndex < nChunks) {
        const mtmd_input_chunk *chunk = req.chunks[slot.chunkIndex];
        if (mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
            size_t n = 0;
            const llama_token *tokens = mtmd_input_chunk_get_tokens_text(chunk, &n);
            while (budget > 0 && slot.tokenOffset < n) {
                const bool lastToken = slot.chunkIndex + 1 == nChunks && slot.tokenOffset + 1 == n;
                BatchAdd(batch, tokens[slot.tokenOffset], slot.nPast++, slot.seq, lastToken);
                if (lastToken) slot.batchIndex = batch.n_tokens - 1;
                ++slot.tokenOffset;
                ++slot.cellsUsed;
                --budget;
                added = true;
            }
            if (slot.tokenOffset < n) return;  // out of budget this step
            ++slot.chunkIndex;
            slot.tokenOffset = 0;
        } else {
            // Image embeddings decode in their own llama_decode calls, after this slot's text in the batch.
            if (added) return;
            if (!req.embeddings[slot.chunkIndex]) {
                // Left for this thread by the encoder stage (Prepare): encode this image, and the media chunks
                // right after it, now.
                std::vector<size_t> todo;
                for (size_t i = slot.chunkIndex; i < nChunks && !req.embeddings[i] &&
                                                 mtmd_input_chunk_get_type(req.chunks[i]) != MTMD_INPUT_CHUNK_TYPE_TEXT;
                     ++i) {
                    todo.push_back(i);
                }
                const double before = req.imageEncodeMs;
                EncodeChunks(req, todo);
                slot.timings.imageEncodeMs += req.imageEncodeMs - before;
                slot.encodeInSlotMs += req.imageEncodeMs - before;
                if (stopping_.load()) throw VlmError(ErrorCode::Disposed, "the context was disposed");
                if (!req.embeddings[slot.chunkIndex]) return;  // cancelled: the next step finishes it
            }
            const Embeddings &embd = req.embeddings[slot.chunkIndex];
            llama_pos newPast = slot.nPast;
            const auto t0 = Clock::now();
            int32_t rc = mtmd_helper_decode_image_chunk(projector_->ctx.get(), ctx_.get(), chunk,
                                                        const_cast<float *>(embd->data()), slot.nPast, slot.seq,
                                                        static_cast<int32_t>(nBatch_), &newPast, nullptr, nullptr);
            if (rc != 0) {
                if (stopping_.load()) throw VlmError(ErrorCode::Disposed, "the context was disposed");
                throw VlmError(ErrorCode::NativeError,
                               "llama_decode failed on image embeddings (" + std::to_string(rc) + ")");
            }
            slot.timings.imagePrefillMs += MsSince(t0);
            slot.nPast = newPast;
            slot.cellsUsed += static_cast<int32_t>(mtmd_input_chunk_get_n_tokens(chunk));
            ++slot.chunkIndex;
            return;  // one image per step keeps generating slots moving
        }
    }
}

size_t Engine::ForcedLimit(const Slot &slot) const {
    // Every generating slot's tokens must fit one batch; maxTokens counts forced tokens, the sampled one first.
    int64_t limit = static_cast<int64_t>(nBatch_ / parallel_) - 1;
    if (slot.request->maxTokens >= 0)
        limit = std::min<int64_t>(limit, static_cast<int64_t>(slot.request->maxTokens) - slot.nGenerated - 1);
    return static_cast<size_t>(std::max<int64_t>(0, limit));
}

void Engine::Finish(Slot &slot, StopReason reason, std::vector<Event> &events) {
    Event e;
    e.kind = Event::Kind::Done;
    e.requestId = slot.request->id;
    e.stopReason = reason;
    e.bytes = slot.stops.Flush();
    if (slot.nGenerated > 0) slot.timings.generateMs = MsSince(slot.firstToken);
    slot.timings.generatedTokens = slot.nGenerated;
    slot.timings.forcedTokens = slot.nForced;
    e.timings = slot.timings;
    events.push_back(std::move(e));
    Free(slot);
}

void Engine::Fail(Slot &slot, ErrorCode code, const std::string &message, std::vector<Event> &events) {
    Event e;
    e.kind = Event::Kind::Error;
    e.requestId = slot.request->id;
    e.code = code;
    e.message = message;
    events.push_back(std::move(e));
    Free(slot);
}

void Engine::Free(Slot &slot) {
    llama_memory_seq_rm(llama_get_memory(ctx_.get()), slot.seq, -1, -1);
    Forget(slot.request->id);
    slot.Reset();
}

void Engine::RunDecoder() {
    NameThread("vlm-decode");
    OwnedBatch owned(static_cast<int32_t>(nBatch_));
    llama_batch &batch = owned.batch;
    std::vector<Event> events;
    while (true) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            const bool wasIdle = std::all_of(slots_.begin(), slots_.end(),
                                             [](const auto &slot) { return slot->state == Slot::State::Idle; });
            wakeDecoder_.wait(lock, [&] {
                if (stopping_.load()) return true;
                const bool busy = Admit();
                decoderIdle_ = !busy;  // read by the encoder stage (Prepare)
                return busy;
            });
            decoderIdle_ = false;
            if (stopping_.load()) break;
            if (wasIdle) {
                // Requests submitted together (one JS tick) reach the engine microseconds apart. Waiting a
                // moment lets them prefill in one batch and decode in lockstep, instead of the first one's
                // whole prefill running before the others start.
                const size_t idle = static_cast<size_t>(std::count_if(
                    slots_.begin(), slots_.end(), [](const auto &slot) { return slot->state == Slot::State::Idle; }));
                wakeDecoder_.wait_for(lock, std::chrono::milliseconds(25),
                                      [&] { return stopping_.load() || ready_.size() >= idle; });
                Admit();
            }
        }
        events.clear();
        batch.n_tokens = 0;
        // Built for the first fast-forward request (about 0.1 s for a 150k vocabulary), outside the lock that
        // Submit and Cancel take.
        if (!pieces_ && std::any_of(slots_.begin(), slots_.end(), [](const auto &s) { return s->forcer != nullptr; }))
            pieces_ = std::make_unique<TokenPieces>(vocab_);

        for (auto &s : slots_) {
            Slot &slot = *s;
            slot.batchIndex = -1;
            if (slot.state != Slot::State::Idle && slot.request->cancelled.load())
                Finish(slot, StopReason::Abort, events);
        }
        for (auto &s : slots_) {
            Slot &slot = *s;
            if (slot.state != Slot::State::Generate) continue;
            // Logits for the last only: the forced tokens before it are not sampled.
            for (size_t i = 0; i < slot.pending.size(); ++i)
                BatchAdd(batch, slot.pending[i], slot.nPast++, slot.seq, i + 1 == slot.pending.size());
            slot.batchIndex = batch.n_tokens - 1;
            slot.cellsUsed += static_cast<int32_t>(slot.pending.size());
        }
        int32_t budget = static_cast<int32_t>(nBatch_) - batch.n_tokens;
        for (auto &s : slots_) {
            Slot &slot = *s;
            if (slot.state != Slot::State::Prefill) continue;
            try {
                MaybeThrowTestFault(ThrowAt::Prefill);
                Prefill(slot, batch, budget);
            } catch (...) {
                // Tokens this slot already put in the batch must not be decoded into a freed sequence.
                for (int32_t i = batch.n_tokens - 1; i >= 0 && batch.seq_id[i][0] == slot.seq; --i) batch.n_tokens = i;
                ErrorCode code = ErrorCode::NativeError;
                std::string message;
                DescribeException(std::current_exception(), code, message);
                Fail(slot, code, message, events);
            }
            if (stopping_.load()) break;
        }
        if (stopping_.load()) break;

        if (batch.n_tokens > 0) {
            if (abortBeforeDecode_.load()) GGML_ABORT("llama-vlm test fault: abort requested before llama_decode");
            int32_t rc = llama_decode(ctx_.get(), batch);
            if (rc != 0) {
                if (stopping_.load()) break;
                for (auto &s : slots_) {
                    if (s->state != Slot::State::Idle && s->batchIndex >= 0) {
                        Fail(*s, ErrorCode::NativeError, "llama_decode failed (" + std::to_string(rc) + ")", events);
                    }
                }
                sink_(std::move(events));
                events = {};
                continue;
            }
        }

        for (auto &s : slots_) {
            Slot &slot = *s;
            if (slot.state == Slot::State::Idle || slot.batchIndex < 0) continue;
            Request &req = *slot.request;
            const bool first = slot.state == Slot::State::Prefill;
            Event e;
            llama_token token = LLAMA_TOKEN_NULL;
            std::vector<llama_token> forced;
            try {
                token = req.nProbs > 0
                            ? SampleWithProbs(slot.sampler.get(), llama_get_logits_ith(ctx_.get(), slot.batchIndex),
                                              nVocab_, req.nProbs, e.probs)
                            : llama_sampler_sample(slot.sampler.get(), ctx_.get(), slot.batchIndex);
                if (slot.forcer && !llama_vocab_is_eog(vocab_, token)) {
                    slot.forcer->Accept(token);
                    forced = slot.forcer->Forced(token, ForcedLimit(slot), *pieces_);
                    for (llama_token f : forced) {
                        Force(slot.sampler.get(), f);
                        slot.forcer->Accept(f);
                    }
                }
            } catch (...) {
                // e.g. a grammar that allows no token here: this request fails, the others go on.
                ErrorCode code = ErrorCode::NativeError;
                std::string message;
                DescribeException(std::current_exception(), code, message);
                Fail(slot, code, "sampling failed: " + message, events);
                continue;
            }
            if (first) {
                slot.state = Slot::State::Generate;
                slot.timings.promptMs = MsSince(slot.started) - slot.encodeInSlotMs;
                slot.firstToken = Clock::now();
            }
            if (llama_vocab_is_eog(vocab_, token)) {
                Finish(slot, StopReason::Eos, events);
                continue;
            }
            slot.pending.assign(1, token);
            slot.pending.insert(slot.pending.end(), forced.begin(), forced.end());
            for (size_t i = 0; i < slot.pending.size(); ++i) {
                const llama_token t = slot.pending[i];
                if (i > 0) {
                    e = Event();
                    if (req.nProbs > 0) e.probs.emplace_back(t, 1.0f);
                    ++slot.nForced;
                }
                e.kind = Event::Kind::Token;
                e.requestId = req.id;
                e.token = t;
                e.bytes = slot.stops.Push(TokenPiece(vocab_, t));
                events.push_back(std::move(e));
                ++slot.nGenerated;
                // Checked after every token, forced ones too, before the next step is assembled: a finished
                // sequence takes no further token. Token i needs a cell of its own to be decoded.
                if (slot.stops.matched()) {
                    Finish(slot, StopReason::Stop, events);
                } else if (req.maxTokens >= 0 && slot.nGenerated >= req.maxTokens) {
                    Finish(slot, StopReason::Length, events);
                } else if (static_cast<uint32_t>(slot.cellsUsed) + i + 1 > nCtxSeq_) {
                    Finish(slot, StopReason::Context, events);
                }
                if (slot.state == Slot::State::Idle) break;
            }
        }
        if (!events.empty()) {
            sink_(std::move(events));
            events = {};
        }
    }

    // Stopped: everything still running or queued is told so.
    events.clear();
    for (auto &s : slots_) {
        if (s->state != Slot::State::Idle) Fail(*s, ErrorCode::Disposed, "the context was disposed", events);
    }
    if (!events.empty()) sink_(std::move(events));
}

}  // namespace llama_vlm
