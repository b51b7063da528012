import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STOP_REASONS } from "../../lib/context.js";
import { ERROR_CODES } from "../../lib/errors.js";
import { type CompletionRequest, type CompletionResult, loadModel, type Model } from "../../lib/index.js";
import { loadNative } from "../../lib/native.js";
import { tinyPair } from "../helpers/fixtures.js";

let model: Model;

beforeAll(async () => {
    const pair = await tinyPair("qwen2.5-vl");
    model = await loadModel({ model: pair.model, projector: pair.projector });
});
afterAll(async () => {
    await model.dispose();
});

const STOPPED: CompletionRequest = { prompt: "Once upon a time", temperature: 0, maxTokens: 40 };
const OTHER: CompletionRequest = { prompt: "List the medications and their doses.", temperature: 0, maxTokens: 40 };

/**
 * A stop string from early in `plain`'s text, and how many tokens a request needs to produce it: the first token at
 * which the detokenised output contains it, counted with that token.
 */
function earlyStop(plain: CompletionResult): { stop: string; tokensThrough: number } {
    for (let at = 1; at + 3 <= plain.text.length; at++) {
        const stop = plain.text.slice(at, at + 3);
        if (stop.trim().length < 3 || plain.text.indexOf(stop) !== at) continue;
        const tokensThrough =
            plain.tokens.findIndex((_, i) => model.detokenize(plain.tokens.slice(0, i + 1)).includes(stop)) + 1;
        // The request must be able to go on past it, or stopping late could not show.
        if (tokensThrough >= 2 && tokensThrough + 2 <= plain.tokens.length) return { stop, tokensThrough };
    }
    throw new Error(`no early stop string in ${JSON.stringify(plain.text)}`);
}

describe("the engine finishes requests", () => {
    it("a stop string ends its sequence on the decode step that produced it, beside another request (parallel=2)", async () => {
        const solo = await model.createContext({ contextSize: 512, parallel: 1 });
        const plain = await solo.complete(STOPPED);
        const otherSolo = await solo.complete(OTHER);
        await solo.dispose();
        expect(plain.stopReason).toBe("length");
        const { stop, tokensThrough } = earlyStop(plain);

        const ctx = await model.createContext({ contextSize: 512, parallel: 2 });
        try {
            const [stopped, other] = await Promise.all([
                ctx.complete({ ...STOPPED, stop: [stop] }),
                ctx.complete(OTHER),
            ]);
            const report = `stop ${JSON.stringify(stop)} completed by token ${tokensThrough} of ${JSON.stringify(plain.text)}`;
            expect(stopped.stopReason, report).toBe("stop");
            expect(stopped.text, report).toBe(plain.text.slice(0, plain.text.indexOf(stop)));
            // Not one token generated (let alone decoded) past the one that completed the stop string.
            expect(stopped.tokens, report).toEqual(plain.tokens.slice(0, tokensThrough));
            expect(stopped.timings.generatedTokens, report).toBe(tokensThrough);
            // The sequence decoded beside it is not disturbed by its ending.
            expect(other.tokens).toEqual(otherSolo.tokens);
            expect(other.stopReason).toBe(otherSolo.stopReason);
        } finally {
            await ctx.dispose();
        }
    });

    it("maxTokens 0 generates no token and ends with stopReason length", async () => {
        const ctx = await model.createContext({ contextSize: 512, parallel: 2 });
        try {
            const result = await ctx.complete({ ...OTHER, maxTokens: 0 });
            expect(result).toMatchObject({ text: "", tokens: [], stopReason: "length" });
            expect(result.timings.generatedTokens).toBe(0);
            expect(result.timings.promptTokens).toBeGreaterThan(0);
            const stream = ctx.stream({ ...OTHER, maxTokens: 0 });
            const chunks: string[] = [];
            for await (const chunk of stream) chunks.push(chunk.text);
            expect(chunks).toEqual([]);
            expect((await stream.result).stopReason).toBe("length");
            // The context goes on serving requests.
            expect((await ctx.complete({ ...OTHER, maxTokens: 3 })).tokens).toHaveLength(3);
        } finally {
            await ctx.dispose();
        }
    });

    it("the engine's stop reasons are lib/'s StopReason list, and its error codes are LlamaVlmErrorCodes", () => {
        const native = loadNative();
        expect(native.stopReasons).toEqual(STOP_REASONS);
        expect(native.errorCodes.filter((code) => !(ERROR_CODES as readonly string[]).includes(code))).toEqual([]);
    });
});
