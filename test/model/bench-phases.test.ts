/**
 * The phase benchmark counts the same tokens on both sides: llama-vlm in a fresh process and the vendored
 * llama-mtmd-cli, on the tiny Qwen2.5-VL pair (figures are not judged here: speed is the benchmark's business).
 */
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { PhaseReport } from "../../lib/bench-phases.js";
import { cachedModel, REPO_ROOT } from "../helpers/models.js";
import { llamaToolsDir } from "../helpers/tools.js";

describe("phase benchmark", () => {
    it("alternates which side runs first", async () => {
        const { inAlternatingOrder } = await import("../../lib/bench.js");
        const order: string[] = [];
        for (let r = 0; r < 4; r++) {
            await inAlternatingOrder(
                r,
                async () => {
                    order.push(`mine${r}`);
                },
                () => {
                    order.push(`ref${r}`);
                },
            );
        }
        expect(order).toEqual(["mine0", "ref0", "ref1", "mine1", "mine2", "ref2", "ref3", "mine3"]);
    });

    it("measures every phase on both sides over the same tokens", async () => {
        const pair = await cachedModel("qwen2.5-vl");
        // The compiled module: llama-vlm's side runs it as a child process.
        const { runPhaseBench } = (await import(path.join(REPO_ROOT, "dist", "bench-phases.js"))) as {
            runPhaseBench: (o: object) => Promise<PhaseReport>;
        };
        const report = await runPhaseBench({
            model: pair.model,
            projector: pair.projector,
            imageSizes: [[96, 64]],
            // Two runs: the second runs the reference first (the order alternates), with the same counts.
            runs: 2,
            generate: 6,
            threads: 2,
            contextSize: 1024,
            toolsDir: llamaToolsDir(),
        });
        const [row] = report.rows;
        expect(report.rows).toHaveLength(1);
        const a = row!.llamaVlm;
        const b = row!.llamaMtmdCli;
        // llama-vlm's image tokens are the ones subtracted from llama.cpp's prompt count: the text tokens must agree.
        expect(a.imageTokens).toBeGreaterThan(0);
        expect(a.textTokens).toBeGreaterThan(10);
        expect(b.textTokens).toBe(a.textTokens);
        // 6 tokens, 5 decode steps after the first on both sides (EOG tokens are banned on both).
        expect(a.generateSteps).toBe(5);
        expect(b.generateSteps).toBe(5);
        // llama-mtmd-cli logs encode and image prefill in whole milliseconds: the tiny model's may read 0.
        expect(a.encodeMs).toBeGreaterThan(0);
        expect(a.imagePrefillMs).toBeGreaterThan(0);
        expect(b.encodeMs).toBeGreaterThanOrEqual(0);
        expect(b.imagePrefillMs).toBeGreaterThanOrEqual(0);
        expect(a.textPrefillMs).toBeGreaterThan(0);
        expect(b.textPrefillMs).toBeGreaterThanOrEqual(0);
        for (const f of [a, b]) {
            expect(f.generateMs).toBeGreaterThan(0);
            expect(f.peakRssBytes).toBeGreaterThan(10e6);
        }
        expect(row!.all.llamaVlm).toHaveLength(2);
        expect(row!.all.llamaMtmdCli).toHaveLength(2);
        for (const f of [...row!.all.llamaVlm, ...row!.all.llamaMtmdCli]) {
            expect(f.textTokens).toBe(a.textTokens);
            expect(f.generateSteps).toBe(5);
        }
        for (const r of Object.values(row!.ratios)) expect(Number.isFinite(r) && r > 0).toBe(true);
    }, 120_000);
});
