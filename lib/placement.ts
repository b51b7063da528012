/** Where a model's layers go (GPU offload): as asked, or llama.cpp's fitting to free device memory for "auto". */
import { fromNative } from "./errors.js";
import { loadNative } from "./native.js";
import { devices } from "./system.js";

/** Where a model's layers went, and why. */
export interface Placement {
    /** Layers offloaded to GPUs (-1: all). */
    gpuLayers: number;
    /** How the number was chosen. */
    reason: string;
    /** Per device: free and total memory, and the bytes the model, its KV cache and compute buffers take (for "auto"). */
    devices: { name: string; free: number; total: number; model: number; context: number; compute: number }[];
}

/** gpuLayers "auto": llama.cpp's fitting of layers and KV cache to free device memory. */
export async function fitPlacement(
    modelPath: string,
    fitFor: { contextSize: number; parallel: number },
): Promise<Placement> {
    const gpus = devices().filter((d) => d.type === "gpu" || d.type === "igpu");
    if (gpus.length === 0) {
        return {
            gpuLayers: 0,
            reason: "no GPU device: llama.cpp sees only the CPU, so no layer is offloaded",
            devices: [],
        };
    }
    const plan = await loadNative()
        .fitModel(modelPath, {
            contextSize: fitFor.contextSize,
            parallel: fitFor.parallel,
            batchSize: 512,
            ubatchSize: 512,
            typeK: 1,
            typeV: 1,
            marginBytes: 1024 * 1024 * 1024,
        })
        .catch((err: unknown) => {
            throw fromNative(err);
        });
    const names = gpus.map((g) => g.name).join(", ");
    return {
        gpuLayers: plan.gpuLayers,
        reason:
            plan.status === "fit"
                ? `fits ${plan.gpuLayers < 0 ? "all" : plan.gpuLayers} layers and the KV cache on ${names}, leaving 1 GiB free per device`
                : `the model does not fit ${names}; offloading ${plan.gpuLayers} layers, the rest runs on the CPU`,
        devices: plan.devices,
    };
}
