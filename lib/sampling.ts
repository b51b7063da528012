import type { NativeSampling } from "./backend/types.js";
import { LlamaVlmError } from "./errors.js";
import { checkBoolean, checkNumber, checkObject, checkOneOf, checkString, INT32_MAX, invalid } from "./validate.js";

export type { NativeSampling };

/** Names of the samplers whose order `samplerOrder` sets. The token picker (greedy, dist, mirostat) is always last. */
export const SAMPLER_NAMES = [
    "penalties",
    "dry",
    "topNSigma",
    "topK",
    "tfsZ",
    "typicalP",
    "topP",
    "minP",
    "xtc",
    "temperature",
] as const;
export type SamplerName = (typeof SAMPLER_NAMES)[number];

/** llama.cpp's default order, with tail-free sampling where llama.cpp had it (after top-k). */
export const DEFAULT_SAMPLER_ORDER: readonly SamplerName[] = SAMPLER_NAMES;

/** Every sampling option. Defaults are llama.cpp's (common_params_sampling) unless noted. */
export interface SamplingOptions {
    /** Softmax temperature; 0 picks the most likely token (greedy). Default 0.8. */
    temperature?: number;
    /** Dynamic temperature: range around `temperature` (0 = off). Default 0. */
    dynatempRange?: number;
    /** Dynamic temperature exponent. Default 1. */
    dynatempExponent?: number;
    /** Keep the K most likely tokens (0 = off). Default 40. */
    topK?: number;
    /** Nucleus sampling: keep the smallest set with probability mass >= topP (1 = off). Default 0.95. */
    topP?: number;
    /** Drop tokens whose probability is below minP × the top token's (0 = off). Default 0.05. */
    minP?: number;
    /** Locally typical sampling (1 = off). Default 1. */
    typicalP?: number;
    /** Tail-free sampling z (1 = off). Removed from llama.cpp; implemented here. Default 1. */
    tfsZ?: number;
    /** Truncating samplers keep at least this many candidates. Default 0. */
    minKeep?: number;
    /** Penalty for repeated tokens (1 = off). Default 1. */
    repeatPenalty?: number;
    /** How many recent tokens the penalties look at (0 = off, -1 = the context size). Default 64. */
    repeatLastN?: number;
    /** Frequency penalty (0 = off). Default 0. */
    frequencyPenalty?: number;
    /** Presence penalty (0 = off). Default 0. */
    presencePenalty?: number;
    /** Whether the penalties apply to the newline token. Default false (the reference pipeline's penalize_nl). */
    penalizeNewline?: boolean;
    /** DRY multiplier (0 = off). Default 0. */
    dryMultiplier?: number;
    /** DRY base. Default 1.75. */
    dryBase?: number;
    /** DRY: repeated sequences longer than this are penalised. Default 2. */
    dryAllowedLength?: number;
    /** DRY: how many recent tokens to scan (0 = off, -1 = the context size). Default -1. */
    dryPenaltyLastN?: number;
    /** DRY sequence breakers. Default ["\n", ":", "\"", "*"]. */
    drySequenceBreakers?: string[];
    /** XTC: probability of removing the top choices (0 = off). Default 0. */
    xtcProbability?: number;
    /** XTC threshold. Default 0.1. */
    xtcThreshold?: number;
    /** Top-nσ: keep tokens within n standard deviations of the top logit (<= 0 = off). Default -1. */
    topNSigma?: number;
    /** Mirostat version (0 = off, 1, 2). Replaces the truncating samplers. Default 0. */
    mirostat?: 0 | 1 | 2;
    /** Mirostat target surprise. Default 5. */
    mirostatTau?: number;
    /** Mirostat learning rate. Default 0.1. */
    mirostatEta?: number;
    /** Added to a token's logit before sampling; -Infinity bans it. Keys are token ids. */
    logitBias?: Record<number, number> | ReadonlyArray<readonly [number, number]>;
    /** GBNF grammar the output must follow (root rule "root"). */
    grammar?: string;
    /** A JSON schema the output must follow (converted to a grammar by llama.cpp's converter). */
    jsonSchema?: object;
    /** Random seed; the same seed and input give the same output. Default: random. */
    seed?: number;
    /** Order of the samplers (names from SAMPLER_NAMES); unnamed ones are left out. */
    samplerOrder?: SamplerName[];
}

