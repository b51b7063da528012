import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
    type CompletionResult,
    type Context,
    LlamaVlmError,
    type LlamaVlmErrorCode,
    loadModel,
    type Model,
} from "../../lib/index.js";
import { type TestPair, testImages, tinyPair, VISION_FAMILIES, type VisionFamily } from "../helpers/fixtures.js";
import { testImagePng } from "../helpers/images.js";
import { runMtmdCli } from "../helpers/reference.js";

async function expectCode(
    promise: Promise<unknown> | (() => unknown),
    code: LlamaVlmErrorCode,
): Promise<LlamaVlmError> {
    let error: unknown;
    try {
        await (typeof promise === "function" ? promise() : promise);
    } catch (err) {
        error = err;
    }
    expect(error, `expected a LlamaVlmError with code ${code}`).toBeInstanceOf(LlamaVlmError);
    expect((error as LlamaVlmError).code).toBe(code);
    return error as LlamaVlmError;
}

/** Layers to offload in the parity tests (scripts/vulkan-check.sh and gpu-check.sh set 99). */
const GPU_LAYERS = Number(process.env.LLAMA_VLM_TEST_GPU_LAYERS ?? -1);
/** LLAMA_VLM_TEST_FLASH_ATTN=off turns flash attention off on both sides (scripts/vulkan-check.sh: lavapipe). */
const FLASH_ATTENTION = process.env.LLAMA_VLM_TEST_FLASH_ATTN === "off" ? false : "auto";

const PROMPTS = ["Describe this image.", "What text is written here?", "List the medications and their doses."];

let images: string[];
const pairs = new Map<string, TestPair>();

beforeAll(async () => {
    images = await testImages();
    for (const family of VISION_FAMILIES) pairs.set(family, await tinyPair(family));
});

/** Where our greedy output and the reference's part: see `difference`. */
interface Difference {
    /** Index of the first of our tokens the reference's text does not continue with. */
    k: number;
    /** log(p1/p2) of our top two candidates at token k; ∞ when there is no runner-up there. */
    margin: number;
    /** Whether the reference's text continues with our runner-up (second most likely) token at k. */
    tookRunnerUp: boolean;
    detail: string;
}

/**
 * Compares our greedy output with the reference's text. undefined when they are equal; else, at the first of
 * our tokens the reference's text does not continue with (token k), our top-1/top-2 margin and whether the
 * reference continues with our runner-up there: a near-tie the two implementations resolved differently has a
 * tiny margin and the reference taking our runner-up. A runner-up that adds no text (an end-of-generation token)
 * counts only if the reference's text ends there.
 */
function difference(
    ours: Pick<CompletionResult, "text" | "tokens" | "probs" | "stopReason">,
    refText: string,
    detokenize: (tokens: number[]) => string,
): Difference | undefined {
    if (ours.text === refText) return undefined;
    let k = 0;
    while (k < ours.tokens.length && refText.startsWith(detokenize(ours.tokens.slice(0, k + 1)))) k++;
    const prefix = ours.tokens.slice(0, k);
    const common = detokenize(prefix);
    const refNext = JSON.stringify(refText.slice(common.length, common.length + 24));
    if (k === ours.tokens.length) {
        // All our tokens are in the reference's text: ours stopped (an end-of-generation token, whose
        // probabilities are not reported) where the reference went on.
        return {
            k,
            margin: Number.POSITIVE_INFINITY,
            tookRunnerUp: false,
            detail: `ours stopped (${ours.stopReason}) after ${k} tokens where the reference went on with ${refNext}`,
        };
    }
    const [first, second] = ours.probs?.[k] ?? [];
    const margin = first && second ? Math.log(first.probability / second.probability) : Number.POSITIVE_INFINITY;
    const withRunnerUp = second ? detokenize([...prefix, second.token]) : undefined;
    const tookRunnerUp =
        withRunnerUp !== undefined &&
        refText.startsWith(withRunnerUp) &&
        (withRunnerUp !== common || refText === common);
    const ourNext = JSON.stringify(detokenize([ours.tokens[k]!]));
    const runnerUp = second ? JSON.stringify(detokenize([second.token])) : "none";
    return {
        k,
        margin,
        tookRunnerUp,
        detail:
            `differs at token ${k}: ours ${ourNext}, our runner-up ${runnerUp}, the reference goes on with ${refNext}; ` +
            `margin ${margin}`,
    };
}

