/**
 * The native addon's shape, declared once. Internal: public types never mention these.
 * @internal
 */
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { LlamaVlmError } from "./errors.js";
import {
    AddonLoadError,
    gpuAvailable,
    type LoadAttempt,
    type LoadOutcome,
    selectAddon,
    VARIANTS,
    type Variant,
    variantFiles,
} from "./loader.js";

/** @internal */
export type TestFault = "abort" | "throw-prepare" | "throw-prefill";

/** @internal */
export interface NativeDevice {
    name: string;
    description: string;
    type: "cpu" | "gpu" | "igpu" | "accel" | "other";
    backend: string;
    memoryFree: number;
    memoryTotal: number;
    deviceId?: string;
    features: Record<string, string>;
}

/** @internal */
export interface NativeVersion {
    addon: string;
    llamaCppVersion: string;
    llamaCppCommit: string;
    compiledBackends: string;
    build: "native" | "portable";
    loadedBackends: string[];
}

/** @internal */
export interface NativeModelInfo {
    description: string;
    architecture: string;
    name: string;
    parameters: number;
    sizeBytes: number;
    contextLengthTrained: number;
    embeddingLength: number;
    embeddingLengthInput: number;
    layers: number;
    vocabSize: number;
    bos: number;
    eos: number;
    newline: number;
    addBos: boolean;
    chatTemplate: string | null;
}

/** @internal */
export interface NativeModel {
    load(
        path: string,
        params: { gpuLayers: number; useMmap: boolean; useMlock: boolean; vocabOnly: boolean },
        onProgress: ((progress: number) => void) | null,
    ): Promise<void>;
    abortLoad(): void;
    info(): NativeModelInfo;
    tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
    detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string;
    tokenBytes(token: number): Buffer;
    isEndOfGeneration(token: number): boolean;
    applyChatTemplate(
        messages: { role: string; content: string }[],
        template: string | null,
        addAssistant: boolean,
    ): string;
    dispose(): void;
}

/** @internal */
export interface NativeProjector {
    load(
        model: NativeModel,
        path: string,
        params: {
            useGpu: boolean;
            threads: number;
            imageMinTokens: number;
            imageMaxTokens: number;
            flashAttention: number;
        },
    ): Promise<void>;
    info(): { supportsVision: boolean; usesMrope: boolean; marker: string };
    dispose(): void;
}

/** @internal */
export interface NativeContextParams {
    contextSize: number;
    batchSize: number;
    ubatchSize: number;
    parallel: number;
    threads: number;
    threadsBatch: number;
    flashAttention: number;
    typeK: number;
    typeV: number;
}

/** @internal */
export interface NativeRequest {
    textParts: string[];
    images: { data: Uint8Array; width: number; height: number; id: string }[];
    addSpecial: boolean;
    maxTokens: number;
    nProbs: number;
    sampling: import("./sampling.js").NativeSampling;
}

/** @internal */
export type NativeEvent =
    | { id: number; type: "token"; token: number; bytes: Buffer; probs?: { token: number; probability: number }[] }
    | {
          id: number;
          type: "done";
          stopReason: string;
          timings: import("./context.js").Timings;
      }
    | { id: number; type: "error"; code: string; message: string };

/** @internal */
export interface NativeContext {
    init(
        model: NativeModel,
        projector: NativeProjector | null,
        params: NativeContextParams,
        onEvents: (events: NativeEvent[]) => void,
    ): Promise<void>;
    submit(request: NativeRequest): number;
    cancel(id: number): void;
    info(): { contextSize: number; totalContextSize: number; parallel: number; batchSize: number };
    ref(): void;
    unref(): void;
    dispose(): Promise<void>;
    /**
     * Test-only (LLAMA_VLM_TEST_FAULTS=1): "abort" makes the engine thread abort natively before its next decode;
     * "throw-prepare" / "throw-prefill" make the next request's work in the encoder / decoder stage throw a
     * std::runtime_error (that request fails with NATIVE_ERROR, the engine goes on).
     */
    testFault(kind: TestFault): void;
}

/** @internal */
export interface NativeSamplerResult {
    ids: Int32Array;
    logits: Float32Array;
    probs: Float32Array;
    selected: number;
}

