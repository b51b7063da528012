import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
    type CompletionRequest,
    type Context,
    LlamaVlmError,
    type LoadModelOptions,
    loadModel,
    type Model,
} from "../../lib/index.js";
import { MAX_CRASHES } from "../../lib/backend/process.js";
import type { NativeContext } from "../../lib/native.js";
import { type TestPair, testImages, tinyPair } from "../helpers/fixtures.js";

// The engine process inherits the environment: this enables the native test-only abort hook there.
process.env.LLAMA_VLM_TEST_FAULTS = "1";
// ggml prints a backtrace on abort (and may try a debugger for it): not needed here.
process.env.GGML_NO_BACKTRACE = "1";

let pair: TestPair;
let images: string[];
let requests: CompletionRequest[];
/** In-process greedy results: the isolated engine must give the same tokens. */
let expected: number[][];

/** Makes the engine thread abort natively (GGML_ABORT) before its next llama_decode. */
function abortEngine(context: Context): void {
    (context as unknown as { native: NativeContext }).native.testFault("abort");
}

async function rejection(promise: Promise<unknown>): Promise<LlamaVlmError> {
    try {
        await promise;
    } catch (err) {
        expect(err).toBeInstanceOf(LlamaVlmError);
        return err as LlamaVlmError;
    }
    throw new Error("expected a rejection");
}

function isolated(extra: Partial<LoadModelOptions> = {}): Promise<Model> {
    return loadModel({ model: pair.model, projector: pair.projector, isolation: "process", ...extra });
}

beforeAll(async () => {
    pair = await tinyPair("qwen2.5-vl");
    images = await testImages();
    requests = [
        {
            messages: [{ role: "user", content: [{ image: images[0]! }, "Describe."] }],
            temperature: 0,
            maxTokens: 12,
        },
        { prompt: "Plain text request about a dose", temperature: 0, maxTokens: 10 },
    ];
    const model = await loadModel({ model: pair.model, projector: pair.projector });
    const context = await model.createContext({ contextSize: 1024 });
    expected = [];
    for (const r of requests) expected.push((await context.complete(r)).tokens);
    await model.dispose();
});

describe('isolation: "process"', () => {
    let model: Model;
    let context: Context;
    beforeAll(async () => {
        let progress = 0;
        model = await isolated({ onProgress: (p) => (progress = p) });
        expect(progress).toBe(1);
        context = await model.createContext({ contextSize: 1024, parallel: 2 });
    });
    afterAll(async () => {
        await model.dispose();
    });

    it("gives the in-process greedy tokens, with the same model info and tokenizer", async () => {
        expect(model.info.hasVision).toBe(true);
        expect(model.info.layers).toBeGreaterThan(0);
        expect(model.tokenize("Hello world").length).toBeGreaterThan(1);
        const results = await context.completeBatch(requests);
        expect(results.map((r) => (r as { tokens: number[] }).tokens)).toEqual(expected);
        let streamed = "";
        const stream = context.stream(requests[1]!);
        for await (const chunk of stream) streamed += chunk.text;
        expect(streamed).toBe((await stream.result).text);
    });

    it("a real native abort in the engine fails the requests in flight with CRASHED; the next request succeeds", async () => {
        const long = { prompt: "Tell a long story", temperature: 0, maxTokens: 500 };
        // Two requests generating (parallel 2) and a third queued behind them when the engine aborts.
        const running = rejection(context.complete(long));
        const streaming = context.stream({ ...long, prompt: "Another long story" });
        await streaming.next();
        const queued = rejection(context.complete(requests[1]!));
        abortEngine(context);
        const errors = await Promise.all([running, rejection(streaming.result), queued]);
        for (const e of errors) {
            expect(e.code).toBe("CRASHED");
            expect(e.message).toMatch(/killed by SIGABRT/);
            expect(e.message).toContain("test fault");
            expect(e.message).toContain("restarting");
        }
        // The engine restarts on its own; requests submitted meanwhile wait for it.
        const after = await Promise.all(requests.map((r) => context.complete(r)));
        expect(after.map((r) => r.tokens)).toEqual(expected);
    });

    it("a request with a bad image still fails with its own typed error, and others are unaffected", async () => {
        const bad = context.complete({ prompt: "x", images: [new Uint8Array([1, 2, 3])], maxTokens: 2 });
        expect((await rejection(bad)).code).toBe("IMAGE_DECODE_FAILED");
        expect((await context.complete(requests[0]!)).tokens).toEqual(expected[0]);
    });
});

describe("isolation: repeated crashes", () => {
    it(`stops restarting after ${MAX_CRASHES} crashes with no completed request in between`, async () => {
        const model = await isolated();
        try {
            const context = await model.createContext({ contextSize: 512 });
            for (let i = 1; i <= MAX_CRASHES; i++) {
                const stream = context.stream({ prompt: "Tell a long story", maxTokens: 200 });
                await stream.next();
                abortEngine(context);
                const e = await rejection(stream.result);
                expect(e.code).toBe("CRASHED");
                if (i < MAX_CRASHES) expect(e.message).toContain("restarting");
                else expect(e.message).toContain("stays down");
            }
            const e = await rejection(context.complete({ prompt: "x", maxTokens: 1 }));
            expect(e.code).toBe("CRASHED");
            expect(e.message).toContain("load the model again");
        } finally {
            await model.dispose();
        }
        // A fresh load works again.
        const again = await isolated();
        const context = await again.createContext({ contextSize: 1024 });
        expect((await context.complete(requests[1]!)).tokens).toEqual(expected[1]);
        await again.dispose();
    });

    it("dispose ends the engine process, and requests then reject with DISPOSED", async () => {
        const model = await isolated();
        const context = await model.createContext({ contextSize: 512 });
        const running = rejection(context.complete({ prompt: "Tell a long story", maxTokens: 400 }));
        await model.dispose();
        expect((await running).code).toBe("DISPOSED");
        expect((await rejection(context.complete({ prompt: "x" }))).code).toBe("DISPOSED");
        // No engine process is left behind by this test process.
        await new Promise((r) => setTimeout(r, 500));
        const children = execFileSync("ps", ["-o", "args=", "--ppid", String(process.pid)], { encoding: "utf8" });
        expect(children).not.toContain("backend/child.js");
    });
});