interface ParityCase {
    family: VisionFamily;
    image: string;
    prompt: string;
    difference: Difference | undefined;
}

/**
 * Our greedy output against llama-mtmd-cli's for one family's 3 prompts × 2 images. Memoised: the per-family
 * tests and "parity overall" share one run of each family, and each of them runs alone too.
 */
const parityRuns = new Map<VisionFamily, Promise<ParityCase[]>>();
function parityCases(family: VisionFamily): Promise<ParityCase[]> {
    let run = parityRuns.get(family);
    if (run === undefined) {
        run = runParity(family);
        parityRuns.set(family, run);
    }
    return run;
}

async function runParity(family: VisionFamily): Promise<ParityCase[]> {
    const pair = pairs.get(family)!;
    const model = await loadModel({ model: pair.model, projector: pair.projector, gpuLayers: GPU_LAYERS });
    try {
        const context = await model.createContext({ contextSize: 4096, flashAttention: FLASH_ATTENTION });
        const cases: ParityCase[] = [];
        for (const image of images) {
            for (const prompt of PROMPTS) {
                const ours = await context.complete({
                    messages: [{ role: "user", content: [{ image }, prompt] }],
                    temperature: 0,
                    maxTokens: 32,
                    nProbs: 2,
                });
                const ref = await runMtmdCli({
                    model: pair.model,
                    projector: pair.projector,
                    image,
                    prompt,
                    nPredict: 32,
                    endedAtEog: ours.stopReason === "eos",
                });
                cases.push({
                    family,
                    image,
                    prompt,
                    difference: difference(ours, ref.text, (t) => model.detokenize(t)),
                });
            }
        }
        return cases;
    } finally {
        await model.dispose();
    }
}

/** Checks that every case that differs is a near-tie (margin < 1e-3) the reference resolved to our runner-up. */
function expectNearTies(cases: ParityCase[]): ParityCase[] {
    const differing = cases.filter((c) => c.difference !== undefined);
    const report = differing
        .map((c) => `${c.family} ${path.basename(c.image)} "${c.prompt}": ${c.difference!.detail}`)
        .join("\n");
    for (const c of differing) {
        expect(c.difference!.margin, `not a near-tie:\n${report}`).toBeLessThan(1e-3);
        expect(c.difference!.tookRunnerUp, `the reference did not take our runner-up:\n${report}`).toBe(true);
    }
    return differing;
}

describe.each(VISION_FAMILIES)("%s: greedy parity with llama-mtmd-cli", (family) => {
    it("gives the reference's 32 tokens for 3 prompts × 2 images, or a near-tie (margin < 1e-3) the reference resolved to our runner-up", async () => {
        const cases = await parityCases(family);
        expect(cases).toHaveLength(6);
        expect(expectNearTies(cases).length).toBeLessThanOrEqual(1);
    }, 600_000);
});

describe("parity overall", () => {
    // Runs both families' cases itself when the per-family tests did not (they share one memoised run).
    it("differs from llama-mtmd-cli in at most 1 of the 12 cases, and only at a near-tie", async () => {
        const cases: ParityCase[] = [];
        for (const family of VISION_FAMILIES) cases.push(...(await parityCases(family)));
        expect(cases).toHaveLength(12);
        expect(expectNearTies(cases).length, "near-ties across both families").toBeLessThanOrEqual(1);
    }, 900_000);
});

