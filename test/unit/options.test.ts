// The option tables (lib/options) are the one description of each option: these tests prove that the key lists, the
// native sampling payload, the validation and the CLI flags of `llama-vlm extract` follow from them, so that a new
// scalar sampler option is one table entry (and its use in the native sampler chain).
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerExtract } from "../../lib/cli/extract.js";
import { flagsOf, readOptionFlags } from "../../lib/cli/flags.js";
import { CONTEXT_KEYS, REQUEST_KEYS } from "../../lib/context.js";
import { resolveBudget } from "../../lib/images.js";
import { LlamaVlmError, loadModel, type Model } from "../../lib/index.js";
import { LOAD_KEYS, PROJECTOR_KEYS } from "../../lib/model.js";
import { loadNative } from "../../lib/native.js";
import { CONTEXT_OPTIONS } from "../../lib/options/context.js";
import { LOAD_OPTIONS } from "../../lib/options/load.js";
import { SAMPLING_OPTIONS, SCALAR_SAMPLING_OPTIONS } from "../../lib/options/sampling.js";
import { type Entry, entriesOf, keysOf, resolveOptions, type Table } from "../../lib/options/table.js";
import { resolveSampling, SAMPLING_ALIASES, SAMPLING_KEYS, type SamplingOptions } from "../../lib/sampling.js";
import { vendoredLlamaFile } from "../helpers/models.js";

const native = loadNative();
const CONTEXT = { contextSize: 4096, schemaToGrammar: (s: string) => native.jsonSchemaToGrammar(s) };
const SCALARS = entriesOf(SCALAR_SAMPLING_OPTIONS);
const SPECIALS = entriesOf(SAMPLING_OPTIONS).filter(([, e]) => e.kind === "special");

/** The payload field each special sampling option fills, and the extract flag that gives it (null: none, and why). */
const SPECIAL_SAMPLING: Record<string, { field: string; flag: string | null }> = {
    drySequenceBreakers: { field: "drySequenceBreakers", flag: null }, // a list of strings: not given on the CLI
    logitBias: { field: "logitBias", flag: null }, // token ids depend on the model: not given on the CLI
    grammar: { field: "grammar", flag: "--grammar-file" },
    jsonSchema: { field: "grammar", flag: "--json-schema-file" },
    samplerOrder: { field: "order", flag: "--sampler-order" },
};

/** A valid value of an option that is not its default. */
function otherValue(entry: Entry): unknown {
    const d = entry.default;
    switch (entry.kind) {
        case "boolean":
            return !d;
        case "one-of":
            return entry.values!.find((v) => v !== d);
        case "integer":
            return (d as number) + 1 <= (entry.max ?? Number.POSITIVE_INFINITY) ? (d as number) + 1 : (d as number) - 1;
        default:
            return (d as number) + 0.5 <= (entry.max ?? Number.POSITIVE_INFINITY)
                ? (d as number) + 0.5
                : (d as number) - 0.5;
    }
}

/** What the payload carries for `value` of a scalar option: the value, through the entry's conversion if it has one. */
function payloadValue(entry: Entry, value: unknown): unknown {
    return entry.toNative ? entry.toNative(value, CONTEXT) : value;
}

/** The options `llama-vlm extract` parses from `args` (its action replaced by one that keeps them). */
async function parseExtract(args: string[]): Promise<Record<string, unknown>> {
    const program = new Command("llama-vlm").exitOverride();
    registerExtract(program, { stdout: { write: () => true }, stderr: { write: () => true } });
    let parsed: Record<string, unknown> = {};
    program.commands[0]!.action((_inputs: string[], options: Record<string, unknown>) => {
        parsed = options;
    });
    await program.parseAsync(["extract", "a.png", "-m", "m.gguf", ...args], { from: "user" });
    return parsed;
}

function extractFlags(): Set<string> {
    const program = new Command("llama-vlm");
    registerExtract(program, { stdout: { write: () => true }, stderr: { write: () => true } });
    return new Set(program.commands[0]!.options.map((o) => o.long!));
}

