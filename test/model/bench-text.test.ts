/**
 * The text benchmark (`runBench`, `npm run bench:batch`) prefills prompts of exactly `promptTokens` tokens, as
 * llama-batched-bench does: a prompt one token short runs other kernels (ggml's repacked Q4_0 multiplies 4 rows at a
 * time), so a miscount skews the comparison, not only the arithmetic.
 */
import { describe, expect, it } from "vitest";
import { promptOfLength, runBench } from "../../lib/bench.js";
import { loadModel } from "../../lib/index.js";
import { cachedModel, TINY_FAMILIES } from "../helpers/models.js";

const FILLER = "the patient was given five milligrams of the medication twice daily for seven days ".repeat(60);

describe("text benchmark prompts", () => {
    it.each(TINY_FAMILIES)("%s: a prompt of n tokens is n tokens as a request counts them", async (family) => {
        const pair = await cachedModel(family);
        const model = await loadModel({ model: pair.model, vocabOnly: true });
        try {
            // With and without a BOS (the llama vocabulary adds one, Qwen's does not): the count includes it.
            if (family === "llama") expect(model.tokenize("")).toHaveLength(1);
            if (family === "qwen2.5-vl") expect(model.tokenize("")).toHaveLength(0);
            for (const n of [9, 37, 127, 128, 129, 500]) {
                const prompt = promptOfLength(model, `3 ${FILLER}`, n);
                expect(model.tokenize(prompt)).toHaveLength(n);
            }
            expect(() => promptOfLength(model, "too short", 50)).toThrow(/exactly 50 tokens/);
        } finally {
            await model.dispose();
        }
    });

    it("runBench prefills promptTokens a sequence at each N", async () => {
        // Qwen has no BOS: cutting the text at promptTokens - 1 tokens, as it once did, would make 40-token prompts,
        // and runBench throws when a request's prompt count differs from promptTokens.
        const pair = await cachedModel("qwen2.5-vl");
        const report = await runBench({
            model: pair.model,
            parallel: [1, 3],
            promptTokens: 41,
            textGenerate: 3,
            runs: 1,
            threads: 2,
            skipImages: true,
        });
        expect(report.text.map((r) => r.parallel)).toEqual([1, 3]);
        for (const row of report.text) {
            expect(row.samples).toHaveLength(1);
            expect(row.promptTps).toBeGreaterThan(0);
            expect(row.generationTps).toBeGreaterThan(0);
        }
    }, 60_000);
});
