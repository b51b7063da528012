#include "Model.h"

#include <chat.h>

#include <algorithm>
#include <vector>

#include "JsError.h"
#include "Payload.h"
#include "SafeJs.h"
#include "engine/HugePages.h"

namespace llama_vlm {
namespace {

// Loads on a libuv pool thread; progress is forwarded to JS, and the abort flag stops the load.
class ModelLoadWorker : public PromiseWorker<Napi::AsyncProgressQueueWorker<float>> {
  public:
    ModelLoadWorker(Napi::Env env, Model *owner, Napi::Object ownerObject, ModelLoadParams params,
                    Napi::Function onProgress)
        : PromiseWorker(env, "llama-vlm:ModelLoadWorker"), owner_(owner), params_(std::move(params)) {
        ownerRef_ = Napi::Persistent(ownerObject);
        if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
    }

    void Execute(const ExecutionProgress &progress) override {
        try {
            model_ = LoadModel(
                params_, [&progress](float p) { progress.Send(&p, 1); }, owner_->abortFlag());
        } catch (const VlmError &e) {
            Fail(e.code(), e.what());
        } catch (const std::exception &e) {
            Fail(ErrorCode::NativeError, std::string("loading the model failed: ") + e.what());
        }
    }

    // A throwing progress callback must not break the load: its exception is dropped.
    void OnProgress(const float *data, size_t count) override {
        if (onProgress_.IsEmpty() || count == 0) return;
        SafeJs js(Env());
        js.Call(onProgress_.Value(), {js.Number(data[count - 1])}, /*dropException=*/true);
    }

    napi_value Resolved(SafeJs &js) override {
        owner_->SetLoaded(Env(), std::move(model_));
        return js.Undefined();
    }

  private:
    Model *owner_;
    Napi::ObjectReference ownerRef_;  // keeps the JS Model alive while loading
    Napi::FunctionReference onProgress_;
    ModelLoadParams params_;
    SharedModel model_;
};

std::string MetaString(const llama_model *model, const char *key) {
    std::vector<char> buf(256);
    int32_t n = llama_model_meta_val_str(model, key, buf.data(), buf.size());
    if (n < 0) return "";
    if (static_cast<size_t>(n) >= buf.size()) {
        buf.resize(static_cast<size_t>(n) + 1);
        llama_model_meta_val_str(model, key, buf.data(), buf.size());
    }
    return std::string(buf.data());
}

bool IsBuiltinTemplateName(const std::string &name) {
    int32_t n = llama_chat_builtin_templates(nullptr, 0);
    std::vector<const char *> names(static_cast<size_t>(std::max(0, n)));
    llama_chat_builtin_templates(names.data(), names.size());
    return std::any_of(names.begin(), names.end(), [&](const char *b) { return name == b; });
}

}  // namespace

Napi::Function Model::Init(Napi::Env env) {
    return DefineClass(env, "Model",
                       {
                           InstanceMethod("load", &Model::Load),
                           InstanceMethod("abortLoad", &Model::AbortLoad),
                           InstanceMethod("info", &Model::Info),
                           InstanceMethod("tokenize", &Model::Tokenize),
                           InstanceMethod("detokenize", &Model::Detokenize),
                           InstanceMethod("applyChatTemplate", &Model::ApplyChatTemplate),
                           InstanceMethod("dispose", &Model::Dispose),
                       });
}

Model::Model(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Model>(info) {}

SharedModel Model::Get(Napi::Env env) const {
    if (!model_) throw ToJsError(env, ErrorCode::Disposed, "the model is not loaded or was disposed");
    return model_;
}

void Model::SetLoaded(Napi::Env env, SharedModel model) {
    model_ = std::move(model);
    reportedBytes_ = static_cast<int64_t>(llama_model_size(model_.get()));
    Napi::MemoryManagement::AdjustExternalMemory(env, reportedBytes_);
}

Napi::Value Model::Load(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (loading_ || model_) throw ToJsError(env, ErrorCode::NativeError, "Model.load may be called once");
    loading_ = true;
    ModelLoadParams params = ReadModelLoadParams(info[0].As<Napi::String>(), info[1].As<Napi::Object>());
    Napi::Function onProgress = info[2].IsFunction() ? info[2].As<Napi::Function>() : Napi::Function();
    auto *worker = new ModelLoadWorker(env, this, info.This().As<Napi::Object>(), std::move(params), onProgress);
    worker->Queue();
    return worker->Promise();
}

Napi::Value Model::AbortLoad(const Napi::CallbackInfo &info) {
    abortLoad_.store(true);
    return info.Env().Undefined();
}

Napi::Value Model::Info(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    SharedModel model = Get(env);
    const llama_vocab *vocab = llama_model_get_vocab(model.get());
    Napi::Object o = Napi::Object::New(env);
    char desc[256] = {0};
    llama_model_desc(model.get(), desc, sizeof(desc));
    o.Set("description", desc);
    o.Set("architecture", MetaString(model.get(), "general.architecture"));
    o.Set("name", MetaString(model.get(), "general.name"));
    o.Set("parameters", Napi::Number::New(env, static_cast<double>(llama_model_n_params(model.get()))));
    o.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(llama_model_size(model.get()))));
    o.Set("hugePageBytes", Napi::Number::New(env, static_cast<double>(WeightBytesOnHugePages(model.get()))));
    o.Set("contextLengthTrained", llama_model_n_ctx_train(model.get()));
    o.Set("embeddingLength", llama_model_n_embd(model.get()));
    o.Set("embeddingLengthInput", llama_model_n_embd_inp(model.get()));
    o.Set("layers", llama_model_n_layer(model.get()));
    o.Set("vocabSize", llama_vocab_n_tokens(vocab));
    o.Set("bos", llama_vocab_bos(vocab));
    o.Set("eos", llama_vocab_eos(vocab));
    o.Set("newline", llama_vocab_nl(vocab));
    o.Set("addBos", llama_vocab_get_add_bos(vocab));
    const char *tmpl = llama_model_chat_template(model.get(), nullptr);
    o.Set("chatTemplate", tmpl != nullptr ? Napi::Value(Napi::String::New(env, tmpl)) : env.Null());
    return o;
}

