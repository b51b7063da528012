import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaVlmError, loadModel, type Model, setLogger } from "../../lib/index.js";
import { loadNative, type NativeSamplerResult } from "../../lib/native.js";
import { type NativeSampling, resolveSampling, type SamplingOptions } from "../../lib/sampling.js";
import { vendoredLlamaFile } from "../helpers/models.js";
import { restoreTestLogger } from "../setup/logs.js";

// Each test runs the real llama.cpp sampler chain (plus llama-vlm's own samplers) over a fixed logit
// vector and checks the option's defined effect; each would fail if its option were ignored.

const native = loadNative();
const CONTEXT = { contextSize: 4096, schemaToGrammar: (s: string) => native.jsonSchemaToGrammar(s) };

/** Everything off: a chain that changes nothing, so each test turns on exactly one option. */
const NEUTRAL: SamplingOptions = {
    temperature: 1,
    topK: 0,
    topP: 1,
    minP: 0,
    typicalP: 1,
    tfsZ: 1,
    repeatPenalty: 1,
    seed: 42,
};

function run(
    options: SamplingOptions,
    logits: number[] | Float32Array,
    history: number[] = [],
    extra: { select?: boolean; model?: Model } = {},
): NativeSamplerResult {
    const sampling: NativeSampling = resolveSampling({ ...NEUTRAL, ...options }, CONTEXT);
    return native.applySamplers(
        sampling,
        logits instanceof Float32Array ? logits : Float32Array.from(logits),
        Int32Array.from(history),
        extra.select ?? false,
        extra.model?.native ?? null,
    );
}

function logitOf(result: NativeSamplerResult, token: number): number | undefined {
    const i = Array.from(result.ids).indexOf(token);
    return i === -1 ? undefined : result.logits[i];
}

const FLAT = [4, 3, 2, 1, 0, -1, -2, -3];

