import fs from "node:fs";
import { Context, type ContextOptions } from "./context.js";
import { fromNative, LlamaVlmError } from "./errors.js";
import { type GgufFile, GgufFormatError, GgufType, getMetadata, readGguf } from "./gguf/index.js";
import { loadNative, type NativeModel, type NativeProjector } from "./native.js";
import { devices, physicalCores } from "./system.js";
import { checkBoolean, checkKnownKeys, checkNumber, checkObject, checkString } from "./validate.js";

/** Options of the vision encoder (projector). */
export interface ProjectorOptions {
    /** Run the encoder on the GPU when the build has one. Default true. */
    useGpu?: boolean;
    /** Encoder threads. Default: physical cores. */
    threads?: number;
    /** Lower bound of image tokens for encoders with dynamic resolution (-1 = the projector's). Default -1. */
    imageMinTokens?: number;
    /** Upper bound of image tokens for encoders with dynamic resolution (-1 = the projector's). Default -1. */
    imageMaxTokens?: number;
    /** Flash attention in the encoder: "auto", true or false. Default "auto". */
    flashAttention?: boolean | "auto";
    /** Bytes of encoded images kept, by content hash, so the same image is encoded once (0 = off). Default 256 MiB. */
    imageCacheBytes?: number;
}

export interface LoadModelOptions {
    /** Path of the text model GGUF. */
    model: string;
    /** Path of the vision projector (mmproj) GGUF; without it the model is text-only. */
    projector?: string;
    /**
     * Layers to offload to the GPU (-1 or 99 = all), or "auto": as many as free device memory holds,
     * with the KV cache for `fitFor` (llama.cpp's own fitting). The plan is in `model.placement`.
     * Alias: nGpuLayers. Default -1.
     */
    gpuLayers?: number | "auto";
    /** What "auto" fits besides the weights. Default { contextSize: 4096, parallel: 1 }. */
    fitFor?: { contextSize?: number; parallel?: number };
    /** Map the file instead of reading it. Default true. */
    useMmap?: boolean;
    /** Lock the weights in RAM. Default false. */
    useMlock?: boolean;
    /** Load only the vocabulary (tokenize/detokenize; no generation). Default false. */
    vocabOnly?: boolean;
    /** Called with 0..1 while the text model loads. */
    onProgress?: (progress: number) => void;
    /** Cancels the load: the promise rejects with code ABORTED. */
    signal?: AbortSignal;
    projectorOptions?: ProjectorOptions;
    /** Alias of `gpuLayers` (the reference pipeline's name). */
    nGpuLayers?: number | "auto";
}

/** Where a model's layers went, and why. */
export interface Placement {
    /** Layers offloaded to GPUs (-1: all). */
    gpuLayers: number;
    /** How the number was chosen. */
    reason: string;
    /** Per device: free and total memory, and the bytes the model, its KV cache and compute buffers take (for "auto"). */
    devices: { name: string; free: number; total: number; model: number; context: number; compute: number }[];
}

/** What a loaded model is. */
export interface ModelInfo {
    architecture: string;
    name: string;
    description: string;
    parameters: number;
    sizeBytes: number;
    contextLengthTrained: number;
    embeddingLength: number;
    layers: number;
    vocabSize: number;
    /** The model's own chat template (Jinja), if it has one. */
    chatTemplate: string | null;
    hasVision: boolean;
}

export type Role = "system" | "user" | "assistant";
/** A piece of message content: text, or an image placed at that point. */
export type ContentPart = string | { image: import("./images.js").ImageInput };
export interface ChatMessage {
    role: Role;
    content: string | ContentPart[];
}

const LOAD_KEYS = [
    "model",
    "projector",
    "gpuLayers",
    "nGpuLayers",
    "useMmap",
    "useMlock",
    "vocabOnly",
    "fitFor",
    "onProgress",
    "signal",
    "projectorOptions",
];
const PROJECTOR_KEYS = ["useGpu", "threads", "imageMinTokens", "imageMaxTokens", "flashAttention", "imageCacheBytes"];