/** The reference pipeline's option names, accepted as aliases of llama-vlm's. */
export const SAMPLING_ALIASES: Readonly<Record<string, keyof SamplingOptions>> = {
    penalizeNl: "penalizeNewline",
};

const DEFAULTS = {
    temperature: 0.8,
    dynatempRange: 0,
    dynatempExponent: 1,
    topK: 40,
    topP: 0.95,
    minP: 0.05,
    typicalP: 1,
    tfsZ: 1,
    minKeep: 0,
    repeatPenalty: 1,
    repeatLastN: 64,
    frequencyPenalty: 0,
    presencePenalty: 0,
    penalizeNewline: false,
    dryMultiplier: 0,
    dryBase: 1.75,
    dryAllowedLength: 2,
    dryPenaltyLastN: -1,
    drySequenceBreakers: ["\n", ":", '"', "*"],
    xtcProbability: 0,
    xtcThreshold: 0.1,
    topNSigma: -1,
    mirostat: 0,
    mirostatTau: 5,
    mirostatEta: 0.1,
} as const;

export const SAMPLING_KEYS: readonly (keyof SamplingOptions)[] = [
    ...(Object.keys(DEFAULTS) as (keyof SamplingOptions)[]),
    "logitBias",
    "grammar",
    "jsonSchema",
    "seed",
    "samplerOrder",
];

/** The native sampler takes its real-valued options as float32: a larger magnitude would become ±Infinity there. */
const FLOAT32_MAX = 3.4028234663852886e38;

const FLOAT_KEYS = [
    "temperature",
    "dynatempRange",
    "dynatempExponent",
    "topP",
    "minP",
    "typicalP",
    "tfsZ",
    "repeatPenalty",
    "frequencyPenalty",
    "presencePenalty",
    "dryMultiplier",
    "dryBase",
    "xtcProbability",
    "xtcThreshold",
    "topNSigma",
    "mirostatTau",
    "mirostatEta",
] as const satisfies readonly (keyof NativeSampling)[];

/**
 * llama.cpp parses GBNF and expands its rules recursively, on the calling thread's stack: nesting and rule
 * counts far past these (about 15,000 parentheses or 60,000 chained rules on an 8 MiB stack) overflow it and
 * crash the process. The limits leave room for smaller thread stacks (worker threads get 4 MiB).
 */
const GRAMMAR_MAX_NESTING = 1000;
const GRAMMAR_MAX_RULES = 10_000;

function checkGrammar(name: string, grammar: string): string {
    let depth = 0;
    let deepest = 0;
    let rules = 0;
    for (let i = 0; i < grammar.length; i++) {
        const c = grammar[i];
        if (c === '"' || c === "[") {
            const end = c === '"' ? '"' : "]";
            for (i++; i < grammar.length && grammar[i] !== end; i++) if (grammar[i] === "\\") i++;
        } else if (c === "#") {
            while (i < grammar.length && grammar[i] !== "\n") i++;
        } else if (c === "(") {
            deepest = Math.max(deepest, ++depth);
        } else if (c === ")") {
            depth = Math.max(0, depth - 1);
        } else if (c === ":" && grammar.startsWith("::=", i)) {
            rules++;
        }
    }
    if (deepest > GRAMMAR_MAX_NESTING) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `"${name}" gives a grammar that nests parentheses ${deepest} deep; at most ${GRAMMAR_MAX_NESTING} are allowed`,
        );
    }
    if (rules > GRAMMAR_MAX_RULES) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `"${name}" gives a grammar of ${rules} rules; at most ${GRAMMAR_MAX_RULES} are allowed`,
        );
    }
    return grammar;
}

