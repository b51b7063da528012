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

}  // namespace

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