/** Projector types whose image tokens use M-RoPE positions: they pair only with M-RoPE text models. */
const MROPE_PROJECTORS = new Set(["qwen2vl_merger", "qwen2.5vl_merger", "qwen3vl_merger", "glm4v", "youtuvl"]);

async function checkFile(kind: string, path: string): Promise<GgufFile> {
    let stat: fs.Stats;
    try {
        stat = await fs.promises.stat(path);
    } catch {
        throw new LlamaVlmError("FILE_NOT_FOUND", `${kind} file not found: ${path}`);
    }
    if (!stat.isFile()) throw new LlamaVlmError("FILE_NOT_FOUND", `${kind} path is not a file: ${path}`);
    try {
        return await readGguf(path, { readArrays: 64 });
    } catch (err) {
        if (err instanceof GgufFormatError) {
            throw new LlamaVlmError(
                "INVALID_MODEL",
                `${kind} ${path} is not a usable GGUF file (${err.code}): ${err.message}`,
                {
                    cause: err,
                },
            );
        }
        throw err;
    }
}

function str(file: GgufFile, key: string): string | undefined {
    try {
        return getMetadata(file, key, GgufType.STRING);
    } catch {
        return undefined;
    }
}

function num(file: GgufFile, key: string): number | undefined {
    const entry = file.metadata.get(key);
    if (entry === undefined || entry.type === GgufType.ARRAY) return undefined;
    return typeof entry.value === "number"
        ? entry.value
        : typeof entry.value === "bigint"
          ? Number(entry.value)
          : undefined;
}

/** Checks that a projector belongs to a text model before llama.cpp sees the pair. @internal */
export function checkPair(text: GgufFile, projector: GgufFile): void {
    const textArch = str(text, "general.architecture") ?? "?";
    const projArch = str(projector, "general.architecture");
    if (textArch === "clip") {
        throw new LlamaVlmError(
            "INVALID_MODEL",
            `${text.path} is a projector (mmproj), not a text model: pass it as "projector"`,
        );
    }
    if (projArch !== "clip") {
        throw new LlamaVlmError(
            "INVALID_MODEL",
            `${projector.path} is a "${projArch ?? "unknown"}" text model, not a projector (mmproj) GGUF`,
        );
    }
    const projDim = num(projector, "clip.vision.projection_dim");
    const embd = num(text, `${textArch}.embedding_length`);
    if (projDim !== undefined && embd !== undefined && projDim !== embd) {
        throw new LlamaVlmError(
            "PROJECTOR_MISMATCH",
            `The projector ${projector.path} outputs ${projDim}-wide embeddings but the text model ${text.path} (${textArch}) ` +
                `takes ${embd}: they are not a pair`,
        );
    }
    const projType = str(projector, "clip.vision.projector_type") ?? str(projector, "clip.projector_type");
    const textMrope = text.metadata.has(`${textArch}.rope.dimension_sections`);
    if (projType !== undefined && MROPE_PROJECTORS.has(projType) !== textMrope) {
        throw new LlamaVlmError(
            "PROJECTOR_MISMATCH",
            `The projector ${projector.path} (${projType}) ${MROPE_PROJECTORS.has(projType) ? "needs" : "cannot drive"} a text model ` +
                `with M-RoPE positions, and ${text.path} (${textArch}) ${textMrope ? "has" : "has not"}: they are not a pair`,
        );
    }
}

function abortError(what: string): LlamaVlmError {
    return new LlamaVlmError("ABORTED", `${what} was aborted`);
}

/** A loaded model (text weights, vocabulary and optionally the vision projector). */
export class Model {
    readonly info: ModelInfo;
    /** Where the layers went (GPU offload) and why. */
    readonly placement: Placement;
    /** @internal */
    readonly native: NativeModel;
    /** @internal */
    readonly nativeProjector: NativeProjector | null;
    private readonly contexts = new Set<Context>();
    private disposed = false;

