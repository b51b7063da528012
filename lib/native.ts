/**
 * The native addon's shape, declared once. Internal: public types never mention these.
 * @internal
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { LlamaVlmError } from "./errors.js";

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
          timings: {
              imageEncodeMs: number;
              imageTokens: number;
              imageCacheHits: number;
              promptMs: number;
              promptTokens: number;
              generateMs: number;
              generatedTokens: number;
          };
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

/** Where the addon may be, in the order node-gyp-build looks. @internal */
export function addonCandidates(root = packageRoot): string[] {
    const tuple = `${process.platform}-${process.arch}`;
    const list: string[] = [];
    if (process.env.LLAMA_VLM_ADDON) list.push(path.resolve(process.env.LLAMA_VLM_ADDON));
    const prebuilds = path.join(root, "prebuilds", tuple);
    list.push(...nodeFiles(prebuilds, `${prebuilds}${path.sep}*.node`));
    for (const dir of ["Release", "Debug"]) {
        const d = path.join(root, "build", dir);
        list.push(...nodeFiles(d, `${d}${path.sep}*.node`));
    }
    return list;
}

function nodeFiles(dir: string, pattern: string): string[] {
    try {
        const files = fs.readdirSync(dir).filter((f) => f.endsWith(".node"));
        return files.length > 0 ? files.map((f) => path.join(dir, f)) : [pattern];
    } catch {
        return [pattern];
    }
}

let cached: NativeAddon | undefined;

/** Loads the addon once per JS environment. @internal */
export function loadNative(): NativeAddon {
    cached ??= loadNativeFrom(packageRoot);
    return cached;
}

/** Loads the first addon that loads from `root`'s candidates, or throws listing every path tried. @internal */
export function loadNativeFrom(root: string): NativeAddon {
    const tried: string[] = [];
    for (const candidate of addonCandidates(root)) {
        if (candidate.includes("*") || !fs.existsSync(candidate)) {
            tried.push(`${candidate} (not found)`);
            continue;
        }
        try {
            const addon = require(candidate) as NativeAddon;
            // Default: llama.cpp's warnings and errors only (ggml_log_level 3 = warn); see setLogger().
            addon.setLogger((level, line) => {
                process.stderr.write(`[llama-vlm] ${level >= 4 ? "error" : "warn"}: ${line}\n`);
            }, 3);
            return addon;
        } catch (err) {
            tried.push(`${candidate} (${(err as Error).message.split("\n")[0]})`);
        }
    }
    throw new LlamaVlmError(
        "NATIVE_LOAD_FAILED",
        `llama-vlm could not load its native addon for ${process.platform}-${process.arch}. Tried:\n` +
            tried.map((t) => `  - ${t}`).join("\n") +
            `\nBuild it from source with \`npm run build:native\` in ${root} ` +
            "(needs cmake and a C++17 compiler), or reinstall the package to get a prebuilt binary.",
    );
}
