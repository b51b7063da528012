#include "Fit.h"

#include <fit.h>
#include <llama.h>

#include <string>
#include <vector>

#include "Errors.h"
#include "SafeJs.h"

namespace llama_vlm {
namespace {

struct DevicePlan {
    std::string name;
    int64_t free = 0;
    int64_t total = 0;
    size_t model = 0;
    size_t context = 0;
    size_t compute = 0;
};

class FitWorker : public PromiseWorker<> {
  public:
    FitWorker(Napi::Env env, std::string path, llama_context_params cparams, size_t margin)
        : PromiseWorker(env, "llama-vlm:FitWorker"), path_(std::move(path)), cparams_(cparams), margin_(margin) {}

    void Execute() override {
        llama_model_params mparams = llama_model_default_params();
        std::vector<float> split(llama_max_devices(), 0.0f);
        std::vector<llama_model_tensor_buft_override> overrides(llama_max_tensor_buft_overrides(), {nullptr, nullptr});
        std::vector<size_t> margins(llama_max_devices(), margin_);
        const uint32_t nCtx = cparams_.n_ctx;
        try {
            status_ = common_fit_params(path_.c_str(), &mparams, &cparams_, split.data(), overrides.data(),
                                        margins.data(), nCtx, nullptr, GGML_LOG_LEVEL_ERROR);
        } catch (const std::exception &e) {
            Fail("INVALID_MODEL", std::string("fitting the model to device memory failed: ") + e.what());
            return;
        }
        if (status_ == COMMON_PARAMS_FIT_STATUS_ERROR) {
            Fail("INVALID_MODEL", "llama.cpp could not read " + path_ + " to fit it to device memory");
            return;
        }
        gpuLayers_ = mparams.n_gpu_layers;
        std::vector<ggml_backend_dev_t> devs;
        uint32_t layers = 0, ctxTrain = 0, experts = 0;
        try {
            common_device_memory_data_vec data = common_get_device_memory_data(
                path_.c_str(), &mparams, &cparams_, devs, layers, ctxTrain, experts, GGML_LOG_LEVEL_ERROR);
            for (size_t i = 0; i < data.size(); ++i) {
                DevicePlan d;
                d.name = i < devs.size() ? ggml_backend_dev_name(devs[i]) : "host";
                d.free = data[i].free;
                d.total = data[i].total;
                d.model = data[i].model;
                d.context = data[i].context;
                d.compute = data[i].compute;
                devices_.push_back(d);
            }
        } catch (const std::exception &) {
            // The plan is still valid without the breakdown.
        }
    }

    napi_value Resolved(SafeJs &js) override {
        napi_value o = js.Object();
        js.Set(o, "status", status_ == COMMON_PARAMS_FIT_STATUS_SUCCESS ? "fit" : "no-fit");
        js.Set(o, "gpuLayers", gpuLayers_);
        napi_value devices = js.Array(devices_.size());
        for (size_t i = 0; i < devices_.size(); ++i) {
            napi_value d = js.Object();
            js.Set(d, "name", devices_[i].name);
            js.Set(d, "free", static_cast<double>(devices_[i].free));
            js.Set(d, "total", static_cast<double>(devices_[i].total));
            js.Set(d, "model", static_cast<double>(devices_[i].model));
            js.Set(d, "context", static_cast<double>(devices_[i].context));
            js.Set(d, "compute", static_cast<double>(devices_[i].compute));
            js.Set(devices, static_cast<uint32_t>(i), d);
        }
        js.Set(o, "devices", devices);
        return o;
    }

  private:
    std::string path_;
    llama_context_params cparams_;
    size_t margin_;
    common_params_fit_status status_ = COMMON_PARAMS_FIT_STATUS_ERROR;
    int32_t gpuLayers_ = 0;
    std::vector<DevicePlan> devices_;
};

}  // namespace

Napi::Value FitModel(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = info[0].As<Napi::String>().Utf8Value();
    Napi::Object p = info[1].As<Napi::Object>();
    llama_context_params cparams = llama_context_default_params();
    const uint32_t parallel = p.Get("parallel").As<Napi::Number>().Uint32Value();
    cparams.n_ctx = p.Get("contextSize").As<Napi::Number>().Uint32Value() * parallel;
    cparams.n_seq_max = parallel;
    cparams.n_batch = p.Get("batchSize").As<Napi::Number>().Uint32Value();
    cparams.n_ubatch = p.Get("ubatchSize").As<Napi::Number>().Uint32Value();
    cparams.type_k = static_cast<ggml_type>(p.Get("typeK").As<Napi::Number>().Int32Value());
    cparams.type_v = static_cast<ggml_type>(p.Get("typeV").As<Napi::Number>().Int32Value());
    cparams.kv_unified = false;
    const size_t margin = static_cast<size_t>(p.Get("marginBytes").As<Napi::Number>().DoubleValue());
    auto *worker = new FitWorker(env, std::move(path), cparams, margin);
    worker->Queue();
    return worker->Promise();
}

}  // namespace llama_vlm
