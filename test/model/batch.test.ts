import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
    type CompletionRequest,
    type CompletionResult,
    LlamaVlmError,
    loadModel,
    type Model,
} from "../../lib/index.js";
import { sameOrNearTie, testImages, tinyPair } from "../helpers/fixtures.js";
import { testImageRaw } from "../helpers/images.js";

/** A full collection before RSS is read (vitest.config.ts runs the tests with --expose-gc). */
function collectGarbage(): void {
    if (typeof global.gc !== "function") throw new Error("global.gc is missing: run node with --expose-gc");
    global.gc();
}

let model: Model;
let images: string[];
let tmp: string;

beforeAll(async () => {
    images = await testImages();
    const pair = await tinyPair("qwen2.5-vl");
    model = await loadModel({ model: pair.model, projector: pair.projector });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-batch-"));
});
afterAll(async () => {
    await model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
});

function mixedRequests(): CompletionRequest[] {
    const prompts = ["Describe.", "What is the dose?", "Name the patient.", "Summarise the note in one line."];
    return Array.from({ length: 8 }, (_, i) => ({
        ...(i % 3 === 2
            ? { prompt: `Plain text request ${i}: ${prompts[i % 4]}` }
            : { messages: [{ role: "user" as const, content: [{ image: images[i % 2]! }, prompts[i % 4]!] }] }),
        temperature: 0,
        maxTokens: 6 + ((i * 5) % 17),
        stop: i % 4 === 1 ? ["\n\n\n"] : [],
        nProbs: 2,
    }));
}

