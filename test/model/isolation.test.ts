import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_CRASHES } from "../../lib/backend/process.js";
import {
    type CompletionRequest,
    type Context,
    LlamaVlmError,
    type LoadModelOptions,
    loadModel,
    type Model,
} from "../../lib/index.js";
import type { NativeContext } from "../../lib/native.js";
import { type TestPair, testImages, tinyPair } from "../helpers/fixtures.js";

/**
 * The engine process inherits this process's environment when it starts (and restarts, after a crash), so the
 * variables it needs are set for this file's tests and restored after them: the test workers run every file in one
 * process. LLAMA_VLM_TEST_FAULTS enables the native test-only abort hook; GGML_NO_BACKTRACE stops ggml from
 * printing a backtrace on abort (and from trying a debugger for it).
 */
const ENGINE_ENV = { LLAMA_VLM_TEST_FAULTS: "1", GGML_NO_BACKTRACE: "1" };
const savedEnv: Record<string, string | undefined> = {};
beforeAll(() => {
    for (const [name, value] of Object.entries(ENGINE_ENV)) {
        savedEnv[name] = process.env[name];
        process.env[name] = value;
    }
});
afterAll(() => {
    for (const [name, value] of Object.entries(savedEnv)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
    }
});

let pair: TestPair;
let images: string[];
let requests: CompletionRequest[];
/** In-process greedy results: the isolated engine must give the same tokens. */
let expected: number[][];

/** Makes the engine thread abort natively (GGML_ABORT) before its next llama_decode. */
function abortEngine(context: Context): void {
    (context as unknown as { native: NativeContext }).native.testFault("abort");
}

/** This process's child processes, by pid: their command lines (the ps that lists them left out). */
function childProcesses(): Map<number, string> {
    // ps exits with 1 when there is no child to list; its output is what counts.
    const ps = spawnSync("ps", ["-o", "pid=,args=", "--ppid", String(process.pid)], { encoding: "utf8" });
    if (ps.error) throw ps.error;
    const children = new Map<number, string>();
    for (const line of ps.stdout.split("\n")) {
        const m = /^\s*(\d+)\s+(.*)$/.exec(line);
        if (m && Number(m[1]) !== ps.pid) children.set(Number(m[1]), m[2]!);
    }
    return children;
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
        const before = childProcesses();
        const model = await isolated();
        // The engine: the child processes the load started (one, unless a restart left another for a moment).
        const engine = [...childProcesses()].filter(([pid]) => !before.has(pid));
        expect(engine.length, "no child process appeared for the engine").toBeGreaterThan(0);
        const context = await model.createContext({ contextSize: 512 });
        const running = rejection(context.complete({ prompt: "Tell a long story", maxTokens: 400 }));
        await model.dispose();
        expect((await running).code).toBe("DISPOSED");
        expect((await rejection(context.complete({ prompt: "x" }))).code).toBe("DISPOSED");
        // The engine process ends soon after dispose: it exits when asked, or is killed 5 s later. The deadline
        // only bounds a busy machine.
        const alive = () => {
            const now = childProcesses();
            return engine.filter(([pid, args]) => now.get(pid) === args).map(([pid, args]) => `${pid} ${args}`);
        };
        const deadline = Date.now() + 10_000;
        let left = alive();
        while (left.length > 0 && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 50));
            left = alive();
        }
        expect(left, `engine processes still running 10 s after dispose:\n${left.join("\n")}`).toEqual([]);
    });
});