/**
 * The native sampler takes these counts as int32. Past INT32_MAX they mean what INT32_MAX means (more than any
 * vocabulary or context holds), so they are clamped rather than left to wrap around.
 */
function clampInt32(n: number): number {
    return Math.min(n, INT32_MAX);
}

function logitBiasPairs(value: unknown): number[] {
    const entries: Array<[unknown, unknown]> = Array.isArray(value)
        ? value.map((pair, i) => {
              if (!Array.isArray(pair) || pair.length !== 2)
                  throw invalid(`logitBias[${i}]`, "a [token, bias] pair", pair);
              return [pair[0], pair[1]] as [unknown, unknown];
          })
        : Object.entries(checkObject("logitBias", value)).map(([k, v]) => [Number(k), v] as [unknown, unknown]);
    const flat: number[] = [];
    for (const [token, bias] of entries) {
        checkNumber("logitBias token", token, { integer: true, min: 0, max: INT32_MAX });
        if (typeof bias !== "number" || !(bias === Number.NEGATIVE_INFINITY || Math.abs(bias) <= FLOAT32_MAX)) {
            throw invalid(`logitBias[${String(token)}]`, `-Infinity or a number of magnitude <= ${FLOAT32_MAX}`, bias);
        }
        flat.push(token as number, bias);
    }
    return flat;
}

/**
 * Validates sampling options and fills defaults. `contextSize` resolves the -1 ("whole context")
 * settings; `schemaToGrammar` converts a JSON schema. @internal
 */