describe("batched decoding", () => {
    it("greedy: 8 mixed requests through parallel=4 give each request's solo (parallel=1) tokens", async () => {
        const requests = mixedRequests();
        const solo = await model.createContext({ contextSize: 1024, parallel: 1 });
        const soloResults: CompletionResult[] = [];
        for (const r of requests) soloResults.push(await solo.complete(r));
        await solo.dispose();

        const batched = await model.createContext({ contextSize: 1024, parallel: 4 });
        const results = await batched.completeBatch(requests);
        await batched.dispose();
        let nearTies = 0;
        for (const [i, r] of results.entries()) {
            expect(r).not.toBeInstanceOf(LlamaVlmError);
            const b = r as CompletionResult;
            expect(sameOrNearTie(soloResults[i]!, b), `request ${i}`).toBe(true);
            if (soloResults[i]!.tokens.join() !== b.tokens.join()) nearTies++;
            expect(b.stopReason).toBe(soloResults[i]!.stopReason);
        }
        expect(nearTies).toBeLessThanOrEqual(1);
    });

    it("concurrent complete() calls share the slots: they decode at the same time, not one after the other", async () => {
        const ctx = await model.createContext({ contextSize: 512, parallel: 2 });
        try {
            // Two calls made together, each long enough that one after the other would be plain to see: the second
            // would start generating only once the first had finished.
            const one = async (prompt: string) => {
                const r = await ctx.complete({ prompt, temperature: 0, maxTokens: 48 });
                return { end: performance.now(), generateMs: r.timings.generateMs, stopReason: r.stopReason };
            };
            const [a, b] = await Promise.all([one("Count to ten."), one("Name the colours.")]);
            expect([a.stopReason, b.stopReason]).toEqual(["length", "length"]);
            // Each one's generation (its generateMs up to when its result came) overlaps the other's, and they end
            // together (the same or a nearby decode step), far sooner after each other than a generation takes.
            const report = `ends ${a.end.toFixed(1)} / ${b.end.toFixed(1)} ms, generateMs ${a.generateMs} / ${b.generateMs}`;
            expect(a.end - a.generateMs, report).toBeLessThan(b.end);
            expect(b.end - b.generateMs, report).toBeLessThan(a.end);
            expect(Math.abs(a.end - b.end), report).toBeLessThan(Math.min(a.generateMs, b.generateMs) / 2);
        } finally {
            await ctx.dispose();
        }
    });

    it("completeBatch keeps input order and reports progress", async () => {
        const ctx = await model.createContext({ contextSize: 512, parallel: 2 });
        try {
            const progress: number[] = [];
            const requests = [3, 1, 4, 1, 5].map((n) => ({ prompt: `Count ${n}`, temperature: 0, maxTokens: n }));
            const results = await ctx.completeBatch(requests, { onProgress: (done) => progress.push(done) });
            expect(results.map((r) => (r as CompletionResult).tokens.length)).toEqual([3, 1, 4, 1, 5]);
            expect(progress).toEqual([1, 2, 3, 4, 5]);
        } finally {
            await ctx.dispose();
        }
    });

    it("200 requests with random aborts and 10% bad images: all settle, good ones equal solo, no leak", async () => {
        const corrupt = path.join(tmp, "bad.png");
        fs.writeFileSync(corrupt, Buffer.concat([fs.readFileSync(images[0]!).subarray(0, 80), Buffer.alloc(64, 1)]));
        const solo = await model.createContext({ contextSize: 512, parallel: 1 });
        const variants: CompletionRequest[] = [0, 1, 2, 3].map((v) => ({
            messages: [{ role: "user" as const, content: [{ image: images[v % 2]! }, `Variant ${v}`] }],
            temperature: 0,
            maxTokens: 4 + v,
        }));
        const expected: CompletionResult[] = [];
        for (const v of variants) expected.push(await solo.complete(v));
        await solo.dispose();

        const ctx = await model.createContext({ contextSize: 512, parallel: 4 });
        let seed = 12345;
        const rand = () => {
            seed = (seed * 1103515245 + 12345) % 2 ** 31;
            return seed / 2 ** 31;
        };
        // Each request's kind, drawn up front: the mix is the same in every run, whatever order requests settle in.
        const kinds = Array.from({ length: 200 }, rand);
        // aborted: results with stopReason "abort"; abortedBeforeStart: requests rejected with ABORTED (aborted before
        // the engine took them). A request that ended any other way was not aborted.
        const counts = { ok: 0, aborted: 0, abortedBeforeStart: 0, bad: 0 };
        let midGeneration = 0;
        let rssAfter100 = 0;
        const runOne = async (i: number) => {
            const kind = kinds[i]!;
            if (kind < 0.1) {
                try {
                    await ctx.complete({
                        messages: [{ role: "user", content: [{ image: corrupt }, "x"] }],
                        maxTokens: 2,
                    });
                } catch (err) {
                    expect((err as LlamaVlmError).code).toBe("IMAGE_DECODE_FAILED");
                    counts.bad++;
                    return;
                }
                throw new Error("a corrupt image was accepted");
            }
            const v = i % 4;
            if (kind < 0.3) {
                // No token limit and room for hundreds of tokens: these requests end by their abort or not at all.
                const controller = new AbortController();
                const request = { ...variants[v]!, maxTokens: -1, signal: controller.signal };
                if (kind < 0.2) {
                    // Aborted while it decodes: a stream whose signal fires after 1 to 8 chunks.
                    midGeneration++;
                    const after = 1 + Math.floor(rand() * 8);
                    const stream = ctx.stream(request);
                    let chunks = 0;
                    for await (const _ of stream) if (++chunks === after) controller.abort();
                    const r = await stream.result;
                    expect(r.stopReason, `request ${i}, aborted after ${after} chunks`).toBe("abort");
                    counts.aborted++;
                    return;
                }
                // Aborted at a random moment: before its image is prepared, while it waits for a slot or decodes.
                const outcome = ctx.complete(request).then(
                    (r) => `stopReason ${r.stopReason}`,
                    (err: unknown) => (err instanceof LlamaVlmError ? err.code : String(err)),
                );
                setTimeout(() => controller.abort(), Math.floor(rand() * 5));
                const o = await outcome;
                expect(["stopReason abort", "ABORTED"], `request ${i}`).toContain(o);
                if (o === "ABORTED") counts.abortedBeforeStart++;
                else counts.aborted++;
                return;
            }
            const r = await ctx.complete(variants[v]!);
            expect(r.tokens).toEqual(expected[v]!.tokens);
            counts.ok++;
        };
        // A batch job feeds a parallel=4 context from a bounded pool (8 in flight: 4 decoding, 4 being prepared).
        let next = 0;
        let done = 0;
        const worker = async () => {
            while (next < 200) {
                await runOne(next++);
                // The baseline is taken halfway: the first requests still grow the allocator's arenas.
                if (++done === 100) {
                    collectGarbage();
                    rssAfter100 = process.memoryUsage().rss;
                }
            }
        };
        await Promise.all(Array.from({ length: 8 }, worker));
        collectGarbage();
        const rssEnd = process.memoryUsage().rss;
        await ctx.dispose();
        expect(counts.ok + counts.aborted + counts.abortedBeforeStart + counts.bad).toBe(200);
        expect(counts.bad).toBeGreaterThan(5);
        // Every request aborted while it decoded (16 of the 200) ended with stopReason "abort" (checked above).
        expect(midGeneration).toBeGreaterThan(10);
        expect(counts.aborted, JSON.stringify(counts)).toBeGreaterThanOrEqual(midGeneration);
        console.log(`RSS after 100: ${(rssAfter100 / 1e6).toFixed(1)} MB, after 200: ${(rssEnd / 1e6).toFixed(1)} MB`);
        // Under AddressSanitizer (scripts/asan-check.sh) freed memory waits in its quarantine (256 MB) before
        // reuse, so RSS grows by design; leaks are LeakSanitizer's job there.
        if (!process.env.LD_PRELOAD?.includes("libasan"))
            expect(rssEnd / rssAfter100, `RSS after 100: ${rssAfter100}, after 200: ${rssEnd}`).toBeLessThan(1.1);
    });
});

