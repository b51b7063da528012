// The text model (llama_model: weights and vocabulary). Contexts and Projectors share it through SharedModel, so it
// is freed when the last of them is gone.
// Thread: LoadModel blocks (call it off the JS thread); TokenPiece, Tokenize and Detokenize may run on any thread.
#pragma once

#include <llama.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace llama_vlm {

using SharedModel = std::shared_ptr<llama_model>;

struct ModelLoadParams {
    std::string path;
    int32_t gpuLayers = 0;
    bool useMmap = true;
    bool useMlock = false;
    bool vocabOnly = false;
    bool hugePages = true;  // weights in RAM on transparent huge pages (HugePages.h)
};

// [sync, blocking, any thread] onProgress(fraction) is called on the loading thread; setting `abort` stops the
// load. Throws VlmError: ABORTED after an abort, INVALID_MODEL when llama.cpp cannot load the file.
SharedModel LoadModel(const ModelLoadParams &params, const std::function<void(float)> &onProgress,
                      const std::atomic<bool> &abort);

// [sync, any thread] the bytes of one token's piece, special tokens rendered (may be part of a UTF-8 character).
std::string TokenPiece(const llama_vocab *vocab, llama_token token);

// [sync, any thread] text → tokens (llama_tokenize sized in one pass). `parseSpecial` reads special-token text such
// as "<|im_start|>" as that token. Throws VlmError NATIVE_ERROR when llama.cpp cannot tokenize the text.
std::vector<llama_token> Tokenize(const llama_vocab *vocab, const std::string &text, bool addSpecial,
                                  bool parseSpecial);

// [sync, any thread] tokens → text (llama_detokenize sized in one pass). Every token must be in the vocabulary.
std::string Detokenize(const llama_vocab *vocab, const llama_token *tokens, size_t count, bool removeSpecial,
                       bool unparseSpecial);

}  // namespace llama_vlm
