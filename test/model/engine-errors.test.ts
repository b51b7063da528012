import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CompletionRequest, type Context, LlamaVlmError, loadModel, type Model } from "../../lib/index.js";
import type { NativeContext, TestFault } from "../../lib/native.js";
import { testImages, tinyPair } from "../helpers/fixtures.js";

// llama.cpp may throw any std::exception from the engine's threads (std::bad_alloc, std::runtime_error from a
// model's code). The engine catches around each request's work: that request fails with NATIVE_ERROR, the others
// on the same context go on. A test-only hook (LLAMA_VLM_TEST_FAULTS=1, read when the hook is called) throws a
// std::runtime_error in the next request's work in the encoder stage (tokenize + image encode) or the decoder
// stage (prefill).

let model: Model;
let images: string[];
let requests: CompletionRequest[];
/** Each request's greedy tokens on a context that saw no fault. */
let expected: number[][];
const previousFaults = process.env.LLAMA_VLM_TEST_FAULTS;

function inject(context: Context, fault: TestFault): void {
    (context as unknown as { native: NativeContext }).native.testFault(fault);
}

beforeAll(async () => {
    process.env.LLAMA_VLM_TEST_FAULTS = "1";
    images = await testImages();
    const pair = await tinyPair("qwen2.5-vl");
    model = await loadModel({ model: pair.model, projector: pair.projector });
    requests = [0, 1, 2, 3].map((i) => ({
        messages: [{ role: "user" as const, content: [{ image: images[i % 2]! }, `Question ${i}: the dose?`] }],
        temperature: 0,
        maxTokens: 8,
    }));
    const clean = await model.createContext({ contextSize: 2048, parallel: 2 });
    expected = [];
    for (const r of requests) expected.push((await clean.complete(r)).tokens);
    await clean.dispose();
});
afterAll(async () => {
    await model?.dispose();
    if (previousFaults === undefined) delete process.env.LLAMA_VLM_TEST_FAULTS;
    else process.env.LLAMA_VLM_TEST_FAULTS = previousFaults;
});

describe.each([
    ["throw-prepare", "encoder"],
    ["throw-prefill", "decoder"],
] as const)("a std::runtime_error in one request's engine work (%s)", (fault, stage) => {
    it(`fails that request with NATIVE_ERROR; the other requests on the context complete (${stage} stage)`, async () => {
        const context = await model.createContext({ contextSize: 2048, parallel: 2 });
        inject(context, fault);
        const settled = await Promise.allSettled(requests.map((r) => context.complete(r)));
        const failed = settled.flatMap((s, i) => (s.status === "rejected" ? [{ i, reason: s.reason }] : []));
        expect(failed, JSON.stringify(settled.map((s) => s.status))).toHaveLength(1);
        const error = failed[0]!.reason as LlamaVlmError;
        expect(error).toBeInstanceOf(LlamaVlmError);
        expect(error.code).toBe("NATIVE_ERROR");
        expect(error.message).toContain(`a std::runtime_error thrown in the ${stage} stage`);
        for (const [i, s] of settled.entries()) {
            if (s.status === "fulfilled") expect(s.value.tokens, `request ${i}`).toEqual(expected[i]);
        }
        // The engine lives on: the failed request, made again, gives its tokens.
        const again = await context.complete(requests[failed[0]!.i]!);
        expect(again.tokens).toEqual(expected[failed[0]!.i]);
        await context.dispose();
    });
});

it("refuses an unknown test fault", async () => {
    const context = await model.createContext({ contextSize: 512 });
    expect(() => inject(context, "explode" as TestFault)).toThrow(/the test faults are "abort", "throw-prepare"/);
    await context.dispose();
});