describe("sampling options are derived from the table", () => {
    // DRY needs a vocabulary.
    let vocab: Model;
    beforeAll(async () => {
        vocab = await loadModel({ model: vendoredLlamaFile("models", "ggml-vocab-qwen2.gguf"), vocabOnly: true });
    });
    afterAll(async () => {
        await vocab?.dispose();
    });

    it("every table key is in SAMPLING_KEYS, and every alias in SAMPLING_ALIASES", () => {
        const keys = entriesOf(SAMPLING_OPTIONS).map(([k]) => k);
        expect([...SAMPLING_KEYS]).toEqual(keys);
        expect(SAMPLING_ALIASES).toEqual({ penalizeNl: "penalizeNewline" });
        for (const key of keysOf(SAMPLING_OPTIONS)) expect(REQUEST_KEYS.has(key), key).toBe(true);
    });

    it("every scalar option is in the payload under its own name, with the table's default", () => {
        const payload = resolveSampling({}, CONTEXT) as unknown as Record<string, unknown>;
        for (const [key, entry] of SCALARS) expect(payload[key], key).toEqual(payloadValue(entry, entry.default));
        // The -1 windows are the context size.
        expect(payload.dryPenaltyLastN).toBe(CONTEXT.contextSize);
        expect(payload.drySequenceBreakers).toEqual(SAMPLING_OPTIONS.drySequenceBreakers.default);
        expect(payload.order).toEqual(SAMPLING_OPTIONS.samplerOrder.default);
        expect(payload.logitBias).toEqual([]);
        expect(payload.grammar).toBeUndefined();
    });

    it("every special option fills its payload field", () => {
        expect(SPECIALS.map(([k]) => k).sort()).toEqual(Object.keys(SPECIAL_SAMPLING).sort());
        const given: SamplingOptions = {
            drySequenceBreakers: ["x"],
            logitBias: [[1, -2]],
            grammar: 'root ::= "a"',
            samplerOrder: ["topK", "temperature"],
        };
        const payload = resolveSampling(given, CONTEXT) as unknown as Record<string, unknown>;
        expect(payload[SPECIAL_SAMPLING.drySequenceBreakers!.field]).toEqual(["x"]);
        expect(payload[SPECIAL_SAMPLING.logitBias!.field]).toEqual([1, -2]);
        expect(payload[SPECIAL_SAMPLING.grammar!.field]).toBe('root ::= "a"');
        expect(payload[SPECIAL_SAMPLING.samplerOrder!.field]).toEqual(["topK", "temperature"]);
        const fromSchema = resolveSampling({ jsonSchema: { type: "boolean" } }, CONTEXT) as unknown as Record<
            string,
            unknown
        >;
        expect(fromSchema[SPECIAL_SAMPLING.jsonSchema!.field]).toContain("root");
    });

    it.each(SCALARS)("%s: a value other than the default reaches the payload applySamplers reads", (key, entry) => {
        const value = otherValue(entry);
        expect(value).not.toEqual(entry.default);
        const payload = resolveSampling({ [key]: value }, CONTEXT);
        expect((payload as unknown as Record<string, unknown>)[key]).toEqual(payloadValue(entry, value));
        // The native sampler builder reads the option from the payload (keys it reads are recorded).
        const read = new Set<string | symbol>();
        const watched = new Proxy(payload, {
            get(target, property, receiver) {
                read.add(property);
                return Reflect.get(target, property, receiver);
            },
        });
        const logits = Float32Array.from({ length: vocab.info.vocabSize }, (_, i) => -i / 100);
        native.applySamplers(watched, logits, Int32Array.from([]), false, vocab.native);
        expect(read.has(key), `the native sampler builder did not read "${key}"`).toBe(true);
    });

    it("the native reader takes every payload key as given: a missing one is an error naming it, never a default", () => {
        const payload = resolveSampling({}, CONTEXT) as unknown as Record<string, unknown>;
        const logits = Float32Array.from({ length: vocab.info.vocabSize }, (_, i) => -i / 100);
        const required = Object.keys(payload).filter((k) => k !== "grammar");
        expect(required.length).toBeGreaterThan(SCALARS.length);
        for (const key of required) {
            const { [key]: _, ...without } = payload;
            expect(
                () => native.applySamplers(without as never, logits, Int32Array.from([]), false, vocab.native),
                key,
            ).toThrow(`the sampling payload's "${key}" is not`);
        }
        // Complete, it runs.
        expect(
            native.applySamplers(payload as never, logits, Int32Array.from([]), false, vocab.native).ids.length,
        ).toBeGreaterThan(0);
    });

    it("every scalar option has an extract flag, and the flag's value reaches the payload", async () => {
        const flags = extractFlags();
        const byKey = flagsOf(SAMPLING_OPTIONS);
        const args: string[] = [];
        const expected: Record<string, unknown> = {};
        for (const [key, entry] of SCALARS) {
            expect(byKey[key], `no CLI flag for "${key}"`).toBeDefined();
            for (const flag of byKey[key]!) expect(flags.has(flag), flag).toBe(true);
            const value = otherValue(entry);
            args.push(...(entry.kind === "boolean" ? [byKey[key]![0]!] : [byKey[key]![0]!, String(value)]));
            expected[key] = payloadValue(entry, value);
        }
        const sampling = readOptionFlags(SAMPLING_OPTIONS, await parseExtract(args));
        expect(resolveSampling(sampling, CONTEXT)).toMatchObject(expected);
        for (const [key, { flag }] of Object.entries(SPECIAL_SAMPLING)) {
            if (flag !== null) expect(flags.has(flag), `${key}: ${flag}`).toBe(true);
        }
    });

    it("a hidden alias flag gives its option, and wins over the flag", async () => {
        expect(readOptionFlags(SAMPLING_OPTIONS, await parseExtract(["--temp", "0.3"]))).toEqual({ temperature: 0.3 });
        expect(
            readOptionFlags(CONTEXT_OPTIONS, await parseExtract(["-c", "128", "--n-ctx", "256", "--batch-size", "3"])),
        ).toEqual({ contextSize: 256, parallel: 3 });
        expect(
            readOptionFlags(LOAD_OPTIONS, await parseExtract(["--mmproj", "p.gguf", "--n-gpu-layers", "0"])),
        ).toEqual({
            model: "m.gguf",
            projector: "p.gguf",
            gpuLayers: 0,
        });
    });
});

