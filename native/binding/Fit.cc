#include "Fit.h"

#include <exception>
#include <string>

#include "Payload.h"
#include "SafeJs.h"
#include "engine/Fit.h"

namespace llama_vlm {
namespace {

class FitWorker : public PromiseWorker<> {
  public:
    FitWorker(Napi::Env env, FitParams params)
        : PromiseWorker(env, "llama-vlm:FitWorker"), params_(std::move(params)) {}

    void Execute() override {
        try {
            plan_ = FitModelToDevices(params_);
        } catch (const VlmError &e) {
            Fail(e.code(), e.what());
        } catch (const std::exception &e) {
            Fail(ErrorCode::NativeError, std::string("fitting the model to device memory failed: ") + e.what());
        }
    }

    napi_value Resolved(SafeJs &js) override {
        napi_value o = js.Object();
        js.Set(o, "status", plan_.fits ? "fit" : "no-fit");
        js.Set(o, "gpuLayers", plan_.gpuLayers);
        napi_value devices = js.Array(plan_.devices.size());
        for (size_t i = 0; i < plan_.devices.size(); ++i) {
            const FitDevice &device = plan_.devices[i];
            napi_value d = js.Object();
            js.Set(d, "name", device.name);
            js.Set(d, "free", static_cast<double>(device.free));
            js.Set(d, "total", static_cast<double>(device.total));
            js.Set(d, "model", static_cast<double>(device.model));
            js.Set(d, "context", static_cast<double>(device.context));
            js.Set(d, "compute", static_cast<double>(device.compute));
            js.Set(devices, static_cast<uint32_t>(i), d);
        }
        js.Set(o, "devices", devices);
        return o;
    }

  private:
    FitParams params_;
    FitPlan plan_;
};

}  // namespace

Napi::Value FitModel(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto *worker = new FitWorker(env, ReadFitParams(info[0].As<Napi::String>(), info[1].As<Napi::Object>()));
    worker->Queue();
    return worker->Promise();
}

}  // namespace llama_vlm
