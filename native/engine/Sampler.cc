#include "Sampler.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <json-schema-to-grammar.h>

#include "Errors.h"
#include "Log.h"

namespace llama_vlm {
namespace {

// Sorts candidates by logit, descending, and fills probabilities (softmax).
void SoftmaxSorted(llama_token_data_array *cur) {
    if (!cur->sorted) {
        std::sort(cur->data, cur->data + cur->size,
                  [](const llama_token_data &a, const llama_token_data &b) { return a.logit > b.logit; });
        cur->sorted = true;
    }
    float maxLogit = cur->data[0].logit;
    double sum = 0.0;
    for (size_t i = 0; i < cur->size; ++i) {
        cur->data[i].p = std::exp(cur->data[i].logit - maxLogit);
        sum += cur->data[i].p;
    }
    for (size_t i = 0; i < cur->size; ++i) cur->data[i].p = static_cast<float>(cur->data[i].p / sum);
}

struct TailFree {
    float z;
    size_t minKeep;
};

llama_sampler_i TailFreeInterface() {
    llama_sampler_i i{};
    i.name = [](const llama_sampler *) { return "tail-free"; };
    i.apply = [](llama_sampler *s, llama_token_data_array *cur) {
        const auto *tfs = static_cast<const TailFree *>(s->ctx);
        if (tfs->z >= 1.0f || cur->size <= 2) return;
        SoftmaxSorted(cur);
        std::vector<float> first(cur->size - 1);
        for (size_t k = 0; k + 1 < cur->size; ++k) first[k] = cur->data[k].p - cur->data[k + 1].p;
        std::vector<float> second(first.size() - 1);
        for (size_t k = 0; k + 1 < first.size(); ++k) second[k] = std::fabs(first[k] - first[k + 1]);
        float total = 0.0f;
        for (float v : second) total += v;
        for (float &v : second) v = total > 1e-6f ? v / total : 1.0f / static_cast<float>(second.size());
        float cumulative = 0.0f;
        size_t last = cur->size;
        for (size_t k = 0; k < second.size(); ++k) {
            cumulative += second[k];
            if (cumulative > tfs->z && k >= tfs->minKeep) {
                last = k;
                break;
            }
        }
        // Never more than the candidates earlier samplers left: minKeep only stops tail-free from cutting below it.
        cur->size = std::min(cur->size, std::max(last, std::max<size_t>(tfs->minKeep, 1)));
    };
    i.clone = [](const llama_sampler *s) {
        const auto *tfs = static_cast<const TailFree *>(s->ctx);
        return NewTailFreeSampler(tfs->z, tfs->minKeep);
    };
    i.free = [](llama_sampler *s) { delete static_cast<TailFree *>(s->ctx); };
    return i;
}

struct KeepNewline {
    llama_sampler *inner;
    llama_token newline;
};

llama_sampler_i KeepNewlineInterface() {
    llama_sampler_i i{};
    i.name = [](const llama_sampler *) { return "penalties-keep-newline"; };
    i.accept = [](llama_sampler *s, llama_token token) {
        llama_sampler_accept(static_cast<KeepNewline *>(s->ctx)->inner, token);
    };
    i.apply = [](llama_sampler *s, llama_token_data_array *cur) {
        auto *k = static_cast<KeepNewline *>(s->ctx);
        llama_token_data *nl = nullptr;
        float saved = 0.0f;
        for (size_t n = 0; n < cur->size; ++n) {
            if (cur->data[n].id == k->newline) {
                nl = &cur->data[n];
                saved = nl->logit;
                break;
            }
        }
        llama_sampler_apply(k->inner, cur);
        if (nl != nullptr) nl->logit = saved;
    };
    i.reset = [](llama_sampler *s) { llama_sampler_reset(static_cast<KeepNewline *>(s->ctx)->inner); };
    i.clone = [](const llama_sampler *s) {
        const auto *k = static_cast<const KeepNewline *>(s->ctx);
        return NewPenaltiesKeepingNewline(llama_sampler_clone(k->inner), k->newline);
    };
    i.free = [](llama_sampler *s) {
        auto *k = static_cast<KeepNewline *>(s->ctx);
        llama_sampler_free(k->inner);
        delete k;
    };
    return i;
}

}  // namespace

llama_sampler *NewTailFreeSampler(float z, size_t minKeep) {
    static llama_sampler_i iface = TailFreeInterface();
    return llama_sampler_init(&iface, new TailFree{z, minKeep});
}

llama_sampler *NewPenaltiesKeepingNewline(llama_sampler *inner, llama_token newline) {
    static llama_sampler_i iface = KeepNewlineInterface();
    return llama_sampler_init(&iface, new KeepNewline{inner, newline});
}

SamplerPtr BuildSamplerChain(const SamplerParams &p, const llama_vocab *vocab, int32_t nVocab, bool select) {
    llama_sampler_chain_params chainParams = llama_sampler_chain_default_params();
    chainParams.no_perf = true;
    SamplerPtr chain(llama_sampler_chain_init(chainParams));
    const size_t minKeep = static_cast<size_t>(std::max(0, p.minKeep));

    if (!p.logitBias.empty()) {
        llama_sampler_chain_add(chain.get(), llama_sampler_init_logit_bias(
                                                 nVocab, static_cast<int32_t>(p.logitBias.size()), p.logitBias.data()));
    }
    if (!p.grammar.empty()) {
        if (vocab == nullptr) throw VlmError(ErrorCode::InvalidOption, "a grammar needs the model's vocabulary");
        TakeLastError();
        llama_sampler *grammar = llama_sampler_init_grammar(vocab, p.grammar.c_str(), "root");
        if (grammar == nullptr) {
            // The parser's message ends with the grammar text from the error on: keep its start.
            std::string why = TakeLastError();
            const std::string prefix = "error parsing grammar: ";
            size_t at = why.find(prefix);
            why = at == std::string::npos ? "" : why.substr(at + prefix.size());
            while (!why.empty() && std::isspace(static_cast<unsigned char>(why.back()))) why.pop_back();
            if (why.size() >= 3 && why.compare(why.size() - 3, 3, " at") == 0) why += " the end of the grammar";
            if (why.size() > 160) why = why.substr(0, 160) + "…";
            throw VlmError(ErrorCode::InvalidOption,
                           "the grammar does not parse as GBNF" + (why.empty() ? "" : ": " + why));
        }
        llama_sampler_chain_add(chain.get(), grammar);
    }

    for (const std::string &name : p.order) {
        // Mirostat does its own truncation: only penalties, DRY and temperature run before it (as in llama.cpp).
        if (p.mirostat != 0 && name != "penalties" && name != "dry" && name != "temperature") continue;
        if (name == "penalties") {
            if (p.repeatLastN == 0 ||
                (p.repeatPenalty == 1.0f && p.frequencyPenalty == 0.0f && p.presencePenalty == 0.0f)) {
                continue;
            }
            llama_sampler *pen = llama_sampler_init_penalties(nVocab, p.repeatLastN, p.repeatPenalty,
                                                              p.frequencyPenalty, p.presencePenalty);
            llama_token nl = vocab != nullptr ? llama_vocab_nl(vocab) : LLAMA_TOKEN_NULL;
            if (!p.penalizeNewline && nl != LLAMA_TOKEN_NULL) pen = NewPenaltiesKeepingNewline(pen, nl);
            llama_sampler_chain_add(chain.get(), pen);
        } else if (name == "dry") {
            if (p.dryMultiplier == 0.0f) continue;
            if (vocab == nullptr) throw VlmError(ErrorCode::InvalidOption, "DRY needs the model's vocabulary");
            std::vector<const char *> breakers;
            for (const std::string &b : p.drySequenceBreakers) breakers.push_back(b.c_str());
            llama_sampler_chain_add(chain.get(),
                                    llama_sampler_init_dry(vocab, p.dryMultiplier, p.dryBase, p.dryAllowedLength,
                                                           p.dryPenaltyLastN, breakers.data(), breakers.size()));
        } else if (name == "topNSigma") {
            if (p.topNSigma > 0.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_n_sigma(p.topNSigma));
        } else if (name == "topK") {
            if (p.topK > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(p.topK));
        } else if (name == "tfsZ") {
            if (p.tfsZ < 1.0f) llama_sampler_chain_add(chain.get(), NewTailFreeSampler(p.tfsZ, minKeep));
        } else if (name == "typicalP") {
            if (p.typicalP < 1.0f)
                llama_sampler_chain_add(chain.get(), llama_sampler_init_typical(p.typicalP, minKeep));
        } else if (name == "topP") {
            if (p.topP < 1.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(p.topP, minKeep));
        } else if (name == "minP") {
            if (p.minP > 0.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(p.minP, minKeep));
        } else if (name == "xtc") {
            if (p.xtcProbability > 0.0f) {
                llama_sampler_chain_add(chain.get(),
                                        llama_sampler_init_xtc(p.xtcProbability, p.xtcThreshold, minKeep, p.seed));
            }
        } else if (name == "temperature") {
            if (p.temperature > 0.0f) {
                llama_sampler_chain_add(
                    chain.get(), p.dynatempRange > 0.0f
                                     ? llama_sampler_init_temp_ext(p.temperature, p.dynatempRange, p.dynatempExponent)
                                     : llama_sampler_init_temp(p.temperature));
            }
        } else {
            throw VlmError(ErrorCode::InvalidOption, "unknown sampler in samplerOrder: " + name);
        }
    }

    if (select) {
        if (p.mirostat == 1) {
            llama_sampler_chain_add(chain.get(),
                                    llama_sampler_init_mirostat(nVocab, p.seed, p.mirostatTau, p.mirostatEta, 100));
        } else if (p.mirostat == 2) {
            llama_sampler_chain_add(chain.get(), llama_sampler_init_mirostat_v2(p.seed, p.mirostatTau, p.mirostatEta));
        } else if (p.temperature <= 0.0f) {
            llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
        } else {
            llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(p.seed));
        }
    }
    return chain;
}

