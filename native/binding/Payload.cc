#include "Payload.h"

#include <string>
#include <vector>

#include "JsError.h"

namespace llama_vlm {
namespace {

uint32_t U32(const Napi::Object &o, const char *key) {
    return o.Get(key).As<Napi::Number>().Uint32Value();
}

int32_t I32(const Napi::Object &o, const char *key) {
    return o.Get(key).As<Napi::Number>().Int32Value();
}

// The sampling payload carries every key (lib/options/sampling.ts resolves each option's default): a missing or
// mistyped one is a bug in lib/, reported as such rather than filled with a default of this file's own.
[[noreturn]] void Missing(const Napi::Object &o, const char *key, const char *what) {
    throw ToJsError(o.Env(), ErrorCode::NativeError,
                    std::string("the sampling payload's \"") + key + "\" is not " + what +
                        " (a bug in llama-vlm: lib/options/sampling.ts sends every key)");
}

float Float(const Napi::Object &o, const char *key) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) Missing(o, key, "a number");
    return v.As<Napi::Number>().FloatValue();
}

int32_t Int(const Napi::Object &o, const char *key) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) Missing(o, key, "a number");
    return v.As<Napi::Number>().Int32Value();
}

bool Bool(const Napi::Object &o, const char *key) {
    Napi::Value v = o.Get(key);
    if (!v.IsBoolean()) Missing(o, key, "a boolean");
    return v.As<Napi::Boolean>().Value();
}

std::vector<std::string> Strings(const Napi::Object &o, const char *key) {
    Napi::Value v = o.Get(key);
    if (!v.IsArray()) Missing(o, key, "an array of strings");
    std::vector<std::string> out;
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    return out;
}

}  // namespace

SamplerParams ReadSamplerParams(const Napi::Object &o) {
    SamplerParams p;
    p.temperature = Float(o, "temperature");
    p.dynatempRange = Float(o, "dynatempRange");
    p.dynatempExponent = Float(o, "dynatempExponent");
    p.topK = Int(o, "topK");
    p.topP = Float(o, "topP");
    p.minP = Float(o, "minP");
    p.typicalP = Float(o, "typicalP");
    p.tfsZ = Float(o, "tfsZ");
    p.minKeep = Int(o, "minKeep");
    p.repeatPenalty = Float(o, "repeatPenalty");
    p.repeatLastN = Int(o, "repeatLastN");
    p.frequencyPenalty = Float(o, "frequencyPenalty");
    p.presencePenalty = Float(o, "presencePenalty");
    p.penalizeNewline = Bool(o, "penalizeNewline");
    p.dryMultiplier = Float(o, "dryMultiplier");
    p.dryBase = Float(o, "dryBase");
    p.dryAllowedLength = Int(o, "dryAllowedLength");
    p.dryPenaltyLastN = Int(o, "dryPenaltyLastN");
    p.drySequenceBreakers = Strings(o, "drySequenceBreakers");
    p.xtcProbability = Float(o, "xtcProbability");
    p.xtcThreshold = Float(o, "xtcThreshold");
    p.topNSigma = Float(o, "topNSigma");
    p.mirostat = Int(o, "mirostat");
    p.mirostatTau = Float(o, "mirostatTau");
    p.mirostatEta = Float(o, "mirostatEta");
    Napi::Value bias = o.Get("logitBias");
    if (!bias.IsArray()) Missing(o, "logitBias", "an array of [token, bias] pairs");
    Napi::Array a = bias.As<Napi::Array>();
    for (uint32_t i = 0; i + 1 < a.Length(); i += 2) {
        p.logitBias.push_back({a.Get(i).As<Napi::Number>().Int32Value(), a.Get(i + 1).As<Napi::Number>().FloatValue()});
    }
    // The one optional key: no grammar, no grammar sampler.
    Napi::Value grammar = o.Get("grammar");
    if (grammar.IsString()) p.grammar = grammar.As<Napi::String>().Utf8Value();
    Napi::Value seed = o.Get("seed");
    if (!seed.IsNumber()) Missing(o, "seed", "a number");
    p.seed = seed.As<Napi::Number>().Uint32Value();
    p.order = Strings(o, "order");
    return p;
}