Napi::Value Model::Tokenize(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    SharedModel model = Get(env);
    const llama_vocab *vocab = llama_model_get_vocab(model.get());
    std::string text = info[0].As<Napi::String>().Utf8Value();
    bool addSpecial = info[1].ToBoolean().Value();
    bool parseSpecial = info[2].ToBoolean().Value();
    std::vector<llama_token> tokens;
    try {
        tokens = llama_vlm::Tokenize(vocab, text, addSpecial, parseSpecial);
    } catch (const VlmError &e) {
        throw ToJsError(env, e);
    }
    Napi::Int32Array out = Napi::Int32Array::New(env, tokens.size());
    std::copy(tokens.begin(), tokens.end(), out.Data());
    return out;
}

Napi::Value Model::Detokenize(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    SharedModel model = Get(env);
    const llama_vocab *vocab = llama_model_get_vocab(model.get());
    Napi::Int32Array tokens = info[0].As<Napi::Int32Array>();
    bool removeSpecial = info[1].ToBoolean().Value();
    bool unparseSpecial = info[2].ToBoolean().Value();
    int32_t nVocab = llama_vocab_n_tokens(vocab);
    for (size_t i = 0; i < tokens.ElementLength(); ++i) {
        if (tokens[i] < 0 || tokens[i] >= nVocab) {
            throw ToJsError(env, ErrorCode::InvalidOption,
                            "token " + std::to_string(tokens[i]) + " is outside the vocabulary (0.." +
                                std::to_string(nVocab - 1) + ")");
        }
    }
    std::string text =
        llama_vlm::Detokenize(vocab, tokens.Data(), tokens.ElementLength(), removeSpecial, unparseSpecial);
    return Napi::String::New(env, text);
}

Napi::Value Model::ApplyChatTemplate(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    SharedModel model = Get(env);
    Napi::Array messages = info[0].As<Napi::Array>();
    std::string tmpl = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    bool addAssistant = info[2].ToBoolean().Value();

    std::vector<std::pair<std::string, std::string>> msgs;
    for (uint32_t i = 0; i < messages.Length(); ++i) {
        Napi::Object m = messages.Get(i).As<Napi::Object>();
        msgs.emplace_back(m.Get("role").As<Napi::String>().Utf8Value(),
                          m.Get("content").As<Napi::String>().Utf8Value());
    }

    // llama.cpp's named templates (vicuna, chatml, …) go through llama_chat_apply_template; a model's own
    // template or a custom Jinja string is rendered with common's Jinja engine, as llama.cpp's tools do.
    if (!tmpl.empty() && IsBuiltinTemplateName(tmpl)) {
        std::vector<llama_chat_message> chat;
        for (const auto &m : msgs) chat.push_back({m.first.c_str(), m.second.c_str()});
        std::string out(4096, '\0');
        int32_t n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), addAssistant, out.data(),
                                              static_cast<int32_t>(out.size()));
        if (n > static_cast<int32_t>(out.size())) {
            out.resize(static_cast<size_t>(n));
            n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), addAssistant, out.data(),
                                          static_cast<int32_t>(out.size()));
        }
        if (n < 0)
            throw ToJsError(env, ErrorCode::InvalidOption,
                            "llama.cpp could not apply the chat template \"" + tmpl + "\"");
        out.resize(static_cast<size_t>(n));
        return Napi::String::New(env, out);
    }
    try {
        common_chat_templates_ptr templates = common_chat_templates_init(model.get(), tmpl);
        common_chat_templates_inputs inputs;
        inputs.use_jinja = true;
        inputs.add_generation_prompt = addAssistant;
        for (const auto &m : msgs) {
            common_chat_msg msg;
            msg.role = m.first;
            msg.content = m.second;
            inputs.messages.push_back(std::move(msg));
        }
        return Napi::String::New(env, common_chat_templates_apply(templates.get(), inputs).prompt);
    } catch (const std::exception &e) {
        throw ToJsError(env, ErrorCode::InvalidOption,
                        std::string("the chat template could not be applied: ") + e.what());
    }
}

Napi::Value Model::Dispose(const Napi::CallbackInfo &info) {
    model_.reset();
    if (reportedBytes_ != 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -reportedBytes_);
    reportedBytes_ = 0;
    return info.Env().Undefined();
}

}  // namespace llama_vlm