SamplerRun RunSamplerChain(const SamplerParams &params, const llama_vocab *vocab, const std::vector<float> &logits,
                           const std::vector<llama_token> &history, bool select) {
    const int32_t nVocab = static_cast<int32_t>(logits.size());
    SamplerPtr chain = BuildSamplerChain(params, vocab, nVocab, select);
    for (llama_token token : history) llama_sampler_accept(chain.get(), token);
    std::vector<llama_token_data> data(logits.size());
    for (int32_t i = 0; i < nVocab; ++i) data[static_cast<size_t>(i)] = {i, logits[static_cast<size_t>(i)], 0.0f};
    llama_token_data_array cur{data.data(), data.size(), -1, false};
    llama_sampler_apply(chain.get(), &cur);
    SamplerRun run;
    if (select && cur.selected >= 0 && static_cast<size_t>(cur.selected) < cur.size)
        run.selected = cur.data[cur.selected].id;
    // Samplers such as grammar, top-n-sigma and logit bias mask tokens with -inf instead of removing them.
    auto masked = [](const llama_token_data &t) { return std::isinf(t.logit) && t.logit < 0; };
    cur.size = static_cast<size_t>(std::remove_if(cur.data, cur.data + cur.size, masked) - cur.data);
    if (cur.size > 0) SoftmaxSorted(&cur);
    run.kept.assign(cur.data, cur.data + cur.size);
    return run;
}

std::string GrammarFromJsonSchema(const std::string &schema) {
    try {
        return json_schema_to_grammar(common_json::parse(schema));
    } catch (const std::exception &e) {
        throw VlmError(ErrorCode::InvalidOption, std::string("the JSON schema could not be converted: ") + e.what());
    }
}

}  // namespace llama_vlm
