import path from "node:path";
import { describe, expect, it } from "vitest";
import { devices, loadModel } from "../../lib/index.js";
import { packageRoot } from "../../lib/native.js";

describe('gpuLayers: "auto"', () => {
    it.skipIf(devices().some((d) => d.type === "gpu" || d.type === "igpu"))(
        "on a CPU-only machine plans 0 offloaded layers and says why",
        async () => {
            const model = await loadModel({
                model: path.join(packageRoot, "vendor", "llama.cpp", "models", "ggml-vocab-qwen2.gguf"),
                vocabOnly: true,
                gpuLayers: "auto",
                fitFor: { contextSize: 4096, parallel: 4 },
            });
            try {
                expect(model.placement.gpuLayers).toBe(0);
                expect(model.placement.reason).toMatch(/no GPU device/);
            } finally {
                await model.dispose();
            }
        },
    );

    it("reports an explicit number as requested", async () => {
        const model = await loadModel({
            model: path.join(packageRoot, "vendor", "llama.cpp", "models", "ggml-vocab-qwen2.gguf"),
            vocabOnly: true,
            nGpuLayers: 99,
        });
        try {
            expect(model.placement).toEqual({ gpuLayers: 99, reason: "as requested", devices: [] });
        } finally {
            await model.dispose();
        }
    });
});
