// Builds a llama.cpp sampler chain from already-validated options (lib/sampling.ts owns names,
// defaults and validation; native/binding/Payload.h reads them into SamplerParams). Adds what upstream
// removed: tail-free sampling and penalties that leave the newline token alone.
//
// Thread: chains are built and used on the thread that samples (a Context's engine thread, or the JS
// thread in applySamplers for tests).
#pragma once

#include <llama.h>

#include <memory>
#include <string>
#include <vector>

namespace llama_vlm {

struct SamplerParams {
    float temperature = 0.8f;
    float dynatempRange = 0.0f;
    float dynatempExponent = 1.0f;
    int32_t topK = 40;
    float topP = 0.95f;
    float minP = 0.05f;
    float typicalP = 1.0f;
    float tfsZ = 1.0f;
    int32_t minKeep = 0;
    float repeatPenalty = 1.0f;
    int32_t repeatLastN = 64;
    float frequencyPenalty = 0.0f;
    float presencePenalty = 0.0f;
    bool penalizeNewline = false;
    float dryMultiplier = 0.0f;
    float dryBase = 1.75f;
    int32_t dryAllowedLength = 2;
    int32_t dryPenaltyLastN = -1;
    std::vector<std::string> drySequenceBreakers;
    float xtcProbability = 0.0f;
    float xtcThreshold = 0.1f;
    float topNSigma = -1.0f;
    int32_t mirostat = 0;
    float mirostatTau = 5.0f;
    float mirostatEta = 0.1f;
    std::vector<llama_logit_bias> logitBias;
    std::string grammar;
    uint32_t seed = LLAMA_DEFAULT_SEED;
    std::vector<std::string> order;  // names from lib/sampling.ts SAMPLER_NAMES
};

struct SamplerDeleter {
    void operator()(llama_sampler *s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// [sync, any thread] the full chain. `vocab` may be null only when no option needs it (DRY, grammar).
// With select=false the final token picker (greedy/dist/mirostat) is left out, for inspection.
// Throws VlmError(INVALID_OPTION) for a grammar that does not parse.
SamplerPtr BuildSamplerChain(const SamplerParams &params, const llama_vocab *vocab, int32_t nVocab, bool select = true);

// Tail-free sampling (removed upstream), as llama.cpp had it: keeps candidates until the normalised
// absolute second derivative of the sorted probabilities sums past z.
llama_sampler *NewTailFreeSampler(float z, size_t minKeep);

// llama.cpp's penalties sampler, except that the newline token's logit is restored afterwards
// (the reference pipeline's penalize_nl = false).
llama_sampler *NewPenaltiesKeepingNewline(llama_sampler *inner, llama_token newline);

struct SamplerRun {
    std::vector<llama_token_data> kept;  // the candidates the chain left, by logit descending, with probabilities
    llama_token selected = -1;           // -1 unless select
};

// [sync, any thread] builds a chain, accepts `history`, and runs it over `logits` (one per vocabulary entry);
// for tests and tools. Throws VlmError(INVALID_OPTION) as BuildSamplerChain does.
SamplerRun RunSamplerChain(const SamplerParams &params, const llama_vocab *vocab, const std::vector<float> &logits,
                           const std::vector<llama_token> &history, bool select);

// [sync, any thread] llama.cpp's JSON-schema → GBNF converter. Throws VlmError(INVALID_OPTION).
std::string GrammarFromJsonSchema(const std::string &schema);

}  // namespace llama_vlm
