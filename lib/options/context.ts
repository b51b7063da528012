/**
 * The createContext options, described once: `ContextOptions`, `CONTEXT_KEYS`, the validation at the start of
 * `Context.create` and the context flags of `llama-vlm extract` are derived from `CONTEXT_OPTIONS`.
 * @internal
 */
import { INT32_MAX, invalid, MAX_THREADS } from "../validate.js";
import { alias, boolean, integer, keysOf, type OptionsOf, oneOf, special } from "./table.js";

/** KV cache element types. */
export type KvCacheType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_1" | "iq4_nl" | "q5_0" | "q5_1";

/** ggml's type ids of the KV cache types (what the native context takes as typeK/typeV). */
export const KV_TYPES: Record<KvCacheType, number> = {
    f32: 0,
    f16: 1,
    q4_0: 2,
    q4_1: 3,
    q5_0: 6,
    q5_1: 7,
    q8_0: 8,
    iq4_nl: 20,
    bf16: 30,
};

/** llama.cpp's flash attention setting: -1 auto, 1 on, 0 off. */
export function flashAttentionParam(value: boolean | "auto"): number {
    return value === "auto" ? -1 : value ? 1 : 0;
}

export const CONTEXT_OPTIONS = {
    /** Tokens each sequence can hold (prompt + image tokens + output). Alias: nCtx. Default 4096. */
    contextSize: integer({
        default: 4096,
        min: 16,
        max: INT32_MAX,
        cli: {
            flag: "-c, --ctx-size <n>",
            help: "context per image in tokens (alias --n-ctx)",
            hidden: ["--n-ctx <n>"],
            min: 64,
            default: true,
        },
    }),
    /** Alias of `contextSize` (the reference pipeline's name). */
    nCtx: alias("contextSize"),
    /** Most tokens submitted to one llama_decode (llama.cpp's n_batch). Default 512. */
    batchSize: integer({ default: 512, min: 1, max: INT32_MAX }),
    /** Physical micro-batch (llama.cpp's n_ubatch). Default 512. */
    ubatchSize: integer({ default: 512, min: 1, max: INT32_MAX }),
    /** Requests decoded together, each in its own sequence. Default 1. */
    parallel: integer({
        default: 1,
        min: 1,
        max: 256,
        cli: {
            flag: "--parallel <n>",
            help: "images decoded together (alias --batch-size)",
            hidden: ["--batch-size <n>"],
            default: 4,
        },
    }),
    /** Threads for generation. Default: physical cores. */
    threads: integer({
        defaultFrom: (_, env) => env.physicalCores(),
        min: 1,
        max: MAX_THREADS,
        cli: { flag: "-t, --threads <n>", help: "threads (default: physical cores)" },
    }),
    /** Threads for prompt processing. Default: `threads`. */
    threadsBatch: integer({ defaultFrom: (resolved) => resolved.threads as number, min: 1, max: MAX_THREADS }),
    /** Flash attention: "auto" (default), true or false. */
    flashAttention: special<boolean | "auto">({
        default: "auto",
        check(name, value) {
            if (value !== "auto" && typeof value !== "boolean") throw invalid(name, 'true, false or "auto"', value);
            return value;
        },
    }),
    /** KV cache type for K and V. Default "f16". */
    kvCacheType: oneOf(Object.keys(KV_TYPES) as KvCacheType[], { default: "f16" }),
    /**
     * One decode of two tokens when the context is created, then an empty cache, as llama.cpp's tools do at load
     * (their `--no-warmup` is `warmup: false`): the first request then does not pay for first use of the compute
     * buffers. Default true.
     */
    warmup: boolean({ default: true }),
};

export interface ContextOptions extends OptionsOf<typeof CONTEXT_OPTIONS> {}

/** Every createContext option, for validation and the bad-input corpus. */
export const CONTEXT_KEYS = keysOf(CONTEXT_OPTIONS);