describe("the parity test's near-tie check", () => {
    // Tokens of a made-up vocabulary; 9 is an end-of-generation token (no text).
    const vocab: Record<number, string> = { 1: "He", 2: "llo", 3: " wor", 4: "ld", 5: " there", 6: "!", 9: "" };
    const detokenize = (tokens: number[]) => tokens.map((t) => vocab[t]!).join("");
    const top = (a: number, pa: number, b: number, pb: number) => [
        { token: a, probability: pa },
        { token: b, probability: pb },
    ];
    const ours = {
        text: "Hello world",
        tokens: [1, 2, 3, 4],
        probs: [top(1, 0.9, 2, 0.1), top(2, 0.9, 1, 0.1), top(3, 0.5, 5, 0.4999), top(4, 0.9, 6, 0.1)],
        stopReason: "length" as const,
    };

    it("passes equal outputs and a near-tie resolved to our runner-up", () => {
        expect(difference(ours, "Hello world", detokenize)).toBeUndefined();
        const d = difference(ours, "Hello there", detokenize)!;
        expect(d.k).toBe(2);
        expect(d.margin).toBeLessThan(1e-3);
        expect(d.tookRunnerUp).toBe(true);
    });

    it("fails a reference that continues with some other token than our runner-up, even at a near-tie", () => {
        const d = difference(ours, "Hello!", detokenize)!;
        expect(d.k).toBe(2);
        expect(d.margin).toBeLessThan(1e-3);
        expect(d.tookRunnerUp).toBe(false);
        expect(d.detail).toContain('the reference goes on with "!"');
    });

    it("fails a wide margin, a missing runner-up, and ours stopping where the reference went on", () => {
        const wide = { ...ours, probs: [...ours.probs.slice(0, 2), top(3, 0.9, 5, 0.1)] };
        expect(difference(wide, "Hello there", detokenize)).toMatchObject({ k: 2, tookRunnerUp: true });
        expect(difference(wide, "Hello there", detokenize)!.margin).toBeGreaterThan(1e-3);
        const noProbs = { ...ours, probs: undefined };
        expect(difference(noProbs, "Hello there", detokenize)).toMatchObject({
            k: 2,
            margin: Number.POSITIVE_INFINITY,
            tookRunnerUp: false,
        });
        const short = { text: "Hello", tokens: [1, 2], probs: ours.probs.slice(0, 2), stopReason: "eos" as const };
        const d = difference(short, "Hello world", detokenize)!;
        expect(d).toMatchObject({ k: 2, margin: Number.POSITIVE_INFINITY, tookRunnerUp: false });
        expect(d.detail).toContain("ours stopped (eos) after 2 tokens");
    });

    it("takes an end-of-generation runner-up only where the reference's text ends", () => {
        const eosRunnerUp = { ...ours, probs: [...ours.probs.slice(0, 2), top(3, 0.5, 9, 0.4999)] };
        expect(difference(eosRunnerUp, "Hello", detokenize)!.tookRunnerUp).toBe(true);
        expect(difference(eosRunnerUp, "Hello there", detokenize)!.tookRunnerUp).toBe(false);
    });
});