describe("sampler chain on a known logit vector", () => {
    it("topK keeps the K most likely tokens", () => {
        expect(Array.from(run({ topK: 3 }, FLAT).ids)).toEqual([0, 1, 2]);
        expect(run({ topK: 0 }, FLAT).ids.length).toBe(FLAT.length);
    });

    it("topP keeps the smallest set whose probability mass reaches topP", () => {
        const logits = Array.from([0.5, 0.3, 0.15, 0.05], Math.log);
        expect(Array.from(run({ topP: 0.8 }, logits).ids)).toEqual([0, 1]);
        expect(Array.from(run({ topP: 0.9 }, logits).ids)).toEqual([0, 1, 2]);
    });

    it("minP drops tokens below minP times the top probability", () => {
        const logits = Array.from([0.4, 0.3, 0.15, 0.1, 0.05], Math.log);
        // 0.25 × 0.4 = 0.1: 0.1 stays, 0.05 goes.
        expect(Array.from(run({ minP: 0.25 }, logits).ids)).toEqual([0, 1, 2, 3]);
    });

    it("typicalP removes tokens far from the distribution's entropy", () => {
        const logits = Array.from([0.6, 0.2, 0.1, 0.05, 0.05], Math.log);
        const kept = run({ typicalP: 0.5 }, logits).ids;
        expect(kept.length).toBeLessThan(5);
        expect(kept.length).toBeGreaterThan(0);
    });

    it("tfsZ cuts the tail where the normalised second derivative sums past z", () => {
        const probs = [0.45, 0.25, 0.12, 0.08, 0.05, 0.03, 0.015, 0.01, 0.005];
        const logits = probs.map(Math.log);
        // The definition, worked independently of the implementation under test.
        const p = probs.map((x) => x / probs.reduce((a, b) => a + b, 0));
        const d1 = p.slice(0, -1).map((x, i) => x - p[i + 1]!);
        const d2 = d1.slice(0, -1).map((x, i) => Math.abs(x - d1[i + 1]!));
        const sum = d2.reduce((a, b) => a + b, 0);
        const expectedKept = (z: number) => {
            let cum = 0;
            for (let i = 0; i < d2.length; i++) {
                cum += d2[i]! / sum;
                if (cum > z) return Math.max(i, 1);
            }
            return p.length;
        };
        for (const z of [0.3, 0.5, 0.9]) {
            expect(run({ tfsZ: z }, logits).ids.length).toBe(expectedKept(z));
        }
        expect(run({ tfsZ: 0.5 }, logits).ids.length).toBeLessThan(probs.length);
        expect(run({ tfsZ: 1 }, logits).ids.length).toBe(probs.length);
    });

    it("minKeep keeps at least N candidates in the truncating samplers", () => {
        expect(run({ minP: 0.9 }, FLAT).ids.length).toBe(1);
        expect(run({ minP: 0.9, minKeep: 3 }, FLAT).ids.length).toBe(3);
        expect(run({ topP: 0.1, minKeep: 4 }, FLAT).ids.length).toBe(4);
        expect(run({ tfsZ: 0.01, minKeep: 5 }, FLAT).ids.length).toBeGreaterThanOrEqual(5);
    });

    it("minKeep never brings back candidates an earlier sampler removed (tail-free after top-k)", () => {
        const logits = Array.from({ length: 64 }, (_, i) => -i / 4);
        expect(run({ topK: 3, tfsZ: 0.5, minKeep: 20 }, logits).ids.length).toBe(3);
        expect(run({ topK: 10, tfsZ: 0.5, minKeep: 40 }, logits).ids.length).toBe(10);
    });

    it("temperature flattens or sharpens the distribution; 0 is greedy", () => {
        const cold = run({ temperature: 0.5 }, FLAT).probs[0]!;
        const warm = run({ temperature: 2 }, FLAT).probs[0]!;
        const plain = run({ temperature: 1 }, FLAT).probs[0]!;
        expect(cold).toBeGreaterThan(plain);
        expect(warm).toBeLessThan(plain);
        expect(run({ temperature: 0 }, [1, 5, 2], [], { select: true }).selected).toBe(1);
    });

    it("dynatempRange changes the effective temperature", () => {
        const fixed = run({ temperature: 1 }, FLAT).probs[0]!;
        // Entropy-scaled temperature: with exponent 3 it lands well below 1 for this distribution.
        const dynamic = run({ temperature: 1, dynatempRange: 0.9, dynatempExponent: 3 }, FLAT).probs[0]!;
        expect(dynamic - fixed).toBeGreaterThan(0.05);
    });

    it("repeatPenalty divides a repeated token's positive logit and respects repeatLastN", () => {
        const logits = [4, 4, 4, 4];
        const r = run({ repeatPenalty: 2, repeatLastN: 2 }, logits, [3, 1, 2]);
        expect(logitOf(r, 0)).toBe(4);
        expect(logitOf(r, 3)).toBe(4); // outside the last 2 tokens
        expect(logitOf(r, 1)).toBe(2);
        expect(logitOf(r, 2)).toBe(2);
    });

    it("frequency and presence penalties subtract per occurrence and once", () => {
        const r = run({ frequencyPenalty: 0.5, presencePenalty: 1 }, [4, 4, 4], [1, 1, 1, 2]);
        expect(logitOf(r, 0)).toBe(4);
        expect(logitOf(r, 1)).toBeCloseTo(4 - 3 * 0.5 - 1, 5);
        expect(logitOf(r, 2)).toBeCloseTo(4 - 0.5 - 1, 5);
    });

    it("xtc removes the top choices above the threshold, keeping the least likely of them", () => {
        const logits = Array.from([0.4, 0.3, 0.2, 0.1], Math.log);
        const r = run({ xtcProbability: 1, xtcThreshold: 0.15 }, logits);
        expect(Array.from(r.ids)).toEqual([2, 3]);
    });

    it("topNSigma keeps tokens within n standard deviations of the top logit", () => {
        const kept = run({ topNSigma: 1 }, [10, 9.5, 2, 1, 0, -1]).ids.length;
        expect(kept).toBe(2);
    });

    it("mirostat 2 truncates by surprise and picks a token", () => {
        const logits = Array.from({ length: 50 }, (_, i) => -i * 0.2);
        const r = run({ mirostat: 2, mirostatTau: 1, mirostatEta: 0.1 }, logits, [], { select: true });
        expect(r.ids.length).toBeLessThan(50);
        expect(r.selected).toBeGreaterThanOrEqual(0);
    });

    it("logitBias adds to logits and -Infinity bans a token", () => {
        const r = run({ logitBias: { 0: Number.NEGATIVE_INFINITY, 7: 10 } }, FLAT, [], { select: true });
        expect(Array.from(r.ids)).not.toContain(0);
        expect(r.ids[0]).toBe(7);
        expect(run({ temperature: 0, logitBias: [[7, 10]] }, FLAT, [], { select: true }).selected).toBe(7);
    });

    it("seed makes sampling reproducible", () => {
        const logits = new Float32Array(64).fill(0);
        const draw = (seed: number) => run({ seed }, logits, [], { select: true }).selected;
        expect(draw(1)).toBe(draw(1));
        const picks = new Set([1, 2, 3, 4, 5, 6, 7, 8].map(draw));
        expect(picks.size).toBeGreaterThan(1);
    });

    it("samplerOrder changes the result where order matters", () => {
        // min-p after a high temperature keeps more than min-p before it.
        const afterTemp = run({ temperature: 4, minP: 0.3, samplerOrder: ["temperature", "minP"] }, FLAT).ids.length;
        const beforeTemp = run({ temperature: 4, minP: 0.3, samplerOrder: ["minP", "temperature"] }, FLAT).ids.length;
        expect(afterTemp).toBeGreaterThan(beforeTemp);
        // Leaving a sampler out of the order disables it.
        expect(run({ topK: 1, samplerOrder: ["temperature"] }, FLAT).ids.length).toBe(FLAT.length);
    });
});