    /** @internal */
    constructor(native: NativeModel, projector: NativeProjector | null, placement: Placement) {
        this.native = native;
        this.placement = placement;
        this.nativeProjector = projector;
        const i = native.info();
        this.info = {
            architecture: i.architecture,
            name: i.name,
            description: i.description,
            parameters: i.parameters,
            sizeBytes: i.sizeBytes,
            contextLengthTrained: i.contextLengthTrained,
            embeddingLength: i.embeddingLength,
            layers: i.layers,
            vocabSize: i.vocabSize,
            chatTemplate: i.chatTemplate,
            hasVision: projector?.info().supportsVision ?? false,
        };
    }

    private check(): void {
        if (this.disposed) throw new LlamaVlmError("DISPOSED", "The model was disposed");
    }

    /** Text → token ids. `addSpecial` adds BOS etc. as the vocabulary wants (default true); `parseSpecial` turns special-token text into special tokens (default true). */
    tokenize(text: string, options: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
        this.check();
        checkString("text", text);
        return Array.from(this.native.tokenize(text, options.addSpecial ?? true, options.parseSpecial ?? true));
    }

    /** Token ids → text. */
    detokenize(tokens: readonly number[], options: { removeSpecial?: boolean; unparseSpecial?: boolean } = {}): string {
        this.check();
        return this.native.detokenize(
            Int32Array.from(tokens),
            options.removeSpecial ?? false,
            options.unparseSpecial ?? true,
        );
    }

    /**
     * Formats messages with a chat template: the model's own (default), one of llama.cpp's named templates
     * (e.g. "vicuna", "chatml") or a Jinja template string. Image parts are rendered as `imageMarker`.
     */
    applyChatTemplate(
        messages: readonly { role: string; content: string }[],
        options: { template?: string; addAssistant?: boolean } = {},
    ): string {
        this.check();
        return this.native.applyChatTemplate(
            messages.map((m) => ({ role: m.role, content: m.content })),
            options.template ?? null,
            options.addAssistant ?? true,
        );
    }

    /** Creates a context (KV cache + engine thread) for generation. */
    async createContext(options: ContextOptions = {}): Promise<Context> {
        this.check();
        const context = await Context.create(this, options);
        this.contexts.add(context);
        return context;
    }

    /** @internal */
    forgetContext(context: Context): void {
        this.contexts.delete(context);
    }

    /** Frees the model; its contexts are disposed first (their running requests end with DISPOSED). Idempotent. */
    async dispose(): Promise<void> {
        if (this.disposed) return;
        this.disposed = true;
        await Promise.all([...this.contexts].map((c) => c.dispose()));
        this.nativeProjector?.dispose();
        this.native.dispose();
    }

    async [Symbol.asyncDispose](): Promise<void> {
        await this.dispose();
    }
}

