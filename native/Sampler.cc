#include "Sampler.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <json-schema-to-grammar.h>

#include "Errors.h"
#include "Logger.h"
#include "Model.h"

namespace llama_vlm {
namespace {

float GetFloat(const Napi::Object &o, const char *key, float fallback) {
    Napi::Value v = o.Get(key);
    return v.IsNumber() ? v.As<Napi::Number>().FloatValue() : fallback;
}

int32_t GetInt(const Napi::Object &o, const char *key, int32_t fallback) {
    Napi::Value v = o.Get(key);
    return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : fallback;
}

std::vector<std::string> GetStrings(const Napi::Object &o, const char *key) {
    std::vector<std::string> out;
    Napi::Value v = o.Get(key);
    if (!v.IsArray()) return out;
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    return out;
}

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

SamplerParams ReadSamplerParams(const Napi::Object &o) {
    SamplerParams p;
    p.temperature = GetFloat(o, "temperature", p.temperature);
    p.dynatempRange = GetFloat(o, "dynatempRange", p.dynatempRange);
    p.dynatempExponent = GetFloat(o, "dynatempExponent", p.dynatempExponent);
    p.topK = GetInt(o, "topK", p.topK);
    p.topP = GetFloat(o, "topP", p.topP);
    p.minP = GetFloat(o, "minP", p.minP);
    p.typicalP = GetFloat(o, "typicalP", p.typicalP);
    p.tfsZ = GetFloat(o, "tfsZ", p.tfsZ);
    p.minKeep = GetInt(o, "minKeep", p.minKeep);
    p.repeatPenalty = GetFloat(o, "repeatPenalty", p.repeatPenalty);
    p.repeatLastN = GetInt(o, "repeatLastN", p.repeatLastN);
    p.frequencyPenalty = GetFloat(o, "frequencyPenalty", p.frequencyPenalty);
    p.presencePenalty = GetFloat(o, "presencePenalty", p.presencePenalty);
    p.penalizeNewline = o.Get("penalizeNewline").ToBoolean().Value();
    p.dryMultiplier = GetFloat(o, "dryMultiplier", p.dryMultiplier);
    p.dryBase = GetFloat(o, "dryBase", p.dryBase);
    p.dryAllowedLength = GetInt(o, "dryAllowedLength", p.dryAllowedLength);
    p.dryPenaltyLastN = GetInt(o, "dryPenaltyLastN", p.dryPenaltyLastN);
    p.drySequenceBreakers = GetStrings(o, "drySequenceBreakers");
    p.xtcProbability = GetFloat(o, "xtcProbability", p.xtcProbability);
    p.xtcThreshold = GetFloat(o, "xtcThreshold", p.xtcThreshold);
    p.topNSigma = GetFloat(o, "topNSigma", p.topNSigma);
    p.mirostat = GetInt(o, "mirostat", p.mirostat);
    p.mirostatTau = GetFloat(o, "mirostatTau", p.mirostatTau);
    p.mirostatEta = GetFloat(o, "mirostatEta", p.mirostatEta);
    Napi::Value bias = o.Get("logitBias");
    if (bias.IsArray()) {
        Napi::Array a = bias.As<Napi::Array>();
        for (uint32_t i = 0; i + 1 < a.Length(); i += 2) {
            p.logitBias.push_back(
                {a.Get(i).As<Napi::Number>().Int32Value(), a.Get(i + 1).As<Napi::Number>().FloatValue()});
        }
    }
    Napi::Value grammar = o.Get("grammar");
    if (grammar.IsString()) p.grammar = grammar.As<Napi::String>().Utf8Value();
    Napi::Value seed = o.Get("seed");
    if (seed.IsNumber()) p.seed = seed.As<Napi::Number>().Uint32Value();
    p.order = GetStrings(o, "order");
    return p;
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
        if (vocab == nullptr) throw VlmError("INVALID_OPTION", "a grammar needs the model's vocabulary");
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
            throw VlmError("INVALID_OPTION", "the grammar does not parse as GBNF" + (why.empty() ? "" : ": " + why));
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
            if (vocab == nullptr) throw VlmError("INVALID_OPTION", "DRY needs the model's vocabulary");
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
            throw VlmError("INVALID_OPTION", "unknown sampler in samplerOrder: " + name);
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

Napi::Value ApplySamplers(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    SamplerParams params = ReadSamplerParams(info[0].As<Napi::Object>());
    Napi::Float32Array logits = info[1].As<Napi::Float32Array>();
    Napi::Int32Array history = info[2].As<Napi::Int32Array>();
    bool select = info[3].ToBoolean().Value();
    SharedModel model;
    if (info[4].IsObject()) model = Model::Unwrap(info[4].As<Napi::Object>())->Get(env);
    const llama_vocab *vocab = model ? llama_model_get_vocab(model.get()) : nullptr;
    const int32_t nVocab = static_cast<int32_t>(logits.ElementLength());
    SamplerPtr chain;
    try {
        chain = BuildSamplerChain(params, vocab, nVocab, select);
    } catch (const VlmError &e) {
        throw ToJsError(env, e.code(), e.what());
    }
    for (size_t i = 0; i < history.ElementLength(); ++i) llama_sampler_accept(chain.get(), history[i]);
    std::vector<llama_token_data> data(static_cast<size_t>(nVocab));
    for (int32_t i = 0; i < nVocab; ++i) data[static_cast<size_t>(i)] = {i, logits[static_cast<size_t>(i)], 0.0f};
    llama_token_data_array cur{data.data(), data.size(), -1, false};
    llama_sampler_apply(chain.get(), &cur);
    int32_t selected = -1;
    if (select && cur.selected >= 0 && static_cast<size_t>(cur.selected) < cur.size)
        selected = cur.data[cur.selected].id;
    // Samplers such as grammar, top-n-sigma and logit bias mask tokens with -inf instead of removing them.
    auto masked = [](const llama_token_data &t) { return std::isinf(t.logit) && t.logit < 0; };
    cur.size = static_cast<size_t>(std::remove_if(cur.data, cur.data + cur.size, masked) - cur.data);
    if (cur.size > 0) SoftmaxSorted(&cur);
    Napi::Int32Array ids = Napi::Int32Array::New(env, cur.size);
    Napi::Float32Array outLogits = Napi::Float32Array::New(env, cur.size);
    Napi::Float32Array probs = Napi::Float32Array::New(env, cur.size);
    for (size_t i = 0; i < cur.size; ++i) {
        ids[i] = cur.data[i].id;
        outLogits[i] = cur.data[i].logit;
        probs[i] = cur.data[i].p;
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("ids", ids);
    out.Set("logits", outLogits);
    out.Set("probs", probs);
    out.Set("selected", selected);
    return out;
}

Napi::Value JsonSchemaToGrammar(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string schema = info[0].As<Napi::String>().Utf8Value();
    try {
        return Napi::String::New(env, json_schema_to_grammar(common_json::parse(schema)));
    } catch (const std::exception &e) {
        throw ToJsError(env, "INVALID_OPTION", std::string("the JSON schema could not be converted: ") + e.what());
    }
}

}  // namespace llama_vlm