describe("the other option groups are derived from their tables", () => {
    it("the key lists are the tables' keys, in the order the did-you-mean hints have always searched", () => {
        expect(LOAD_KEYS).toEqual([
            "model",
            "projector",
            "gpuLayers",
            "nGpuLayers",
            "useMmap",
            "useMlock",
            "hugePages",
            "vocabOnly",
            "fitFor",
            "onProgress",
            "signal",
            "projectorOptions",
            "isolation",
            "offline",
            "onDownloadProgress",
        ]);
        expect(PROJECTOR_KEYS).toEqual([
            "useGpu",
            "threads",
            "imageMinTokens",
            "imageMaxTokens",
            "flashAttention",
            "imageCacheBytes",
        ]);
        expect(CONTEXT_KEYS).toEqual([
            "contextSize",
            "nCtx",
            "batchSize",
            "ubatchSize",
            "parallel",
            "threads",
            "threadsBatch",
            "flashAttention",
            "kvCacheType",
            "warmup",
        ]);
    });

    it("the CLI defaults of the context and load flags are the tables'", async () => {
        const parsed = await parseExtract([]);
        expect(readOptionFlags(CONTEXT_OPTIONS, parsed)).toEqual({ contextSize: 4096, parallel: 4 });
        expect(readOptionFlags(LOAD_OPTIONS, parsed)).toEqual({ model: "m.gguf", gpuLayers: -1 });
    });

    const env = { physicalCores: () => 6 };
    function resolve(table: Table, options: object) {
        return resolveOptions(table, options, { given: "nullish", env });
    }
    function message(run: () => unknown): string {
        try {
            run();
        } catch (err) {
            expect(err).toBeInstanceOf(LlamaVlmError);
            expect((err as LlamaVlmError).code).toBe("INVALID_OPTION");
            return (err as Error).message;
        }
        throw new Error("expected an error");
    }

    it("fills defaults, those that depend on the machine or on other options included", () => {
        expect(resolve(CONTEXT_OPTIONS, {})).toEqual({
            contextSize: 4096,
            batchSize: 512,
            ubatchSize: 512,
            parallel: 1,
            threads: 6,
            threadsBatch: 6,
            flashAttention: "auto",
            kvCacheType: "f16",
            warmup: true,
        });
        expect(resolve(CONTEXT_OPTIONS, { threads: 3, nCtx: 64, flashAttention: null })).toMatchObject({
            contextSize: 64,
            threads: 3,
            threadsBatch: 3,
            flashAttention: "auto",
        });
        expect(resolve(LOAD_OPTIONS, { model: "m.gguf" })).toEqual({
            model: "m.gguf",
            gpuLayers: -1,
            useMmap: true,
            useMlock: false,
            hugePages: true,
            vocabOnly: false,
            fitFor: { contextSize: 4096, parallel: 1 },
            projectorOptions: {
                useGpu: true,
                threads: 6,
                imageMinTokens: -1,
                imageMaxTokens: -1,
                flashAttention: "auto",
                imageCacheBytes: 256 * 1024 * 1024,
            },
            isolation: "none",
        });
        expect(resolveBudget()).toEqual({ maxPixels: 4_000_000, overBudget: "downscale", maxInputPixels: 100_000_000 });
    });

    const REFUSED: [group: string, table: Table, options: object, message: string][] = [
        [
            "createContext",
            CONTEXT_OPTIONS,
            { contextSize: 15 },
            'Expected "contextSize" to be an integer between 16 and 2147483647, got 15',
        ],
        [
            "createContext",
            CONTEXT_OPTIONS,
            { contextSize: 512, nCtx: 512 },
            'Give "contextSize" or its alias "nCtx", not both',
        ],
        [
            "createContext",
            CONTEXT_OPTIONS,
            { threads: 513 },
            'Expected "threads" to be an integer between 1 and 512, got 513',
        ],
        [
            "createContext",
            CONTEXT_OPTIONS,
            { flashAttention: "on" },
            'Expected "flashAttention" to be true, false or "auto", got "on"',
        ],
        [
            "createContext",
            CONTEXT_OPTIONS,
            { kvCacheType: "q3_k" },
            'Expected "kvCacheType" to be one of "f32", "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "bf16", got "q3_k"',
        ],
        ["loadModel", LOAD_OPTIONS, {}, 'Expected "model" to be a non-empty string, got undefined'],
        [
            "loadModel",
            LOAD_OPTIONS,
            { model: "m", projector: "" },
            'Expected "projector" to be a non-empty string, got ""',
        ],
        [
            "loadModel",
            LOAD_OPTIONS,
            { model: "m", gpuLayers: "all" },
            'Expected "gpuLayers" to be an integer between -1 and 2147483647',
        ],
        [
            "loadModel",
            LOAD_OPTIONS,
            { model: "m", gpuLayers: 1, nGpuLayers: 1 },
            'Give "gpuLayers" or its alias "nGpuLayers", not both',
        ],
        [
            "loadModel",
            LOAD_OPTIONS,
            { model: "m", fitFor: { parallel: 0 } },
            'Expected "fitFor.parallel" to be an integer between 1',
        ],
        ["loadModel", LOAD_OPTIONS, { model: "m", fitFor: { context: 1 } }, 'Unknown option "context" in fitFor'],
        [
            "loadModel",
            LOAD_OPTIONS,
            { model: "m", onProgress: 1 },
            'Expected "onProgress" to be a function, got number',
        ],
        ["loadModel", LOAD_OPTIONS, { model: "m", signal: {} }, 'Expected "signal" to be an AbortSignal, got object'],
        [
            "loadModel",
            LOAD_OPTIONS,
            { model: "m", isolation: "thread" },
            'Expected "isolation" to be one of "none", "process"',
        ],
        [
            "loadModel",
            LOAD_OPTIONS,
            { model: "m", projectorOptions: { thread: 2 } },
            'in projectorOptions (did you mean "threads"?)',
        ],
        [
            "loadModel",
            LOAD_OPTIONS,
            { model: "m", projectorOptions: { flashAttention: "on" } },
            'Expected "flashAttention" to be true, false or "auto", got on',
        ],
        [
            "loadModel",
            LOAD_OPTIONS,
            { model: "m", projectorOptions: { imageMinTokens: 100, imageMaxTokens: 10 } },
            '"imageMinTokens" (100) is more than "imageMaxTokens" (10)',
        ],
    ];
    it.each(REFUSED)("%s refuses %j", (_, table, options, expected) => {
        expect(message(() => resolve(table, options))).toContain(expected);
    });

    it("an image budget key given as undefined is checked, not defaulted, as before", () => {
        expect(message(() => resolveBudget({ maxPixels: undefined }))).toBe(
            'Expected "maxPixels" to be an integer >= 1, got undefined',
        );
        expect(message(() => resolveBudget({ overBudget: "crop" as "error" }))).toBe(
            'Expected "overBudget" to be one of "downscale", "error", got "crop"',
        );
    });
});