/** Loads a text model and, with `projector`, its vision encoder. Runs off the JS thread. */
export async function loadModel(options: LoadModelOptions): Promise<Model> {
    const o = checkObject("options", options) as unknown as LoadModelOptions;
    checkKnownKeys("loadModel options", o, LOAD_KEYS);
    const modelPath = checkString("model", o.model, { nonEmpty: true });
    const projectorPath =
        o.projector === undefined ? undefined : checkString("projector", o.projector, { nonEmpty: true });
    if (o.gpuLayers !== undefined && o.nGpuLayers !== undefined) {
        throw new LlamaVlmError("INVALID_OPTION", 'Give "gpuLayers" or its alias "nGpuLayers", not both');
    }
    const requestedLayers = o.gpuLayers ?? o.nGpuLayers ?? -1;
    if (requestedLayers !== "auto") checkNumber("gpuLayers", requestedLayers, { integer: true, min: -1 });
    const useMmap = checkBoolean("useMmap", o.useMmap ?? true);
    const useMlock = checkBoolean("useMlock", o.useMlock ?? false);
    const vocabOnly = checkBoolean("vocabOnly", o.vocabOnly ?? false);
    if (o.onProgress !== undefined && typeof o.onProgress !== "function") {
        throw new LlamaVlmError("INVALID_OPTION", `Expected "onProgress" to be a function, got ${typeof o.onProgress}`);
    }
    const po = checkObject("projectorOptions", o.projectorOptions ?? {}) as ProjectorOptions;
    checkKnownKeys("projectorOptions", po, PROJECTOR_KEYS);
    const flash = po.flashAttention ?? "auto";
    if (flash !== "auto" && typeof flash !== "boolean") {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `Expected "flashAttention" to be true, false or "auto", got ${String(flash)}`,
        );
    }
    const projectorParams = {
        useGpu: checkBoolean("useGpu", po.useGpu ?? true),
        threads: checkNumber("threads", po.threads ?? physicalCores(), { integer: true, min: 1 }),
        imageMinTokens: checkNumber("imageMinTokens", po.imageMinTokens ?? -1, { integer: true, min: -1 }),
        imageMaxTokens: checkNumber("imageMaxTokens", po.imageMaxTokens ?? -1, { integer: true, min: -1 }),
        flashAttention: flash === "auto" ? -1 : flash ? 1 : 0,
        imageCacheBytes: checkNumber("imageCacheBytes", po.imageCacheBytes ?? 256 * 1024 * 1024, {
            integer: true,
            min: 0,
        }),
    };
    const signal = o.signal;
    if (signal?.aborted) throw abortError("Model loading");

    const textFile = await checkFile("Model", modelPath);
    if (str(textFile, "general.architecture") === "clip") {
        throw new LlamaVlmError(
            "INVALID_MODEL",
            `${modelPath} is a projector (mmproj), not a text model: pass it as "projector"`,
        );
    }
    if (projectorPath !== undefined) checkPair(textFile, await checkFile("Projector", projectorPath));

    const native = loadNative();
    let placement: Placement;
    if (requestedLayers === "auto") {
        placement = await fitPlacement(modelPath, checkObject("fitFor", o.fitFor ?? {}));
    } else {
        placement = { gpuLayers: requestedLayers, reason: "as requested", devices: [] };
    }
    const gpuLayers = placement.gpuLayers;
    const model = new native.Model();
    const onAbort = () => model.abortLoad();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
        await model.load(modelPath, { gpuLayers, useMmap, useMlock, vocabOnly }, o.onProgress ?? null);
    } catch (err) {
        throw fromNative(err);
    } finally {
        signal?.removeEventListener("abort", onAbort);
    }
    let projector: NativeProjector | null = null;
    if (projectorPath !== undefined) {
        if (signal?.aborted) {
            model.dispose();
            throw abortError("Model loading");
        }
        projector = new native.Projector();
        try {
            await projector.load(model, projectorPath, projectorParams);
        } catch (err) {
            model.dispose();
            throw fromNative(err);
        }
    }
    return new Model(model, projector, placement);
}

/** gpuLayers "auto": llama.cpp's fitting of layers and KV cache to free device memory. */
async function fitPlacement(
    modelPath: string,
    fitFor: { contextSize?: unknown; parallel?: unknown },
): Promise<Placement> {
    checkKnownKeys("fitFor", fitFor, ["contextSize", "parallel"]);
    const gpus = devices().filter((d) => d.type === "gpu" || d.type === "igpu");
    if (gpus.length === 0) {
        return {
            gpuLayers: 0,
            reason: "no GPU device: llama.cpp sees only the CPU, so no layer is offloaded",
            devices: [],
        };
    }
    const plan = await loadNative()
        .fitModel(modelPath, {
            contextSize: checkNumber("fitFor.contextSize", fitFor.contextSize ?? 4096, { integer: true, min: 16 }),
            parallel: checkNumber("fitFor.parallel", fitFor.parallel ?? 1, { integer: true, min: 1 }),
            batchSize: 512,
            ubatchSize: 512,
            typeK: 1,
            typeV: 1,
            marginBytes: 1024 * 1024 * 1024,
        })
        .catch((err: unknown) => {
            throw fromNative(err);
        });
    const names = gpus.map((g) => g.name).join(", ");
    return {
        gpuLayers: plan.gpuLayers,
        reason:
            plan.status === "fit"
                ? `fits ${plan.gpuLayers < 0 ? "all" : plan.gpuLayers} layers and the KV cache on ${names}, leaving 1 GiB free per device`
                : `the model does not fit ${names}; offloading ${plan.gpuLayers} layers, the rest runs on the CPU`,
        devices: plan.devices,
    };
}
