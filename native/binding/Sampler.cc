#include "Sampler.h"

#include "JsError.h"
#include "Model.h"
#include "Payload.h"
#include "engine/FastForward.h"
#include "engine/Sampler.h"

namespace llama_vlm {

Napi::Value ApplySamplers(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    SamplerParams params = ReadSamplerParams(info[0].As<Napi::Object>());
    Napi::Float32Array logits = info[1].As<Napi::Float32Array>();
    Napi::Int32Array history = info[2].As<Napi::Int32Array>();
    const bool select = info[3].ToBoolean().Value();
    SharedModel model;
    if (info[4].IsObject()) model = Model::Unwrap(info[4].As<Napi::Object>())->Get(env);
    const llama_vocab *vocab = model ? llama_model_get_vocab(model.get()) : nullptr;
    SamplerRun run;
    try {
        run =
            RunSamplerChain(params, vocab, std::vector<float>(logits.Data(), logits.Data() + logits.ElementLength()),
                            std::vector<llama_token>(history.Data(), history.Data() + history.ElementLength()), select);
    } catch (const VlmError &e) {
        throw ToJsError(env, e);
    }
    const size_t n = run.kept.size();
    Napi::Int32Array ids = Napi::Int32Array::New(env, n);
    Napi::Float32Array outLogits = Napi::Float32Array::New(env, n);
    Napi::Float32Array probs = Napi::Float32Array::New(env, n);
    for (size_t i = 0; i < n; ++i) {
        ids[i] = run.kept[i].id;
        outLogits[i] = run.kept[i].logit;
        probs[i] = run.kept[i].p;
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("ids", ids);
    out.Set("logits", outLogits);
    out.Set("probs", probs);
    out.Set("selected", run.selected);
    return out;
}

Napi::Value JsonSchemaToGrammar(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    try {
        return Napi::String::New(env, GrammarFromJsonSchema(info[0].As<Napi::String>().Utf8Value()));
    } catch (const VlmError &e) {
        throw ToJsError(env, e);
    }
}

Napi::Value FastForwardReplay(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    SharedModel model = Model::Unwrap(info[0].As<Napi::Object>())->Get(env);
    ForcedReplay replay;
    try {
        replay = ReplayFastForward(llama_model_get_vocab(model.get()), info[1].As<Napi::String>().Utf8Value(),
                                   info[2].As<Napi::String>().Utf8Value());
    } catch (const VlmError &e) {
        throw ToJsError(env, e);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("tokens", replay.tokens);
    out.Set("forced", replay.forced);
    return out;
}

}  // namespace llama_vlm