describe("generation (qwen2.5-vl tiny)", () => {
    let model: Model;
    let context: Context;
    const image = () => images[0]!;
    const ask = (extra: Record<string, unknown> = {}) => ({
        messages: [{ role: "user" as const, content: [{ image: image() }, "Read the prescription."] }],
        temperature: 0,
        maxTokens: 24,
        ...extra,
    });

    beforeAll(async () => {
        const pair = pairs.get("qwen2.5-vl")!;
        const progress: number[] = [];
        model = await loadModel({ model: pair.model, projector: pair.projector, onProgress: (p) => progress.push(p) });
        expect(progress.length).toBeGreaterThan(0);
        expect(progress.at(-1)).toBe(1);
        context = await model.createContext({ contextSize: 2048 });
    });
    afterAll(async () => {
        await model.dispose();
    });

    it("reports what the model is", () => {
        expect(model.info.architecture).toBe("qwen2vl");
        expect(model.info.hasVision).toBe(true);
        expect(model.info.vocabSize).toBe(151936);
        expect(model.info.chatTemplate).toContain("<|im_start|>");
    });

    it("tokenizes with the real Qwen2 tokenizer and round-trips", () => {
        const tokens = model.tokenize("Hello world", { addSpecial: false });
        expect(tokens).toEqual([9707, 1879]);
        expect(model.detokenize(tokens)).toBe("Hello world");
    });

    it("refuses token ids that are not integers in the vocabulary, instead of coercing them", () => {
        const code = (fn: () => unknown) => {
            try {
                fn();
                return "none";
            } catch (e) {
                return e instanceof LlamaVlmError ? `${e.code}: ${e.message}` : String(e);
            }
        };
        expect(code(() => model.detokenize(null as never))).toMatch(/^INVALID_OPTION: .*"tokens"/);
        expect(code(() => model.detokenize([9707, 1.5]))).toMatch(/^INVALID_OPTION: .*"tokens\[1\]"/);
        expect(code(() => model.detokenize(["9707"] as never))).toMatch(/^INVALID_OPTION: .*"tokens\[0\]"/);
        // 2^32 + 9707 would wrap to 9707 in an Int32Array.
        expect(code(() => model.detokenize([2 ** 32 + 9707]))).toMatch(/^INVALID_OPTION: .*"tokens\[0\]"/);
        expect(code(() => model.detokenize([model.info.vocabSize]))).toMatch(
            /^INVALID_OPTION: .*outside the vocabulary/,
        );
        expect(code(() => model.tokenize("x", { addSpecial: "no" as never }))).toMatch(
            /^INVALID_OPTION: .*"addSpecial"/,
        );
        expect(model.detokenize(new Int32Array([9707, 1879]) as never)).toBe("Hello world");
    });

    it("renders llama.cpp's vicuna template with USER:/ASSISTANT:", () => {
        const text = model.applyChatTemplate([{ role: "user", content: "hi" }], { template: "vicuna" });
        expect(text).toContain("USER: hi");
        expect(text.trimEnd().endsWith("ASSISTANT:")).toBe(true);
    });

    it("runs the reference pipeline's settings block on an image", async () => {
        const ctx = await model.createContext({ nCtx: 4096, parallel: 4 });
        try {
            const result = await ctx.complete({
                messages: [
                    {
                        role: "user",
                        content: [
                            { image: image() },
                            "Extract demographic, clinical disease and medication information",
                        ],
                    },
                ],
                chatTemplate: "vicuna",
                minKeep: 0,
                minP: 0.05,
                nPredict: -1,
                nProbs: 0,
                penalizeNl: false,
                repeatLastN: 256,
                repeatPenalty: 1.18,
                stopStrings: ["</s>", "User:"],
                temperature: 0.05,
                tfsZ: 1,
                typicalP: 1,
                topK: 40,
                topP: 0.95,
                seed: 7,
            });
            expect(["eos", "stop", "context"]).toContain(result.stopReason);
            expect(result.tokens.length).toBeGreaterThan(0);
            expect(result.timings.imageTokens).toBeGreaterThan(0);
            // The last sampled token needs no cell of its own.
            expect(result.timings.promptTokens + result.tokens.length - 1).toBeLessThanOrEqual(ctx.contextSize);
            expect(result.text).not.toContain("</s>");
        } finally {
            await ctx.dispose();
        }
    });

    it("stops at maxTokens with stopReason length, and at a full context with stopReason context", async () => {
        const r = await context.complete(ask({ maxTokens: 5 }));
        expect(r.stopReason).toBe("length");
        expect(r.tokens).toHaveLength(5);
        const small = await model.createContext({ contextSize: 64 });
        try {
            const full = await small.complete({ prompt: "Once upon a time", temperature: 0, maxTokens: -1 });
            // llama.cpp rounds the context up to its granularity (256 cells); contextSize reports what it got.
            expect(small.contextSize).toBeGreaterThanOrEqual(64);
            if (full.stopReason !== "eos") {
                expect(full.stopReason).toBe("context");
                expect(full.timings.promptTokens + full.tokens.length - 1).toBe(small.contextSize);
            }
        } finally {
            await small.dispose();
        }
    });

    it("streams chunks that concatenate to the final text", async () => {
        const stream = context.stream(ask());
        let text = "";
        let chunks = 0;
        for await (const chunk of stream) {
            text += chunk.text;
            chunks++;
        }
        const result = await stream.result;
        expect(chunks).toBeGreaterThan(1);
        expect(text).toBe(result.text);
        expect(result).toEqual({ ...(await context.complete(ask())), timings: result.timings });
    });

    it("finds a stop string across token boundaries and never streams part of it", async () => {
        const plain = await context.complete(ask());
        // A 3-character stop string that starts 2 characters before the end of one token and ends 1 character into
        // the next, at its first occurrence: found only if those 2 characters are held back until the next token.
        const ends = plain.tokens.map((_, i) => model.detokenize(plain.tokens.slice(0, i + 1)).length);
        let stop = "";
        let at = -1;
        for (let i = 2; i + 1 < plain.tokens.length && !stop; i++) {
            const end = ends[i]!;
            if (end - ends[i - 1]! < 2 || ends[i + 1]! - end < 1) continue;
            const candidate = plain.text.slice(end - 2, end + 1);
            if (plain.text.indexOf(candidate) === end - 2) {
                stop = candidate;
                at = end - 2;
            }
        }
        expect(stop, `no token boundary to put a stop string across in ${JSON.stringify(plain.text)}`).toHaveLength(3);
        const expected = plain.text.slice(0, at);
        const stream = context.stream(ask({ stop: [stop] }));
        let streamed = "";
        let chunks = 0;
        for await (const chunk of stream) {
            streamed += chunk.text;
            chunks++;
            // What has been streamed at every point is the start of the text before the stop string: no chunk
            // shows a character of the stop string, not even one later text turns out to complete it.
            expect(
                expected.startsWith(streamed),
                `after chunk ${chunks} the stream has shown ${JSON.stringify(streamed.slice(Math.max(0, expected.length - 8)))}, ` +
                    `past the text before the stop string ${JSON.stringify(stop)}, which ends ${JSON.stringify(expected.slice(-8))}`,
            ).toBe(true);
        }
        const result = await stream.result;
        expect(result.stopReason).toBe("stop");
        expect(result.text).toBe(expected);
        expect(streamed).toBe(expected);
    });

    it("settles an aborted stream with stopReason abort within one decode step", async () => {
        const controller = new AbortController();
        const stream = context.stream(ask({ maxTokens: 200, signal: controller.signal }));
        let seen = 0;
        // Chunks received when abort() was called.
        let atAbort = -1;
        // Tokens the engine had produced before abort() but this thread had not received yet (it was busy, or the
        // machine was): they were already waiting to be delivered, so they arrive before the event loop's next turn.
        let inFlight = 0;
        let nextTurn = false;
        for await (const _ of stream) {
            seen++;
            if (atAbort >= 0 && !nextTurn) inFlight++;
            if (seen === 3) {
                atAbort = seen;
                controller.abort();
                setImmediate(() => {
                    nextTurn = true;
                });
            }
        }
        const result = await stream.result;
        expect(result.stopReason).toBe("abort");
        // Besides those, at most the token of the decode step under way when abort() came.
        expect(
            result.tokens.length,
            `abort() after ${atAbort} chunks with ${inFlight} more already on their way, but ${result.tokens.length} tokens`,
        ).toBeLessThanOrEqual(atAbort + inFlight + 1);
    });

    it("stops generating when the stream's consumer stops reading (break)", async () => {
        const stream = context.stream(ask({ maxTokens: 200 }));
        let seen = 0;
        for await (const _ of stream) if (++seen === 3) break;
        const result = await stream.result;
        expect(result.stopReason).toBe("abort");
        expect(result.tokens.length).toBeLessThan(200);
    });

    it("returns top-N probabilities per token with nProbs, from what the sampler chain kept", async () => {
        const r = await context.complete(ask({ nProbs: 3, maxTokens: 4, minP: 0, topP: 1 }));
        expect(r.probs).toHaveLength(r.tokens.length);
        for (const [i, top] of r.probs!.entries()) {
            expect(top).toHaveLength(3);
            expect(top[0]!.probability).toBeGreaterThanOrEqual(top[1]!.probability);
            expect(top[0]!.token).toBe(r.tokens[i]); // greedy picks the most likely token
        }
        // With a grammar, only tokens it allows carry probability.
        const forced = await context.complete(ask({ nProbs: 5, maxTokens: 3, grammar: 'root ::= "yes" | "no"' }));
        expect(["yes", "no"]).toContain(forced.text);
        for (const top of forced.probs!) {
            for (const p of top) expect("yesno".includes(model.detokenize([p.token]))).toBe(true);
        }
    });

    it("encodes the same image once (cache hit in timings)", async () => {
        const first = await context.complete(ask({ maxTokens: 2 }));
        const second = await context.complete(ask({ maxTokens: 2 }));
        expect(first.timings.imageTokens).toBeGreaterThan(0);
        expect(second.timings.imageCacheHits).toBe(1);
        expect(second.timings.imageEncodeMs).toBe(0);
        expect(second.tokens).toEqual(first.tokens);
    });

    it("starts requests in the order they were made, even when an earlier one's image takes longer to prepare", async () => {
        // A 3000×3000 PNG takes a while to decode and shrink; the text request after it has nothing to prepare.
        const big = await testImagePng("blocks", { width: 3000, height: 3000, seed: 7 });
        const single = await model.createContext({ contextSize: 2048, parallel: 1 });
        try {
            const order: string[] = [];
            const withImage = single
                .complete({
                    prompt: "Read: ",
                    images: [big],
                    imageBudget: { maxPixels: 250_000 },
                    temperature: 0,
                    maxTokens: 4,
                })
                .then(() => order.push("image"));
            const textOnly = single
                .complete({ prompt: "Hello", temperature: 0, maxTokens: 4 })
                .then(() => order.push("text"));
            await Promise.all([withImage, textOnly]);
            // One slot: the request that starts first finishes first.
            expect(order).toEqual(["image", "text"]);
        } finally {
            await single.dispose();
        }
    });

    it("treats a media marker typed inside user text as text, not an image slot", async () => {
        const r = await context.complete({
            messages: [{ role: "user", content: ["What does <__media__> mean?"] }],
            temperature: 0,
            maxTokens: 4,
        });
        expect(r.timings.imageTokens).toBe(0);
        expect(r.tokens.length).toBeGreaterThan(0);
    });

    it("raw images and encoded bytes give the same result as the file", async () => {
        const bytes = fs.readFileSync(image());
        const fromBytes = await context.complete(
            ask({ messages: [{ role: "user", content: [{ image: bytes }, "Read the prescription."] }] }),
        );
        const fromFile = await context.complete(ask());
        expect(fromBytes.tokens).toEqual(fromFile.tokens);
    });
});