describe("samplers that need a vocabulary", () => {
    let vocab: Model;
    let nVocab: number;
    beforeAll(async () => {
        vocab = await loadModel({
            model: vendoredLlamaFile("models", "ggml-vocab-qwen2.gguf"),
            vocabOnly: true,
        });
        nVocab = vocab.info.vocabSize;
    });
    afterAll(async () => {
        await vocab.dispose();
    });

    function ramp(): Float32Array {
        const logits = new Float32Array(nVocab);
        for (let i = 0; i < nVocab; i++) logits[i] = ((i * 7919) % 1000) / 1000;
        return logits;
    }

    it("penalizeNewline false leaves the newline logit alone while repeatPenalty changes the others", () => {
        const newline = vocab.tokenize("\n", { addSpecial: false })[0]!;
        expect(newline).toBe(198);
        const logits = ramp();
        logits[newline] = 2;
        logits[5] = 2;
        const kept = run({ repeatPenalty: 2 }, logits, [newline, 5], { model: vocab });
        expect(logitOf(kept, newline)).toBe(2);
        expect(logitOf(kept, 5)).toBe(1);
        const penalised = run({ repeatPenalty: 2, penalizeNewline: true }, logits, [newline, 5], { model: vocab });
        expect(logitOf(penalised, newline)).toBe(1);
    });

    it("DRY penalises the token that would extend a repeated sequence", () => {
        const [a, b, c] = vocab.tokenize(" alpha beta gamma", { addSpecial: false });
        const logits = ramp();
        logits[c!] = 3;
        const history = [a!, b!, c!, a!, b!];
        const off = run({}, logits, history, { model: vocab });
        const on = run({ dryMultiplier: 1, dryAllowedLength: 1 }, logits, history, { model: vocab });
        expect(logitOf(off, c!)).toBe(3);
        expect(logitOf(on, c!)).toBeLessThan(3);
    });

    it("a GBNF grammar keeps only tokens the grammar allows", () => {
        const r = run({ grammar: 'root ::= "yes" | "no"' }, ramp(), [], { model: vocab });
        const pieces = Array.from(r.ids, (id) => vocab.detokenize([id]));
        expect(pieces.length).toBeGreaterThan(0);
        for (const piece of pieces) expect("yes".startsWith(piece) || "no".startsWith(piece)).toBe(true);
    });

    it("jsonSchema becomes a grammar that keeps exactly the tokens that can start a JSON object of the schema", () => {
        const r = run({ jsonSchema: { type: "object", properties: { a: { type: "string" } } } }, ramp(), [], {
            model: vocab,
        });
        // The converter's grammar for this schema:
        //   root ::= "{" space (a-kv)? space "}"       a-kv ::= "\"a\"" space ":" space string
        //   space ::= | " " | "\n"{1,2} [ \t]{0,20}     string ::= "\"" char* "\""
        //   char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
        // A first token may be any non-empty text that some sentence of it starts with: this regular expression
        // (each group holds what may follow once the text before it is complete).
        const space = "(?: |\\n{1,2}[ \\t]{0,20})?";
        const char = '(?:[^"\\\\\\x00-\\x1F\\x7F]|\\\\(?:["\\\\bfnrt]|u[0-9a-fA-F]{4}))';
        const cutChar = "\\\\(?:u[0-9a-fA-F]{0,3})?";
        const kv = `"(?:a(?:"(?:${space}(?::(?:${space}(?:"(?:${char}*(?:${cutChar}|"(?:${space}\\}?)?)?)?)?)?)?)?)?)?`;
        const start = new RegExp(`^\\{(?:${space}(?:${kv}|${space}\\}?))?$`);
        const expected: number[] = [];
        for (let id = 0; id < nVocab; id++) {
            const piece = vocab.detokenize([id]);
            if (piece.length > 0 && start.test(piece)) expected.push(id);
        }
        const brace = vocab.tokenize("{", { addSpecial: false });
        expect(brace).toHaveLength(1);
        expect(expected).toContain(brace[0]);
        // The oracle itself: what it takes and what it refuses.
        for (const piece of ["{", '{"', '{"a":', '{ "a": "x', "{}", "{\n", "{\n\n\n }"])
            expect(start.test(piece), piece).toBe(true);
        for (const piece of [" {", "[", "}", '"', "a", "{{", "{'", '{"b', "{\r\n", "{\t", "{}}", "{\n\n\n\n\n"]) {
            expect(start.test(piece), piece).toBe(false);
        }
        // Kept: the first token of every object the schema allows, and nothing else (sorted by id to compare).
        const kept = Array.from(r.ids).sort((a, b) => a - b);
        expect(kept.length).toBeGreaterThan(0);
        expect(kept.map((id) => vocab.detokenize([id]))).toEqual(expected.map((id) => vocab.detokenize([id])));
        expect(kept).toEqual(expected);
    });

    it("a grammar that does not parse is an INVALID_OPTION error, and llama.cpp's reason reaches the logger", async () => {
        const lines: string[] = [];
        const logged = new Promise<void>((resolve) => {
            setLogger((_level, line) => {
                lines.push(line);
                if (/failed to parse grammar/.test(line)) resolve(); // logged after the parser's own line
            }, "error");
        });
        try {
            expect(() => run({ grammar: "root ::= (" }, ramp(), [], { model: vocab })).toThrow(
                "the grammar does not parse as GBNF: expecting ')' at the end of the grammar",
            );
            await logged;
            expect(lines.some((l) => /error parsing grammar: expecting '\)'/.test(l))).toBe(true);
            expect(lines.some((l) => /failed to parse grammar/.test(l))).toBe(true);
        } finally {
            restoreTestLogger();
        }
    });
});

