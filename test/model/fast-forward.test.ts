import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
    type CompletionRequest,
    type CompletionResult,
    type Context,
    LlamaVlmError,
    loadModel,
    type Model,
} from "../../lib/index.js";
import { randomSchema, schemaProblems } from "../../scripts/fuzz-schemas.mjs";
import { sameOrNearTie, tinyPair } from "../helpers/fixtures.js";

let model: Model;
let ctx: Context;
/**
 * Bans every token that is only white space. The synthetic model likes the white space llama.cpp's JSON grammars allow
 * between tokens (up to 22 characters at each place), which makes its outputs several times longer than JSON needs.
 */
let noWhiteSpace: Record<number, number>;

beforeAll(async () => {
    const pair = await tinyPair("qwen2.5-vl");
    model = await loadModel({ model: pair.model, projector: pair.projector });
    ctx = await model.createContext({ contextSize: 2048, parallel: 4 });
    noWhiteSpace = {};
    for (let t = 0; t < model.info.vocabSize; t++) {
        if (/^\s+$/.test(model.detokenize([t], { unparseSpecial: false }))) noWhiteSpace[t] = Number.NEGATIVE_INFINITY;
    }
});
afterAll(async () => {
    await model.dispose();
});

/** Six letters, each followed by a newline: after a letter the newline is the only token the grammar allows. */
const LINES = 'root ::= ([a-z] "\\n"){6}';

function same(slow: CompletionResult, fast: CompletionResult) {
    expect(fast.text).toBe(slow.text);
    expect(fast.tokens).toEqual(slow.tokens);
    expect(fast.probs).toEqual(slow.probs);
    expect(fast.stopReason).toBe(slow.stopReason);
    expect(fast.timings.generatedTokens).toBe(slow.timings.generatedTokens);
}

describe("grammar fast-forward", () => {
    it.each([
        ["greedy", { temperature: 0 }],
        ["temperature 0.7, seeded", { temperature: 0.7, seed: 11 }],
    ])("%s: a token the grammar alone allows is forced exactly as sampling picks it", async (_, sampling) => {
        const request: CompletionRequest = {
            prompt: "Six letters:",
            grammar: LINES,
            maxTokens: 64,
            nProbs: 3,
            repeatPenalty: 1.3,
            penalizeNewline: true,
            ...sampling,
        };
        const slow = await ctx.complete(request);
        const fast = await ctx.complete({ ...request, fastForward: true });
        same(slow, fast);
        expect(slow.text).toMatch(/^([a-z]\n){6}$/);
        expect(slow.timings.forcedTokens).toBe(0);
        // Each of the six newlines was forced, not sampled; with nProbs it has probability 1, as when sampled alone.
        expect(fast.timings.forcedTokens).toBe(6);
        // Twelve tokens: a letter, then its newline.
        expect(fast.tokens).toHaveLength(12);
        for (let i = 1; i < 12; i += 2) expect(fast.probs?.[i]).toEqual([{ token: fast.tokens[i], probability: 1 }]);
    });

    it("forced text runs through the stop strings and maxTokens like sampled text", async () => {
        const grammar = 'root ::= [a-z] " and then the end"';
        const slow = await ctx.complete({ prompt: "Go:", grammar, temperature: 0, stop: ["then"] });
        const fast = await ctx.complete({ prompt: "Go:", grammar, temperature: 0, stop: ["then"], fastForward: true });
        expect(slow.stopReason).toBe("stop");
        expect(fast.stopReason).toBe("stop");
        expect(fast.text).toBe(slow.text);
        expect(fast.text).toMatch(/^[a-z] and $/);
        expect(fast.timings.forcedTokens).toBeGreaterThan(0);

        const cut = await ctx.complete({ prompt: "Go:", grammar, temperature: 0, maxTokens: 3, fastForward: true });
        expect(cut.stopReason).toBe("length");
        expect(cut.timings.generatedTokens).toBe(3);
        expect(cut.timings.forcedTokens).toBe(2);
        expect(cut.tokens).toHaveLength(3);
        expect(`${cut.text[0]} and then the end`.startsWith(cut.text)).toBe(true);
    });

    it("fastForward without a grammar, or not a boolean, is INVALID_OPTION", async () => {
        for (const bad of [{ fastForward: true }, { fastForward: 1, grammar: LINES }]) {
            const error = await ctx.complete({ prompt: "x", ...bad } as CompletionRequest).catch((e: unknown) => e);
            expect(error).toBeInstanceOf(LlamaVlmError);
            expect((error as LlamaVlmError).code).toBe("INVALID_OPTION");
        }
    });

    it.each([
        ["greedy", { temperature: 0 }],
        ["temperature 0.7", { temperature: 0.7 }],
    ])(
        "%s: the outputs of 200 random small schemas validate, and fast-forward forces part of them",
        async (_, sampling) => {
            const schemas = Array.from({ length: 200 }, (_, i) => randomSchema(19, i));
            expect(Object.keys(noWhiteSpace).length).toBeGreaterThan(100);
            const results = await Promise.all(
                schemas.map((jsonSchema, i) =>
                    ctx.complete({
                        prompt: `Answer in JSON (${i}):`,
                        jsonSchema,
                        fastForward: true,
                        maxTokens: 1500,
                        seed: i,
                        logitBias: noWhiteSpace,
                        ...sampling,
                    }),
                ),
            );
            let forced = 0;
            let generated = 0;
            for (const [i, r] of results.entries()) {
                const what = `schema ${i} ${JSON.stringify(schemas[i])}: ${JSON.stringify(r.text)}`;
                expect(r.stopReason, what).toBe("eos");
                expect(schemaProblems(JSON.parse(r.text), schemas[i]!), what).toEqual([]);
                forced += r.timings.forcedTokens;
                generated += r.timings.generatedTokens;
            }
            // Without white space to choose, keys, quotes and separators are mostly forced.
            console.log(`fast-forward forced ${forced} of ${generated} tokens`);
            expect(forced).toBeGreaterThan(generated / 4);
            expect(forced).toBeLessThan(generated);
        },
        600_000,
    );

    it("parallel=4: fast-forward and plain requests together give what each gives alone", async () => {
        const schema = {
            type: "object",
            properties: {
                status: { type: "string", enum: ["active", "inactive", "unknown"] },
                count: { type: "integer", minimum: 0, maximum: 99 },
                note: { type: "string", maxLength: 8 },
            },
            required: ["status", "count", "note"],
            additionalProperties: false,
        };
        const requests: CompletionRequest[] = [
            { prompt: "One:", jsonSchema: schema, fastForward: true, temperature: 0, nProbs: 2 },
            { prompt: "Two:", maxTokens: 24, temperature: 0, nProbs: 2 },
            { prompt: "Three:", jsonSchema: schema, temperature: 0, nProbs: 2 },
            { prompt: "Four:", grammar: LINES, fastForward: true, temperature: 0.7, seed: 3, nProbs: 2 },
        ].map((r) => ({ maxTokens: 600, logitBias: noWhiteSpace, ...r }));
        const alone: CompletionResult[] = [];
        for (const r of requests) alone.push(await ctx.complete(r));
        const together = await Promise.all(requests.map((r) => ctx.complete(r)));
        for (const [i, r] of together.entries()) {
            expect(sameOrNearTie(alone[i]!, r), `request ${i}: ${alone[i]!.text} / ${r.text}`).toBe(true);
            expect(r.timings.forcedTokens > 0, `request ${i}`).toBe(requests[i]!.fastForward === true);
        }
    }, 300_000);
});
