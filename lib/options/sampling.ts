/**
 * The sampling options, described once. `SamplingOptions`, `SAMPLING_KEYS`, the native payload's scalar fields
 * (`SamplingPayload`), the validation (lib/sampling.ts `resolveSampling`) and the flags of `llama-vlm extract` are
 * derived from `SAMPLING_OPTIONS`.
 *
 * A new scalar sampler option is one entry here (its JSDoc, kind, default, range, CLI flag) and its use in the native
 * sampler chain, which reads it from the payload under the option's name.
 * @internal
 */
import { INT32_MAX, invalid } from "../validate.js";
import {
    alias,
    aliasesOf,
    boolean,
    entriesOf,
    float32,
    integer,
    type OptionsWithoutAliasesOf,
    oneOf,
    type PayloadContext,
    type ResolvedOf,
    special,
} from "./table.js";

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

/**
 * The native sampler takes these counts as int32. Past INT32_MAX they mean what INT32_MAX means (more than any
 * vocabulary or context holds), so they are clamped rather than left to wrap around.
 */
const clampInt32 = (n: number): number => Math.min(n, INT32_MAX);

/**
 * No sequence holds more than contextSize tokens, so a longer window means the same; the native samplers allocate their
 * window up front (2^31 tokens would be 8 GiB). -1 is the whole context.
 */
const contextWindow = (n: number, ctx: PayloadContext): number =>
    n === -1 || n > ctx.contextSize ? ctx.contextSize : n;

/**
 * Every sampling option, in the order they are validated (and their CLI flags listed). Each key's JSDoc is the public
 * documentation of the option. Defaults are llama.cpp's (common_params_sampling) unless noted.
 */
export const SAMPLING_OPTIONS = {
    /** Softmax temperature; 0 picks the most likely token (greedy). Default 0.8. */
    temperature: float32({
        default: 0.8,
        min: 0,
        cli: { flag: "--temperature <t>", help: "temperature; 0 = greedy (alias --temp)", hidden: ["--temp <t>"] },
    }),
    /** Dynamic temperature: range around `temperature` (0 = off). Default 0. */
    dynatempRange: float32({
        default: 0,
        min: 0,
        cli: { flag: "--dynatemp-range <r>", help: "dynamic temperature range" },
    }),
    /** Dynamic temperature exponent. Default 1. */
    dynatempExponent: float32({
        default: 1,
        min: 0,
        cli: { flag: "--dynatemp-exponent <e>", help: "dynamic temperature exponent" },
    }),
    /** Keep the K most likely tokens (0 = off). Default 40. */
    topK: integer({
        default: 40,
        min: 0,
        toNative: clampInt32,
        cli: { flag: "--top-k <k>", help: "top-k (0 = off)" },
    }),
    /** Nucleus sampling: keep the smallest set with probability mass >= topP (1 = off). Default 0.95. */
    topP: float32({ default: 0.95, min: 0, max: 1, cli: { flag: "--top-p <p>", help: "top-p (1 = off)" } }),
    /** Drop tokens whose probability is below minP × the top token's (0 = off). Default 0.05. */
    minP: float32({ default: 0.05, min: 0, max: 1, cli: { flag: "--min-p <p>", help: "min-p (0 = off)" } }),
    /** Locally typical sampling (1 = off). Default 1. */
    typicalP: float32({
        default: 1,
        min: 0,
        max: 1,
        cli: { flag: "--typical-p <p>", help: "locally typical sampling (1 = off)" },
    }),
    /** Tail-free sampling z (1 = off). Removed from llama.cpp; implemented here. Default 1. */
    tfsZ: float32({ default: 1, min: 0, max: 1, cli: { flag: "--tfs-z <z>", help: "tail-free sampling (1 = off)" } }),
    /** Truncating samplers keep at least this many candidates. Default 0. */
    minKeep: integer({
        default: 0,
        min: 0,
        // Keeping more candidates than the vocabulary has means keeping them all; the native tail-free sampler would
        // otherwise set the candidate count to minKeep and read past the end of the candidate array.
        toNative: (n: number, ctx: PayloadContext) =>
            ctx.vocabSize === undefined ? clampInt32(n) : Math.min(clampInt32(n), ctx.vocabSize),
        cli: { flag: "--min-keep <n>", help: "keep at least n candidates" },
    }),
    /** Penalty for repeated tokens (1 = off). Default 1. */
    repeatPenalty: float32({
        default: 1,
        min: 0,
        refine(name: string, value: number) {
            if (value === 0) throw invalid(name, "a number > 0 (1 = off)", 0);
        },
        cli: { flag: "--repeat-penalty <p>", help: "repeat penalty (1 = off)" },
    }),
    /** How many recent tokens the penalties look at (0 = off, -1 = the context size). Default 64. */
    repeatLastN: integer({
        default: 64,
        min: -1,
        toNative: contextWindow,
        cli: { flag: "--repeat-last-n <n>", help: "tokens the penalties look at (-1 = context)" },
    }),
    /** Frequency penalty (0 = off). Default 0. */
    frequencyPenalty: float32({ default: 0, cli: { flag: "--frequency-penalty <p>", help: "frequency penalty" } }),
    /** Presence penalty (0 = off). Default 0. */
    presencePenalty: float32({ default: 0, cli: { flag: "--presence-penalty <p>", help: "presence penalty" } }),
    /** Whether the penalties apply to the newline token. Default false (the reference pipeline's penalize_nl). */
    penalizeNewline: boolean({
        default: false,
        cli: { flag: "--penalize-nl", help: "apply the penalties to the newline token too" },
    }),
    /** DRY multiplier (0 = off). Default 0. */
    dryMultiplier: float32({
        default: 0,
        min: 0,
        cli: { flag: "--dry-multiplier <m>", help: "DRY multiplier (0 = off)" },
    }),
    /** DRY base. Default 1.75. */
    dryBase: float32({ default: 1.75, min: 1, cli: { flag: "--dry-base <b>", help: "DRY base" } }),
    /** DRY: repeated sequences longer than this are penalised. Default 2. */
    dryAllowedLength: integer({
        default: 2,
        min: 0,
        toNative: clampInt32,
        cli: { flag: "--dry-allowed-length <n>", help: "DRY allowed length" },
    }),
    /** DRY: how many recent tokens to scan (0 = off, -1 = the context size). Default -1. */
    dryPenaltyLastN: integer({
        default: -1,
        min: -1,
        toNative: contextWindow,
        cli: { flag: "--dry-penalty-last-n <n>", help: "DRY window" },
    }),
    /** DRY sequence breakers. Default ["\n", ":", "\"", "*"]. */
    drySequenceBreakers: special<string[]>({ default: ["\n", ":", '"', "*"] }),
    /** XTC: probability of removing the top choices (0 = off). Default 0. */
    xtcProbability: float32({
        default: 0,
        min: 0,
        max: 1,
        cli: { flag: "--xtc-probability <p>", help: "XTC probability" },
    }),
    /** XTC threshold. Default 0.1. */
    xtcThreshold: float32({
        default: 0.1,
        min: 0,
        max: 1,
        cli: { flag: "--xtc-threshold <t>", help: "XTC threshold" },
    }),
    /** Top-nσ: keep tokens within n standard deviations of the top logit (<= 0 = off). Default -1. */
    topNSigma: float32({ default: -1, cli: { flag: "--top-n-sigma <n>", help: "top-n-sigma (<= 0 = off)" } }),
    /** Mirostat version (0 = off, 1, 2). Replaces the truncating samplers. Default 0. */
    mirostat: oneOf([0, 1, 2], { default: 0, cli: { flag: "--mirostat <v>", help: "mirostat version (0, 1, 2)" } }),
    /** Mirostat target surprise. Default 5. */
    mirostatTau: float32({ default: 5, min: 0, cli: { flag: "--mirostat-tau <t>", help: "mirostat target surprise" } }),
    /** Mirostat learning rate. Default 0.1. */
    mirostatEta: float32({ default: 0.1, min: 0, cli: { flag: "--mirostat-eta <e>", help: "mirostat learning rate" } }),
    /** Added to a token's logit before sampling; -Infinity bans it. Keys are token ids. */
    logitBias: special<Record<number, number> | ReadonlyArray<readonly [number, number]>>({}),
    /** GBNF grammar the output must follow (root rule "root"). */
    grammar: special<string>({}),
    /** A JSON schema the output must follow (converted to a grammar by llama.cpp's converter). */
    jsonSchema: special<object>({}),
    /** Random seed; the same seed and input give the same output. Default: random. */
    seed: integer({ default: 0xffffffff, min: 0, max: 0xffffffff, cli: { flag: "--seed <n>", help: "random seed" } }),
    /** Order of the samplers (names from SAMPLER_NAMES); unnamed ones are left out. Default: DEFAULT_SAMPLER_ORDER. */
    samplerOrder: special<SamplerName[]>({ default: [...DEFAULT_SAMPLER_ORDER] }),
    /** Alias of `penalizeNewline` (the reference pipeline's name). */
    penalizeNl: alias("penalizeNewline"),
};

