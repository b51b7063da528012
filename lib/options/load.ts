/**
 * The loadModel options, described once: `LoadModelOptions`, `ProjectorOptions`, `LOAD_KEYS`, `PROJECTOR_KEYS`, the
 * validation in `loadModel` and the load flags of `llama-vlm extract` are derived from the tables here.
 * @internal
 */
import { LlamaVlmError } from "../errors.js";
import type { DownloadProgress } from "../models/download.js";
import { checkKnownKeys, checkObject, INT32_MAX, invalid, MAX_THREADS } from "../validate.js";
import { CONTEXT_OPTIONS } from "./context.js";
import {
    alias,
    boolean,
    integer,
    keysOf,
    type OptionEnv,
    type OptionsOf,
    oneOf,
    type ResolvedOf,
    resolveOptions,
    special,
    string,
} from "./table.js";

/**
 * Most image tokens imageMinTokens/imageMaxTokens may ask for: the encoder multiplies them by its patch area
 * (up to 64 × 64 pixels) in 32 bits, and an overflow there aborts the process.
 */
const MAX_IMAGE_TOKENS = 65_536;

/** Options of the vision encoder (projector). */
export const PROJECTOR_OPTIONS = {
    /** Run the encoder on the GPU when the build has one. Default true. */
    useGpu: boolean({ default: true }),
    /** Encoder threads. Default: physical cores. */
    threads: integer({ defaultFrom: (_, env) => env.physicalCores(), min: 1, max: MAX_THREADS }),
    /** Lower bound of image tokens for encoders with dynamic resolution (-1 = the projector's). Default -1. */
    imageMinTokens: integer({ default: -1, min: -1, max: MAX_IMAGE_TOKENS }),
    /** Upper bound of image tokens for encoders with dynamic resolution (-1 = the projector's). Default -1. */
    imageMaxTokens: integer({
        default: -1,
        min: -1,
        max: MAX_IMAGE_TOKENS,
        refine(_, max, resolved) {
            const min = resolved.imageMinTokens as number;
            if (min > 0 && max > 0 && min > max) {
                throw new LlamaVlmError(
                    "INVALID_OPTION",
                    `"imageMinTokens" (${min}) is more than "imageMaxTokens" (${max})`,
                );
            }
        },
    }),
    /** Flash attention in the encoder: "auto", true or false. Default "auto". */
    flashAttention: special<boolean | "auto">({
        default: "auto",
        check(name, value) {
            if (value !== "auto" && typeof value !== "boolean") {
                throw new LlamaVlmError(
                    "INVALID_OPTION",
                    `Expected "${name}" to be true, false or "auto", got ${String(value)}`,
                );
            }
            return value;
        },
    }),
    /** Bytes of encoded images kept, by content hash, so the same image is encoded once (0 = off). Default 256 MiB. */
    imageCacheBytes: integer({ default: 256 * 1024 * 1024, min: 0 }),
};

/** Options of the vision encoder (projector). */
export interface ProjectorOptions extends OptionsOf<typeof PROJECTOR_OPTIONS> {}

/** Every projectorOptions option. */
export const PROJECTOR_KEYS = keysOf(PROJECTOR_OPTIONS);

/** What `gpuLayers: "auto"` fits besides the weights: the createContext options of the same names. */
export const FIT_FOR_OPTIONS = {
    /** Tokens each sequence holds. Default 4096. */
    contextSize: CONTEXT_OPTIONS.contextSize,
    /** Sequences decoded together. Default 1. */
    parallel: CONTEXT_OPTIONS.parallel,
};

export interface FitFor extends OptionsOf<typeof FIT_FOR_OPTIONS> {}

/** A nested option group: an object of the table's options, validated with their names prefixed by the group's. */
function group<T extends typeof PROJECTOR_OPTIONS | typeof FIT_FOR_OPTIONS>(
    table: T,
    prefix: (name: string) => string,
): (name: string, value: unknown, env: OptionEnv) => ResolvedOf<T> {
    return (name, value, env) => {
        const options = checkObject(name, value);
        checkKnownKeys(name, options, keysOf(table));
        return resolveOptions(table, options, { given: "nullish", prefix: prefix(name), env });
    };
}