describe("sampling option validation", () => {
    it.each([
        [{ topK: -3 }, 'Expected "topK" to be an integer >= 0, got -3'],
        [{ topP: 1.5 }, 'Expected "topP" to be a number between 0 and 1, got 1.5'],
        [{ temperature: Number.NaN }, 'Expected "temperature" to be a number >= 0, got NaN'],
        [{ minP: Number.POSITIVE_INFINITY }, '"minP"'],
        [{ repeatPenalty: 0 }, '"repeatPenalty"'],
        [{ mirostat: 3 as 2 }, 'Expected "mirostat" to be one of 0, 1, 2, got 3'],
        [{ samplerOrder: ["topK", "nope"] as never }, '"samplerOrder[1]"'],
        [{ samplerOrder: ["topK", "topK"] }, "named only once"],
        [{ logitBias: { 1: Number.POSITIVE_INFINITY } }, "-Infinity"],
        [{ grammar: "x", jsonSchema: {} }, "not both"],
        [{ seed: -1 }, '"seed"'],
    ] as Array<[SamplingOptions, string]>)("rejects %j", (options, message) => {
        let error: unknown;
        try {
            resolveSampling(options, CONTEXT);
        } catch (err) {
            error = err;
        }
        expect(error).toBeInstanceOf(LlamaVlmError);
        expect((error as LlamaVlmError).code).toBe("INVALID_OPTION");
        expect((error as Error).message).toContain(message);
    });

    it("expresses the reference pipeline's settings one to one", () => {
        const s = resolveSampling(
            {
                minKeep: 0,
                minP: 0.05,
                repeatLastN: 256,
                repeatPenalty: 1.18,
                penalizeNewline: false,
                temperature: 0.05,
                tfsZ: 1,
                typicalP: 1,
                topK: 40,
                topP: 0.95,
            },
            CONTEXT,
        );
        expect(s).toMatchObject({
            minKeep: 0,
            minP: 0.05,
            repeatLastN: 256,
            repeatPenalty: 1.18,
            penalizeNewline: false,
            temperature: 0.05,
            tfsZ: 1,
            typicalP: 1,
            topK: 40,
            topP: 0.95,
        });
        expect(resolveSampling({ repeatLastN: -1 }, CONTEXT).repeatLastN).toBe(4096);
    });
});