/** Every sampling option. Defaults are llama.cpp's (common_params_sampling) unless noted. */
export interface SamplingOptions extends OptionsWithoutAliasesOf<typeof SAMPLING_OPTIONS> {}

/** The sampling options, aliases left out (they are request options: see SAMPLING_ALIASES). */
export const SAMPLING_KEYS: readonly (keyof SamplingOptions)[] = entriesOf(SAMPLING_OPTIONS).map(
    ([k]) => k as keyof SamplingOptions,
);

/** The reference pipeline's option names, accepted as aliases of llama-vlm's. */
export const SAMPLING_ALIASES = aliasesOf(SAMPLING_OPTIONS) as Readonly<Record<string, keyof SamplingOptions>>;

type Scalars = {
    [K in keyof typeof SAMPLING_OPTIONS as (typeof SAMPLING_OPTIONS)[K]["kind"] extends "special" | "alias"
        ? never
        : K]: (typeof SAMPLING_OPTIONS)[K];
};

/**
 * The scalar options (every kind but "special"): the payload carries each under its own name, validated and converted
 * by the table alone. The special ones are validated and converted by `resolveSampling`.
 */
export const SCALAR_SAMPLING_OPTIONS = Object.fromEntries(
    entriesOf(SAMPLING_OPTIONS).filter(([, e]) => e.kind !== "special"),
) as Scalars;

/**
 * What `resolveSampling` gives the native sampler: every scalar option under its own name, validated and converted,
 * and the special options' fields. Assignable to the backend's `NativeSampling`.
 */
export type SamplingPayload = ResolvedOf<Scalars> & {
    drySequenceBreakers: string[];
    /** [token, bias, token, bias, …]. */
    logitBias: number[];
    /** From `grammar` or `jsonSchema`. */
    grammar?: string;
    /** From `samplerOrder`. */
    order: string[];
};