export const LOAD_OPTIONS = {
    /**
     * The text model GGUF: a local path, `hf:owner/repo[:quant|/file.gguf][@revision]` (downloaded into the model
     * cache, verified; without a quant, Q4_K_M or the next 4-bit one) or an `https://` URL.
     */
    model: string({
        required: true,
        nonEmpty: true,
        cli: {
            flag: "-m, --model <ref>",
            help: "text model GGUF: a path, hf:owner/repo[:quant] or an https:// URL",
            required: true,
        },
    }),
    /**
     * The vision projector (mmproj) GGUF: a path, an `hf:` reference or a URL; without it the model is text-only,
     * except for an `hf:` model, which gets its repository's projector (mmproj*.gguf, F16 first).
     */
    projector: string({
        nonEmpty: true,
        cli: {
            flag: "--projector <ref>",
            help: "vision projector (mmproj) GGUF: a path, hf:… or a URL; an hf: model finds its own (alias --mmproj)",
            hidden: ["--mmproj <file>"],
        },
    }),
    /**
     * Layers to offload to the GPU (-1 or 99 = all), or "auto": as many as free device memory holds,
     * with the KV cache for `fitFor` (llama.cpp's own fitting). The plan is in `model.placement`.
     * Alias: nGpuLayers. Default -1.
     */
    gpuLayers: integer({
        default: -1,
        min: -1,
        max: INT32_MAX,
        or: ["auto"],
        cli: {
            flag: "--gpu-layers <n>",
            help: "layers on the GPU (alias --n-gpu-layers)",
            hidden: ["--n-gpu-layers <n>"],
            default: true,
        },
    }),
    /** Alias of `gpuLayers` (the reference pipeline's name). */
    nGpuLayers: alias("gpuLayers"),
    /** Map the file instead of reading it. Default true. */
    useMmap: boolean({ default: true }),
    /** Lock the weights in RAM. Default false. */
    useMlock: boolean({ default: false }),
    /**
     * Back the weights held in RAM with 2 MiB transparent huge pages (Linux; elsewhere it does nothing), and with them
     * the vision encoder's weights and compute buffer and each context's KV cache and compute buffers: faster and far
     * steadier generation on the CPU, faster image encoding and loading, about 3 % more peak RSS (the encoder's compute
     * buffer is reserved at load). `model.info.hugePageBytes` says how much of the text weights the kernel put on huge
     * pages. False does not ask for them, as llama.cpp's own tools do not (memory that glibc reuses from an earlier load in
     * the same process may still have them). Default true.
     */
    hugePages: boolean({ default: true }),
    /** Load only the vocabulary (tokenize/detokenize; no generation). Default false. */
    vocabOnly: boolean({ default: false }),
    /** What "auto" fits besides the weights. Default { contextSize: 4096, parallel: 1 }. */
    fitFor: special<FitFor, ResolvedOf<typeof FIT_FOR_OPTIONS>>({
        default: {},
        // Its options are named "fitFor.contextSize" and "fitFor.parallel" in messages.
        check: group(FIT_FOR_OPTIONS, (name) => `${name}.`),
    }),
    /** Called with 0..1 while the text model loads. */
    onProgress: special<(progress: number) => void>({
        check(name, value) {
            if (typeof value !== "function") {
                throw new LlamaVlmError("INVALID_OPTION", `Expected "${name}" to be a function, got ${typeof value}`);
            }
            return value as (progress: number) => void;
        },
    }),
    /** Cancels the load (and a download, which keeps what arrived for the next call): the promise rejects with code ABORTED. */
    signal: special<AbortSignal>({
        check(name, value) {
            if (!(value instanceof AbortSignal)) throw invalid(name, "an AbortSignal", value);
            return value;
        },
    }),
    /** Options of the vision encoder. */
    projectorOptions: special<ProjectorOptions, ResolvedOf<typeof PROJECTOR_OPTIONS>>({
        default: {},
        // Its options are named by their own names in messages ("threads", not "projectorOptions.threads").
        check: group(PROJECTOR_OPTIONS, () => ""),
    }),
    /**
     * "process": the weights, projector and engine threads live in a child process, so a native abort inside
     * llama.cpp fails the requests in flight with CRASHED (and the process restarts for the next request)
     * instead of ending this process. Costs a second copy of the vocabulary here and an IPC hop per token
     * batch; the API is the same. Default "none".
     */
    isolation: oneOf(["none", "process"], { default: "none" }),
    /**
     * Use only the model cache for `hf:` and URL references: never contact a server. Default: true when the
     * environment has HF_HUB_OFFLINE=1, else false.
     */
    offline: boolean({}),
    /** Called as a referenced model's files download (bytes so far, total, file name). */
    onDownloadProgress: special<(progress: DownloadProgress) => void>({
        check(name, value) {
            if (typeof value !== "function") {
                throw new LlamaVlmError("INVALID_OPTION", `Expected "${name}" to be a function, got ${typeof value}`);
            }
            return value as (progress: DownloadProgress) => void;
        },
    }),
};

export interface LoadModelOptions extends OptionsOf<typeof LOAD_OPTIONS> {}

/** Every loadModel option, for validation and the bad-input corpus. */
export const LOAD_KEYS = keysOf(LOAD_OPTIONS);