describe("errors a person can act on; the process and other requests go on", () => {
    let model: Model;
    let context: Context;
    let tmp: string;
    let good: () => Promise<CompletionResult>;
    let reference: CompletionResult;

    beforeAll(async () => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-errors-"));
        const pair = pairs.get("qwen2.5-vl")!;
        model = await loadModel({ model: pair.model, projector: pair.projector });
        context = await model.createContext({ contextSize: 1024 });
        good = () =>
            context.complete({
                messages: [{ role: "user", content: [{ image: images[1]! }, "Describe."] }],
                temperature: 0,
                maxTokens: 8,
            });
        reference = await good();
    });
    afterAll(async () => {
        await model.dispose();
        fs.rmSync(tmp, { recursive: true, force: true });
    });

    async function stillServes() {
        expect((await good()).tokens).toEqual(reference.tokens);
    }

    it("FILE_NOT_FOUND for a missing model or image", async () => {
        const e = await expectCode(loadModel({ model: path.join(tmp, "missing.gguf") }), "FILE_NOT_FOUND");
        expect(e.message).toContain("missing.gguf");
        await expectCode(context.complete({ prompt: "x", images: [path.join(tmp, "missing.png")] }), "FILE_NOT_FOUND");
        await stillServes();
    });

    it("INVALID_MODEL for a truncated GGUF, with the reason", async () => {
        const pair = pairs.get("qwen2.5-vl")!;
        const bytes = fs.readFileSync(pair.model);
        const truncated = path.join(tmp, "truncated.gguf");
        fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
        const e = await expectCode(loadModel({ model: truncated }), "INVALID_MODEL");
        expect(e.message).toMatch(/truncated|TRUNCATED/i);
        const notGguf = path.join(tmp, "not.gguf");
        fs.writeFileSync(notGguf, "this is not a model");
        await expectCode(loadModel({ model: notGguf }), "INVALID_MODEL");
        await stillServes();
    });

    it("INVALID_MODEL when model and projector are swapped", async () => {
        const pair = pairs.get("qwen2.5-vl")!;
        await expectCode(loadModel({ model: pair.projector }), "INVALID_MODEL");
        await expectCode(loadModel({ model: pair.model, projector: pair.model }), "INVALID_MODEL");
    });

    it("PROJECTOR_MISMATCH for the other family's projector", async () => {
        const other = VISION_FAMILIES.find((f) => f !== "qwen2.5-vl")!;
        const e = await expectCode(
            loadModel({ model: pairs.get("qwen2.5-vl")!.model, projector: pairs.get(other)!.projector }),
            "PROJECTOR_MISMATCH",
        );
        expect(e.message).toContain("not a pair");
        await stillServes();
    });

    it("IMAGE_DECODE_FAILED for a corrupted PNG", async () => {
        const png = fs.readFileSync(images[0]!);
        const corrupt = path.join(tmp, "corrupt.png");
        fs.writeFileSync(corrupt, Buffer.concat([png.subarray(0, 64), Buffer.alloc(256, 0x5a)]));
        const e = await expectCode(
            context.complete({ messages: [{ role: "user", content: [{ image: corrupt }, "x"] }], maxTokens: 2 }),
            "IMAGE_DECODE_FAILED",
        );
        expect(e.message).toContain("corrupt.png");
        await stillServes();
    });

    it("OVER_CONTEXT for a prompt longer than the context", async () => {
        const e = await expectCode(context.complete({ prompt: "word ".repeat(3000), maxTokens: 2 }), "OVER_CONTEXT");
        expect(e.message).toMatch(/needs \d+ tokens .* holds 1024/);
        await stillServes();
    });

    it("OVER_BUDGET when an image is over maxPixels and the request asks for an error", async () => {
        await expectCode(
            context.complete({
                messages: [{ role: "user", content: [{ image: images[0]! }, "x"] }],
                imageBudget: { maxPixels: 100, overBudget: "error" },
            }),
            "OVER_BUDGET",
        );
        const shrunk = await context.complete({
            messages: [{ role: "user", content: [{ image: images[0]! }, "x"] }],
            imageBudget: { maxPixels: 200 * 200 },
            maxTokens: 1,
        });
        expect(shrunk.timings.imageTokens).toBeGreaterThan(0);
        await stillServes();
    });

    it("INVALID_OPTION names a misspelled option and suggests the right one", async () => {
        const e = await expectCode(context.complete({ prompt: "x", typicalp: 1 } as never), "INVALID_OPTION");
        expect(e.message).toContain('"typicalp"');
        expect(e.message).toContain('did you mean "typicalP"');
        await expectCode(context.complete({ prompt: "x", topK: -3 }), "INVALID_OPTION");
        await expectCode(model.createContext({ contextsize: 10 } as never), "INVALID_OPTION");
        await stillServes();
    });

    it("ABORTED for a request whose signal is already aborted, and for an aborted load", async () => {
        const controller = new AbortController();
        controller.abort();
        await expectCode(context.complete({ prompt: "x", signal: controller.signal }), "ABORTED");
        await expectCode(loadModel({ model: pairs.get("qwen2.5-vl")!.model, signal: controller.signal }), "ABORTED");
        await stillServes();
    });

    it("DISPOSED after dispose; dispose is idempotent", async () => {
        const pair = pairs.get("qwen2.5-vl")!;
        const m = await loadModel({ model: pair.model, projector: pair.projector });
        const c = await m.createContext({ contextSize: 512 });
        const running = expectCode(
            c.complete({ prompt: "Tell a long story", temperature: 0, maxTokens: 400 }),
            "DISPOSED",
        );
        await m.dispose();
        await m.dispose();
        await running;
        await expectCode(c.complete({ prompt: "x" }), "DISPOSED");
        await expectCode(() => m.tokenize("x"), "DISPOSED");
        await expectCode(m.createContext(), "DISPOSED");
        await stillServes();
    });
});