/** How many threads of this process carry each name (/proc/self/task/<tid>/comm). */
function threadsByName(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const tid of fs.readdirSync("/proc/self/task")) {
        try {
            const name = fs.readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
            counts.set(name, (counts.get(name) ?? 0) + 1);
        } catch {
            // the thread ended while we listed them
        }
    }
    return counts;
}

function delta(before: Map<string, number>, after: Map<string, number>, name: string): number {
    return (after.get(name) ?? 0) - (before.get(name) ?? 0);
}

describe("engine threads", () => {
    // Thread names are read from /proc. ggml's OpenMP workers inherit the name of the thread that started them.
    it.runIf(process.platform === "linux")(
        "only the decode thread keeps ggml worker threads: image encodes, on an idle engine or overlapping decoding, leave none behind",
        async () => {
            // Images no earlier test encoded, so that every request runs the vision encoder (no cache hit).
            const fresh = [0, 1, 2, 3].map((k) => testImageRaw("blocks", { width: 224, height: 224, seed: 7100 + k }));
            const before = threadsByName();
            const ctx = await model.createContext({ contextSize: 1024, parallel: 2, threads: 2 });
            try {
                expect(delta(before, threadsByName(), "vlm-warmup"), "the warm-up thread has ended").toBe(0);
                // The first request meets an idle engine (its encode runs on the decode thread); the others are
                // encoded while earlier ones decode (each on a short-lived thread).
                const results = await Promise.all(
                    fresh.map((image, k) =>
                        ctx.complete({
                            messages: [{ role: "user", content: [{ image }, `Describe ${k}.`] }],
                            temperature: 0,
                            maxTokens: 24,
                        }),
                    ),
                );
                expect(results.map((r) => r.timings.imageCacheHits)).toEqual([0, 0, 0, 0]);
                expect(results.every((r) => r.timings.imageTokens > 0 && r.timings.imageEncodeMs > 0)).toBe(true);
                const after = threadsByName();
                expect(
                    delta(before, after, "vlm-encode"),
                    "the encoder stage's thread, with no workers of its own",
                ).toBe(1);
                expect(delta(before, after, "vlm-decode"), "the decode thread and one ggml worker (threads: 2)").toBe(
                    2,
                );
                expect(delta(before, after, "vlm-encode-job")).toBe(0);
            } finally {
                await ctx.dispose();
            }
        },
    );

    it("warmup: false gives the same tokens as the default warm-up decode", async () => {
        const request: CompletionRequest = {
            messages: [{ role: "user", content: [{ image: images[0]! }, "Describe."] }],
            temperature: 0,
            maxTokens: 16,
        };
        const outputs: number[][] = [];
        for (const warmup of [true, false]) {
            const ctx = await model.createContext({ contextSize: 1024, warmup });
            try {
                outputs.push((await ctx.complete(request)).tokens);
            } finally {
                await ctx.dispose();
            }
        }
        expect(outputs[0]!.length).toBe(16);
        expect(outputs[1]).toEqual(outputs[0]);
    });
});
