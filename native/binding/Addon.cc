#include "Addon.h"

#include "Context.h"
#include "Fit.h"
#include "Model.h"
#include "Projector.h"
#include "Sampler.h"
#include "engine/Errors.h"
#include "engine/Finish.h"
#include "engine/Log.h"

#include <common.h>
#include <ggml-backend.h>
#include <llama.h>

#include <mutex>
#include <string>

#if LLAMA_VLM_BACKEND_DL && !defined(_WIN32)
#include <dlfcn.h>
#endif

namespace llama_vlm {
namespace {

#if LLAMA_VLM_BACKEND_DL
// The portable build ships ggml's backends (one CPU backend per ISA level, GPU backends) as shared
// libraries beside the .node file; ggml scores them and keeps the best one for this machine.
std::string AddonDirectory() {
#if defined(_WIN32)
    return "";
#else
    Dl_info info{};
    if (dladdr(reinterpret_cast<void *>(&AddonDirectory), &info) == 0 || info.dli_fname == nullptr) return "";
    std::string path(info.dli_fname);
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
#endif
}
#endif

void InitBackendsOnce() {
    static std::once_flag once;
    std::call_once(once, [] {
        InstallLogRouter();
#if LLAMA_VLM_BACKEND_DL
        std::string dir = AddonDirectory();
        if (dir.empty()) {
            ggml_backend_load_all();
        } else {
            ggml_backend_load_all_from_path(dir.c_str());
        }
#endif
        llama_backend_init();
    });
}

const char *DeviceTypeName(enum ggml_backend_dev_type type) {
    switch (type) {
        case GGML_BACKEND_DEVICE_TYPE_CPU:
            return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU:
            return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU:
            return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL:
            return "accel";
        default:
            return "other";
    }
}

// The engine's lists of stop reasons and error codes, for lib/ to check its own against (a test does).
template <typename T, size_t N>
Napi::Array Names(Napi::Env env, const T (&values)[N], const char *(*name)(T)) {
    Napi::Array out = Napi::Array::New(env, N);
    for (size_t i = 0; i < N; ++i) out.Set(static_cast<uint32_t>(i), name(values[i]));
    return out;
}

Napi::Object BackendFeatures(Napi::Env env, ggml_backend_reg_t reg) {
    Napi::Object features = Napi::Object::New(env);
    using GetFeatures = ggml_backend_feature *(*)(ggml_backend_reg_t);
    auto getFeatures =
        reinterpret_cast<GetFeatures>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features"));
    if (getFeatures == nullptr) return features;
    for (ggml_backend_feature *f = getFeatures(reg); f != nullptr && f->name != nullptr; ++f) {
        features.Set(f->name, Napi::String::New(env, f->value != nullptr ? f->value : ""));
    }
    return features;
}

}  // namespace

Addon::Addon(Napi::Env env, Napi::Object exports) {
    InitBackendsOnce();
    logSink_ = std::make_unique<LogSink>();
    DefineAddon(
        exports,
        {
            InstanceMethod("systemInfo", &Addon::SystemInfo),
            InstanceMethod("devices", &Addon::Devices),
            InstanceMethod("version", &Addon::Version),
            InstanceMethod("setLogger", &Addon::SetLogger),
            InstanceMethod("physicalCores", &Addon::PhysicalCores),
            InstanceMethod("_testLog", &Addon::TestLog),
            InstanceValue("Model", Model::Init(env), napi_enumerable),
            InstanceValue("Projector", Projector::Init(env), napi_enumerable),
            InstanceValue("Context", Context::Init(env), napi_enumerable),
            InstanceValue("applySamplers", Napi::Function::New(env, ApplySamplers, "applySamplers"), napi_enumerable),
            InstanceValue("jsonSchemaToGrammar", Napi::Function::New(env, JsonSchemaToGrammar, "jsonSchemaToGrammar"),
                          napi_enumerable),
            InstanceValue("replayFastForward", Napi::Function::New(env, FastForwardReplay, "replayFastForward"),
                          napi_enumerable),
            InstanceValue("fitModel", Napi::Function::New(env, FitModel, "fitModel"), napi_enumerable),
            InstanceValue("stopReasons", Names(env, kStopReasons, StopReasonName), napi_enumerable),
            InstanceValue("errorCodes", Names(env, kErrorCodes, ErrorCodeName), napi_enumerable),
        });
}

Napi::Value Addon::SystemInfo(const Napi::CallbackInfo &info) {
    return Napi::String::New(info.Env(), llama_print_system_info());
}

Napi::Value Addon::Devices(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Napi::Array result = Napi::Array::New(env);
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        ggml_backend_dev_props props{};
        ggml_backend_dev_get_props(dev, &props);
        ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
        Napi::Object d = Napi::Object::New(env);
        d.Set("name", props.name != nullptr ? props.name : "");
        d.Set("description", props.description != nullptr ? props.description : "");
        d.Set("type", DeviceTypeName(props.type));
        d.Set("backend", reg != nullptr ? ggml_backend_reg_name(reg) : "");
        d.Set("memoryFree", Napi::Number::New(env, static_cast<double>(props.memory_free)));
        d.Set("memoryTotal", Napi::Number::New(env, static_cast<double>(props.memory_total)));
        if (props.device_id != nullptr) d.Set("deviceId", props.device_id);
        d.Set("features", reg != nullptr ? BackendFeatures(env, reg) : Napi::Object::New(env));
        result.Set(static_cast<uint32_t>(result.Length()), d);
    }
    return result;
}

Napi::Value Addon::Version(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Napi::Object v = Napi::Object::New(env);
    v.Set("addon", LLAMA_VLM_VERSION);
    v.Set("llamaCppVersion", LLAMA_VLM_LLAMA_VERSION);
    v.Set("llamaCppCommit", LLAMA_VLM_LLAMA_COMMIT);
    v.Set("compiledBackends", LLAMA_VLM_BACKENDS);
    v.Set("build", LLAMA_VLM_BACKEND_DL ? "portable" : "native");
    Napi::Array loaded = Napi::Array::New(env);
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        loaded.Set(static_cast<uint32_t>(i), ggml_backend_reg_name(ggml_backend_reg_get(i)));
    }
    v.Set("loadedBackends", loaded);
    return v;
}

Napi::Value Addon::SetLogger(const Napi::CallbackInfo &info) {
    if (info[0].IsFunction()) {
        logSink_->Set(info[0].As<Napi::Function>(), info[1].As<Napi::Number>().Int32Value());
    } else {
        logSink_->Clear();
    }
    return info.Env().Undefined();
}

Napi::Value Addon::PhysicalCores(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), common_cpu_get_num_physical_cores());
}

Napi::Value Addon::TestLog(const Napi::CallbackInfo &info) {
    ggml_log_callback callback = nullptr;
    void *userData = nullptr;
    llama_log_get(&callback, &userData);
    if (callback != nullptr) {
        std::string text = info[1].As<Napi::String>().Utf8Value();
        callback(static_cast<ggml_log_level>(info[0].As<Napi::Number>().Int32Value()), text.c_str(), userData);
    }
    return info.Env().Undefined();
}

}  // namespace llama_vlm

using LlamaVlmAddon = llama_vlm::Addon;
NODE_API_ADDON(LlamaVlmAddon)
