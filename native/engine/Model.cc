#include "Model.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <optional>

#include "Errors.h"
#include "HugePages.h"
#include "Log.h"

namespace llama_vlm {

SharedModel LoadModel(const ModelLoadParams &params, const std::function<void(float)> &onProgress,
                      const std::atomic<bool> &abort) {
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = params.gpuLayers;
    mp.load_mode = params.useMmap ? (params.useMlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP)
                                  : (params.useMlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE);
    mp.vocab_only = params.vocabOnly;
    std::optional<HugePageLoad> hugePages;
    if (params.hugePages && !params.vocabOnly) hugePages.emplace();
    struct Progress {
        const std::function<void(float)> *onProgress;
        const std::atomic<bool> *abort;
        HugePageLoad *hugePages;
    } state{&onProgress, &abort, hugePages ? &*hugePages : nullptr};
    mp.progress_callback = [](float p, void *data) {
        auto *s = static_cast<Progress *>(data);
        if (s->hugePages != nullptr) s->hugePages->OnProgress();
        if (*s->onProgress) (*s->onProgress)(p);
        return !s->abort->load();
    };
    mp.progress_callback_user_data = &state;
    TakeLastError();
    llama_model *raw = llama_model_load_from_file(params.path.c_str(), mp);
    if (raw == nullptr) {
        if (abort.load()) throw VlmError(ErrorCode::Aborted, "model load aborted");
        std::string why = TakeLastError();
        throw VlmError(ErrorCode::InvalidModel,
                       "llama.cpp could not load the model " + params.path + (why.empty() ? "" : ": " + why));
    }
    if (hugePages) {
        HugePageReport hp = hugePages->Finish(raw);
        char line[160];
        std::snprintf(line, sizeof(line), "llama-vlm: %.0f of %.0f MiB of weights in RAM on huge pages (%.0f ms)",
                      hp.hugePageBytes / 1048576.0, hp.weightBytes / 1048576.0, hp.finishMs);
        LogEngineLine(GGML_LOG_LEVEL_INFO, line);
    }
    return SharedModel(raw, llama_model_free);
}

std::string TokenPiece(const llama_vocab *vocab, llama_token token) {
    char buf[256];
    int32_t n = llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, true);
    if (n >= 0) return std::string(buf, static_cast<size_t>(n));
    std::string piece(static_cast<size_t>(-n), '\0');
    n = llama_token_to_piece(vocab, token, piece.data(), static_cast<int32_t>(piece.size()), 0, true);
    piece.resize(static_cast<size_t>(std::max(0, n)));
    return piece;
}

std::vector<llama_token> Tokenize(const llama_vocab *vocab, const std::string &text, bool addSpecial,
                                  bool parseSpecial) {
    if (text.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2))
        throw VlmError(ErrorCode::InvalidOption,
                       "the text is too long to tokenize (" + std::to_string(text.size()) + " bytes)");
    const auto len = static_cast<int32_t>(text.size());
    // A token covers at least one byte, so bytes + the special tokens added around them is enough almost always.
    std::vector<llama_token> tokens(text.size() + 8);
    int32_t n = llama_tokenize(vocab, text.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()), addSpecial,
                               parseSpecial);
    if (n < 0 && n != std::numeric_limits<int32_t>::min()) {
        tokens.resize(static_cast<size_t>(-n));
        n = llama_tokenize(vocab, text.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()), addSpecial,
                           parseSpecial);
    }
    if (n < 0) throw VlmError(ErrorCode::NativeError, "llama.cpp could not tokenize the text");
    tokens.resize(static_cast<size_t>(n));
    return tokens;
}

std::string Detokenize(const llama_vocab *vocab, const llama_token *tokens, size_t count, bool removeSpecial,
                       bool unparseSpecial) {
    const auto n_tokens = static_cast<int32_t>(count);
    std::string text(count * 8 + 16, '\0');
    int32_t n = llama_detokenize(vocab, tokens, n_tokens, text.data(), static_cast<int32_t>(text.size()), removeSpecial,
                                 unparseSpecial);
    if (n < 0) {
        text.resize(static_cast<size_t>(-n));
        n = llama_detokenize(vocab, tokens, n_tokens, text.data(), static_cast<int32_t>(text.size()), removeSpecial,
                             unparseSpecial);
    }
    text.resize(static_cast<size_t>(std::max(0, n)));
    return text;
}

}  // namespace llama_vlm