export function resolveSampling(
    options: SamplingOptions,
    ctx: { contextSize: number; vocabSize?: number; schemaToGrammar: (schema: string) => string },
): NativeSampling {
    const o = { ...DEFAULTS, ...options };
    const out: NativeSampling = {
        temperature: checkNumber("temperature", o.temperature, { min: 0 }),
        dynatempRange: checkNumber("dynatempRange", o.dynatempRange, { min: 0 }),
        dynatempExponent: checkNumber("dynatempExponent", o.dynatempExponent, { min: 0 }),
        topK: clampInt32(checkNumber("topK", o.topK, { integer: true, min: 0 })),
        topP: checkNumber("topP", o.topP, { min: 0, max: 1 }),
        minP: checkNumber("minP", o.minP, { min: 0, max: 1 }),
        typicalP: checkNumber("typicalP", o.typicalP, { min: 0, max: 1 }),
        tfsZ: checkNumber("tfsZ", o.tfsZ, { min: 0, max: 1 }),
        minKeep: clampInt32(checkNumber("minKeep", o.minKeep, { integer: true, min: 0 })),
        repeatPenalty: checkNumber("repeatPenalty", o.repeatPenalty, { min: 0 }),
        repeatLastN: checkNumber("repeatLastN", o.repeatLastN, { integer: true, min: -1 }),
        frequencyPenalty: checkNumber("frequencyPenalty", o.frequencyPenalty),
        presencePenalty: checkNumber("presencePenalty", o.presencePenalty),
        penalizeNewline: checkBoolean("penalizeNewline", o.penalizeNewline),
        dryMultiplier: checkNumber("dryMultiplier", o.dryMultiplier, { min: 0 }),
        dryBase: checkNumber("dryBase", o.dryBase, { min: 1 }),
        dryAllowedLength: clampInt32(checkNumber("dryAllowedLength", o.dryAllowedLength, { integer: true, min: 0 })),
        dryPenaltyLastN: checkNumber("dryPenaltyLastN", o.dryPenaltyLastN, { integer: true, min: -1 }),
        drySequenceBreakers: [],
        xtcProbability: checkNumber("xtcProbability", o.xtcProbability, { min: 0, max: 1 }),
        xtcThreshold: checkNumber("xtcThreshold", o.xtcThreshold, { min: 0, max: 1 }),
        topNSigma: checkNumber("topNSigma", o.topNSigma),
        mirostat: checkOneOf("mirostat", o.mirostat, [0, 1, 2] as const),
        mirostatTau: checkNumber("mirostatTau", o.mirostatTau, { min: 0 }),
        mirostatEta: checkNumber("mirostatEta", o.mirostatEta, { min: 0 }),
        logitBias: o.logitBias === undefined ? [] : logitBiasPairs(o.logitBias),
        seed: 0xffffffff,
        order: [...DEFAULT_SAMPLER_ORDER],
    };
    if (out.repeatPenalty === 0) throw invalid("repeatPenalty", "a number > 0 (1 = off)", 0);
    for (const key of FLOAT_KEYS) {
        if (Math.abs(out[key]) > FLOAT32_MAX) throw invalid(key, `a number of magnitude <= ${FLOAT32_MAX}`, out[key]);
    }
    // No sequence holds more than contextSize tokens, so a longer window means the same; the native samplers
    // allocate their window up front (2^31 tokens would be 8 GiB).
    if (out.repeatLastN === -1 || out.repeatLastN > ctx.contextSize) out.repeatLastN = ctx.contextSize;
    if (out.dryPenaltyLastN === -1 || out.dryPenaltyLastN > ctx.contextSize) out.dryPenaltyLastN = ctx.contextSize;
    if (!Array.isArray(o.drySequenceBreakers))
        throw invalid("drySequenceBreakers", "an array of strings", o.drySequenceBreakers);
    out.drySequenceBreakers = o.drySequenceBreakers.map((b, i) => checkString(`drySequenceBreakers[${i}]`, b));
    if (ctx.vocabSize !== undefined) {
        // Keeping more candidates than the vocabulary has means keeping them all; the native tail-free sampler
        // would otherwise set the candidate count to minKeep and read past the end of the candidate array.
        out.minKeep = Math.min(out.minKeep, ctx.vocabSize);
        for (let i = 0; i < out.logitBias.length; i += 2) {
            if (out.logitBias[i]! >= ctx.vocabSize) {
                throw invalid(
                    "logitBias token",
                    `a token id below the vocabulary size ${ctx.vocabSize}`,
                    out.logitBias[i],
                );
            }
        }
        const banned = new Set<number>();
        for (let i = 0; i < out.logitBias.length; i += 2) {
            if (out.logitBias[i + 1] === Number.NEGATIVE_INFINITY) banned.add(out.logitBias[i]!);
        }
        if (banned.size >= ctx.vocabSize) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `"logitBias" bans all ${ctx.vocabSize} tokens of the vocabulary: no token could be sampled`,
            );
        }
    }
    if (options.seed !== undefined)
        out.seed = checkNumber("seed", options.seed, { integer: true, min: 0, max: 0xffffffff });
    if (options.grammar !== undefined && options.jsonSchema !== undefined) {
        throw new LlamaVlmError("INVALID_OPTION", 'Give either "grammar" or "jsonSchema", not both');
    }
    if (options.grammar !== undefined)
        out.grammar = checkGrammar("grammar", checkString("grammar", options.grammar, { nonEmpty: true }));
    if (options.jsonSchema !== undefined) {
        const schema = checkObject("jsonSchema", options.jsonSchema);
        let grammar: string;
        try {
            grammar = ctx.schemaToGrammar(JSON.stringify(schema));
        } catch (err) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `"jsonSchema" could not be converted to a grammar: ${(err as Error).message}`,
                {
                    cause: err,
                },
            );
        }
        out.grammar = checkGrammar("jsonSchema", grammar);
    }
    if (options.samplerOrder !== undefined) {
        if (!Array.isArray(options.samplerOrder))
            throw invalid("samplerOrder", "an array of sampler names", options.samplerOrder);
        const seen = new Set<string>();
        out.order = options.samplerOrder.map((name, i) => {
            checkOneOf(`samplerOrder[${i}]`, name, SAMPLER_NAMES);
            if (seen.has(name)) throw invalid(`samplerOrder[${i}]`, "a sampler named only once", name);
            seen.add(name);
            return name;
        });
    }
    return out;
}