/** @internal */
export interface NativeAddon {
    Model: new () => NativeModel;
    Projector: new () => NativeProjector;
    Context: new () => NativeContext;
    /** Runs a sampler chain over given logits (tests and tools); `history` tokens are accepted first. */
    applySamplers(
        sampling: import("./sampling.js").NativeSampling,
        logits: Float32Array,
        history: Int32Array,
        select: boolean,
        model: NativeModel | null,
    ): NativeSamplerResult;
    jsonSchemaToGrammar(schema: string): string;
    fitModel(
        path: string,
        params: {
            contextSize: number;
            parallel: number;
            batchSize: number;
            ubatchSize: number;
            typeK: number;
            typeV: number;
            marginBytes: number;
        },
    ): Promise<{
        status: "fit" | "no-fit";
        gpuLayers: number;
        devices: { name: string; free: number; total: number; model: number; context: number; compute: number }[];
    }>;
    systemInfo(): string;
    devices(): NativeDevice[];
    version(): NativeVersion;
    setLogger(fn: ((level: number, line: string) => void) | null, minLevel: number): void;
    physicalCores(): number;
    /** Feeds text through the log callback installed in llama.cpp (tests only). */
    _testLog(level: number, text: string): void;
}

/** Package root: this file lives in lib/ (sources) or dist/ (compiled), one level below it. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const require = createRequire(import.meta.url);

/** Every .node file the loader would consider, best variant first (for tests and diagnostics). @internal */
export function addonCandidates(root = packageRoot): string[] {
    return VARIANTS.flatMap((v) => variantFiles(v, root, process.platform, process.arch));
}

/** Which variant was loaded and what was tried before it. @internal */
export let loadOutcome: { variant: Variant; file: string; attempts: LoadAttempt[] } | undefined;

let cached: NativeAddon | undefined;

/** Loads the addon once per JS environment. @internal */
export function loadNative(): NativeAddon {
    cached ??= loadNativeFrom(packageRoot);
    return cached;
}

/** Loads the best addon variant under `root`, or throws listing every path tried and why. @internal */
export function loadNativeFrom(root: string, env: Record<string, string | undefined> = process.env): NativeAddon {
    let outcome: LoadOutcome<NativeAddon>;
    try {
        outcome = selectAddon<NativeAddon>({
            root,
            platform: process.platform,
            arch: process.arch,
            env,
            available: (v) => gpuAvailable(v),
            load: (file) => require(file),
        });
    } catch (err) {
        const attempts = err instanceof AddonLoadError ? err.attempts : [];
        throw new LlamaVlmError(
            "NATIVE_LOAD_FAILED",
            `llama-vlm could not load its native addon for ${process.platform}-${process.arch}: ${(err as Error).message}. Tried:\n` +
                (attempts.length > 0
                    ? attempts
                    : [{ variant: "cpu", file: path.join(root, "build", "Release"), reason: "not built" }]
                )
                    .map((a) => `  - ${a.variant}: ${a.file} (${a.reason ?? "loaded"})`)
                    .join("\n") +
                `\nBuild it from source with \`npm run build:native\` in ${root} ` +
                "(needs cmake and a C++17 compiler), or reinstall the package to get a prebuilt binary.",
        );
    }
    const failedGpu = outcome.attempts.filter((a) => a.reason && a.variant !== "cpu" && a.reason !== "not built");
    if (failedGpu.length > 0 && !failedGpu.every((a) => a.reason?.startsWith("no "))) {
        process.emitWarning(
            `llama-vlm: using the ${outcome.variant} build; ` +
                failedGpu.map((a) => `${a.variant} not used: ${a.reason}`).join("; "),
            { code: "LLAMA_VLM_FALLBACK" },
        );
    }
    const addon = outcome.addon;
    // Default: llama.cpp's warnings and errors only (ggml_log_level 3 = warn); see setLogger().
    addon.setLogger((level, line) => {
        process.stderr.write(`[llama-vlm] ${level >= 4 ? "error" : "warn"}: ${line}\n`);
    }, 3);
    if (root === packageRoot)
        loadOutcome = { variant: outcome.variant, file: outcome.file, attempts: outcome.attempts };
    return addon;
}