EngineParams ReadEngineParams(const Napi::Object &p) {
    EngineParams params;
    params.contextSize = U32(p, "contextSize");
    params.batchSize = U32(p, "batchSize");
    params.ubatchSize = U32(p, "ubatchSize");
    params.parallel = U32(p, "parallel");
    params.threads = I32(p, "threads");
    params.threadsBatch = I32(p, "threadsBatch");
    params.flashAttention = I32(p, "flashAttention");
    params.typeK = I32(p, "typeK");
    params.typeV = I32(p, "typeV");
    params.warmup = Bool(p, "warmup");
    params.hugePages = Bool(p, "hugePages");
    return params;
}

std::shared_ptr<Request> ReadRequest(Napi::Env env, const Napi::Object &r) {
    auto request = std::make_shared<Request>();
    Napi::Array parts = r.Get("textParts").As<Napi::Array>();
    for (uint32_t i = 0; i < parts.Length(); ++i)
        request->textParts.push_back(parts.Get(i).As<Napi::String>().Utf8Value());
    Napi::Value images = r.Get("images");
    if (images.IsArray()) {
        Napi::Array a = images.As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); ++i) {
            Napi::Object im = a.Get(i).As<Napi::Object>();
            Image image;
            image.width = U32(im, "width");
            image.height = U32(im, "height");
            Napi::Uint8Array data = im.Get("data").As<Napi::Uint8Array>();
            if (data.ByteLength() != static_cast<size_t>(image.width) * image.height * 3) {
                throw ToJsError(env, ErrorCode::InvalidOption, "image data must be width * height * 3 bytes of RGB");
            }
            image.rgb.assign(data.Data(), data.Data() + data.ByteLength());
            Napi::Value id = im.Get("id");
            if (id.IsString()) image.id = id.As<Napi::String>().Utf8Value();
            request->images.push_back(std::move(image));
        }
    }
    if (request->textParts.size() != request->images.size() + 1) {
        throw ToJsError(env, ErrorCode::InvalidOption, "a request needs one more text part than images");
    }
    request->addSpecial = r.Get("addSpecial").ToBoolean().Value();
    request->maxTokens = I32(r, "maxTokens");
    request->nProbs = I32(r, "nProbs");
    request->fastForward = Bool(r, "fastForward");
    Napi::Array stop = r.Get("stop").As<Napi::Array>();
    for (uint32_t i = 0; i < stop.Length(); ++i) request->stop.push_back(stop.Get(i).As<Napi::String>().Utf8Value());
    return request;
}

ModelLoadParams ReadModelLoadParams(const Napi::String &path, const Napi::Object &p) {
    ModelLoadParams params;
    params.path = path.Utf8Value();
    params.gpuLayers = I32(p, "gpuLayers");
    params.useMmap = p.Get("useMmap").ToBoolean().Value();
    params.useMlock = p.Get("useMlock").ToBoolean().Value();
    params.vocabOnly = p.Get("vocabOnly").ToBoolean().Value();
    params.hugePages = Bool(p, "hugePages");
    return params;
}

ProjectorLoadParams ReadProjectorLoadParams(const Napi::String &path, const Napi::Object &p) {
    ProjectorLoadParams params;
    params.path = path.Utf8Value();
    params.useGpu = p.Get("useGpu").ToBoolean().Value();
    params.threads = I32(p, "threads");
    params.imageMinTokens = I32(p, "imageMinTokens");
    params.imageMaxTokens = I32(p, "imageMaxTokens");
    params.flashAttention = I32(p, "flashAttention");
    params.imageCacheBytes = static_cast<size_t>(p.Get("imageCacheBytes").As<Napi::Number>().DoubleValue());
    params.hugePages = Bool(p, "hugePages");
    return params;
}

FitParams ReadFitParams(const Napi::String &path, const Napi::Object &p) {
    FitParams params;
    params.path = path.Utf8Value();
    params.contextSize = U32(p, "contextSize");
    params.parallel = U32(p, "parallel");
    params.batchSize = U32(p, "batchSize");
    params.ubatchSize = U32(p, "ubatchSize");
    params.typeK = I32(p, "typeK");
    params.typeV = I32(p, "typeV");
    params.marginBytes = static_cast<size_t>(p.Get("marginBytes").As<Napi::Number>().DoubleValue());
    return params;
}

}  // namespace llama_vlm
