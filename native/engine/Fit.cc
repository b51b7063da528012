#include "Fit.h"

#include <fit.h>
#include <llama.h>

#include <exception>

#include "Errors.h"

namespace llama_vlm {

FitPlan FitModelToDevices(const FitParams &params) {
    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = params.contextSize * params.parallel;
    cparams.n_seq_max = params.parallel;
    cparams.n_batch = params.batchSize;
    cparams.n_ubatch = params.ubatchSize;
    cparams.type_k = static_cast<ggml_type>(params.typeK);
    cparams.type_v = static_cast<ggml_type>(params.typeV);
    cparams.kv_unified = false;
    llama_model_params mparams = llama_model_default_params();
    std::vector<float> split(llama_max_devices(), 0.0f);
    std::vector<llama_model_tensor_buft_override> overrides(llama_max_tensor_buft_overrides(), {nullptr, nullptr});
    std::vector<size_t> margins(llama_max_devices(), params.marginBytes);
    const uint32_t nCtx = cparams.n_ctx;
    common_params_fit_status status = COMMON_PARAMS_FIT_STATUS_ERROR;
    try {
        status = common_fit_params(params.path.c_str(), &mparams, &cparams, split.data(), overrides.data(),
                                   margins.data(), nCtx, nullptr, GGML_LOG_LEVEL_ERROR);
    } catch (const std::exception &e) {
        throw VlmError(ErrorCode::InvalidModel, std::string("fitting the model to device memory failed: ") + e.what());
    }
    if (status == COMMON_PARAMS_FIT_STATUS_ERROR) {
        throw VlmError(ErrorCode::InvalidModel,
                       "llama.cpp could not read " + params.path + " to fit it to device memory");
    }
    FitPlan plan;
    plan.fits = status == COMMON_PARAMS_FIT_STATUS_SUCCESS;
    plan.gpuLayers = mparams.n_gpu_layers;
    std::vector<ggml_backend_dev_t> devs;
    uint32_t layers = 0, ctxTrain = 0, experts = 0;
    try {
        common_device_memory_data_vec data = common_get_device_memory_data(
            params.path.c_str(), &mparams, &cparams, devs, layers, ctxTrain, experts, GGML_LOG_LEVEL_ERROR);
        for (size_t i = 0; i < data.size(); ++i) {
            FitDevice d;
            d.name = i < devs.size() ? ggml_backend_dev_name(devs[i]) : "host";
            d.free = data[i].free;
            d.total = data[i].total;
            d.model = data[i].model;
            d.context = data[i].context;
            d.compute = data[i].compute;
            plan.devices.push_back(d);
        }
    } catch (const std::exception &) {
        // The plan is still valid without the breakdown.
        plan.devices.clear();
    }
    return plan;
}

}  // namespace llama_vlm
