import fs from "node:fs";
import { Context, type ContextOptions } from "./context.js";
import { fromNative, LlamaVlmError } from "./errors.js";
import { type GgufFile, GgufFormatError, GgufType, getMetadata, readGguf } from "./gguf/index.js";
import { EngineProcess, type EngineSpec, RemoteModel, RemoteProjector } from "./isolation.js";
import { loadNative, type NativeContext, type NativeModel, type NativeProjector } from "./native.js";
import { devices, physicalCores } from "./system.js";
import {
    checkBoolean,
    checkKnownKeys,
    checkNumber,
    checkObject,
    checkOneOf,
    checkString,
    INT32_MAX,
    invalid,
    MAX_THREADS,
} from "./validate.js";

declare module "./context.js" {
    // A context's `model` is the Model that created it: this widens context.ts's ContextModel (what a Context uses
    // of its model) to the whole Model, without context.ts importing this file.
    interface ContextModel extends Model {}
}

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
    /**
     * "process": the weights, projector and engine threads live in a child process, so a native abort inside
     * llama.cpp fails the requests in flight with CRASHED (and the process restarts for the next request)
     * instead of ending this process. Costs a second copy of the vocabulary here and an IPC hop per token
     * batch; the API is the same. Default "none".
     */
    isolation?: "none" | "process";
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

/** Every loadModel option, for validation and the bad-input corpus. @internal */
export const LOAD_KEYS = [
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
    "isolation",
];
/** Every projectorOptions option. @internal */
export const PROJECTOR_KEYS = [
    "useGpu",
    "threads",
    "imageMinTokens",
    "imageMaxTokens",
    "flashAttention",
    "imageCacheBytes",
];

/**
 * Most image tokens imageMinTokens/imageMaxTokens may ask for: the encoder multiplies them by its patch area
 * (up to 64 × 64 pixels) in 32 bits, and an overflow there aborts the process.
 */
const MAX_IMAGE_TOKENS = 65_536;

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
    checkProjector(projector);
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

/**
 * clip.cpp builds the vision encoder's graph from the projector's metadata and tensor shapes without checking
 * that they agree, and ggml aborts the process at the first mismatch (when the first image is encoded). These
 * are the relations its ViT blocks, and the projections of the families llama-vlm tests, rely on; a projector
 * that breaks one is refused with INVALID_MODEL. Layers specific to other projector types are not checked.
 */
function checkProjector(file: GgufFile): void {
    const shapes = new Map(file.tensors.map((t) => [t.name, t.shape]));
    if (!shapes.has("v.blk.0.attn_out.weight")) return; // not a standard ViT: nothing known to check
    const fail = (why: string): never => {
        throw new LlamaVlmError("INVALID_MODEL", `The projector ${file.path} does not hold together: ${why}`);
    };
    const nEmbd = num(file, "clip.vision.embedding_length") ?? 0;
    const nHead = num(file, "clip.vision.attention.head_count") ?? 0;
    const patch = num(file, "clip.vision.patch_size") ?? 0;
    const imageSize = num(file, "clip.vision.image_size") ?? 0;
    if (!(nEmbd > 0 && nHead > 0 && nEmbd % nHead === 0)) {
        fail(`clip.vision.embedding_length ${nEmbd} is not a positive multiple of the head count ${nHead}`);
    }
    if (!(patch > 0 && imageSize >= patch)) fail(`clip.vision.patch_size ${patch} and image_size ${imageSize}`);
    const expect = (name: string, dims: readonly (number | undefined)[]) => {
        const shape = shapes.get(name);
        if (shape === undefined) return;
        if (shape.length < dims.length || dims.some((d, i) => d !== undefined && shape[i] !== d)) {
            fail(`${name} is [${shape.join(", ")}], expected [${dims.map((d) => d ?? "*").join(", ")}]`);
        }
    };
    expect("v.patch_embd.weight", shapes.get("v.patch_embd.weight")?.length === 4 ? [patch, patch, 3, nEmbd] : []);
    expect("v.position_embd.weight", [nEmbd]);
    for (let il = 0; shapes.has(`v.blk.${il}.attn_out.weight`); il++) {
        const b = `v.blk.${il}.`;
        const q = shapes.get(`${b}attn_q.weight`);
        for (const n of ["attn_q", "attn_k", "attn_v"]) expect(`${b}${n}.weight`, [nEmbd]);
        expect(`${b}attn_out.weight`, [q?.[1], nEmbd]);
        for (const n of ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"]) expect(`${b}${n}`, [nEmbd]);
        const up = shapes.get(`${b}ffn_up.weight`);
        const down = shapes.get(`${b}ffn_down.weight`);
        if (up !== undefined && down !== undefined) {
            // Some converters swapped the names of up and down; clip.cpp swaps them back.
            const [first, second] = up[0] !== nEmbd && down[0] === nEmbd ? [down, up] : [up, down];
            if (first[0] !== nEmbd || second[0] !== first[1] || second[1] !== nEmbd) {
                fail(`${b}ffn_up.weight [${up.join(", ")}] and ffn_down.weight [${down.join(", ")}] do not chain`);
            }
            expect(`${b}ffn_gate.weight`, [nEmbd, first[1]]);
        }
        for (const n of ["attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_gate", "ffn_down"]) {
            expect(`${b}${n}.bias`, [shapes.get(`${b}${n}.weight`)?.[1]]);
        }
    }
    for (let i = 0; i < 8; i++) {
        const weight = shapes.get(`mm.${i}.weight`);
        if (weight?.length === 2) expect(`mm.${i}.bias`, [weight[1]]);
    }
    const projType = str(file, "clip.projector_type") ?? str(file, "clip.vision.projector_type");
    if (projType === "qwen2vl_merger" || projType === "qwen2.5vl_merger") {
        // The merger's graph joins 2 × 2 patches, whatever clip.vision.spatial_merge_size says.
        const merge = num(file, "clip.vision.spatial_merge_size") ?? 2;
        if (merge !== 2) fail(`clip.vision.spatial_merge_size is ${merge}; ${projType} merges 2 × 2 patches`);
        expect("mm.0.weight", [nEmbd * 4]);
    } else if (projType === "idefics3") {
        const scale = num(file, "clip.vision.projector.scale_factor") ?? 0;
        expect("mm.model.fc.weight", [nEmbd * scale * scale]);
        expect("v.position_embd.weight", [nEmbd, Math.floor(imageSize / patch) ** 2]);
    }
}

/**
 * llama.cpp's Jinja engine parses and renders recursively on the calling thread's stack: a template nesting
 * brackets about 3,000 deep overflows it and crashes the process. Chat templates nest a handful of levels.
 */
const TEMPLATE_MAX_NESTING = 256;

function checkTemplateNesting(template: string, what: string, code: "INVALID_OPTION" | "INVALID_MODEL"): void {
    let depth = 0;
    let deepest = 0;
    // Block tags that open or end a block, the tag delimiters themselves (neutral), then single brackets.
    const tokens = /\{%-?\s*(end)?(if|for|macro|call|filter)\b|\{[{%#]|[}%#]\}|[([{]|[)\]}]/g;
    for (const [token, end, block] of template.matchAll(tokens)) {
        if (block === undefined && token.length === 2) continue;
        const closes = block !== undefined ? end !== undefined : ")]}".includes(token);
        depth = closes ? Math.max(0, depth - 1) : depth + 1;
        deepest = Math.max(deepest, depth);
    }
    if (deepest > TEMPLATE_MAX_NESTING) {
        throw new LlamaVlmError(
            code,
            `${what} nests brackets and blocks ${deepest} deep; at most ${TEMPLATE_MAX_NESTING} are allowed`,
        );
    }
}

/** A synchronous native call, with what it throws turned into a LlamaVlmError. */
function nativeCall<T>(fn: () => T): T {
    try {
        return fn();
    } catch (err) {
        throw fromNative(err);
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
        return Array.from(
            nativeCall(() =>
                this.native.tokenize(
                    text,
                    checkBoolean("addSpecial", options.addSpecial ?? true),
                    checkBoolean("parseSpecial", options.parseSpecial ?? true),
                ),
            ),
        );
    }

    /** Token ids → text. */
    detokenize(tokens: readonly number[], options: { removeSpecial?: boolean; unparseSpecial?: boolean } = {}): string {
        this.check();
        if (!Array.isArray(tokens) && !(tokens instanceof Int32Array))
            throw invalid("tokens", "an array of token ids", tokens);
        // Checked here: Int32Array.from would turn 1.5 into 1, "a" into 0 and 2^32 + 5 into 5 without a word.
        const ids = Int32Array.from(tokens, (t, i) =>
            checkNumber(`tokens[${i}]`, t, { integer: true, min: 0, max: INT32_MAX }),
        );
        return nativeCall(() =>
            this.native.detokenize(
                ids,
                checkBoolean("removeSpecial", options.removeSpecial ?? false),
                checkBoolean("unparseSpecial", options.unparseSpecial ?? true),
            ),
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
        if (options.template !== undefined)
            checkTemplateNesting(options.template, "the chat template", "INVALID_OPTION");
        else if (this.info.chatTemplate)
            checkTemplateNesting(this.info.chatTemplate, "the model's chat template", "INVALID_MODEL");
        return nativeCall(() =>
            this.native.applyChatTemplate(
                messages.map((m) => ({ role: m.role, content: m.content })),
                options.template ?? null,
                options.addAssistant ?? true,
            ),
        );
    }

    /** Creates a context (KV cache + engine thread) for generation. */
    async createContext(options: ContextOptions = {}): Promise<Context> {
        this.check();
        const context = await Context.create(this, options);
        if (this.disposed) {
            // dispose() ran while the context was being created and could not see it: it must not outlive the model.
            await context.dispose();
            throw new LlamaVlmError("DISPOSED", "The model was disposed");
        }
        this.contexts.add(context);
        return context;
    }

    /** @internal */
    newNativeContext(): NativeContext {
        return this.native instanceof RemoteModel ? this.native.engine.newContext() : new (loadNative().Context)();
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
    if (requestedLayers !== "auto")
        checkNumber("gpuLayers", requestedLayers, { integer: true, min: -1, max: INT32_MAX });
    const fitFor = checkObject("fitFor", o.fitFor ?? {});
    checkKnownKeys("fitFor", fitFor, ["contextSize", "parallel"]);
    const fit = {
        contextSize: checkNumber("fitFor.contextSize", fitFor.contextSize ?? 4096, {
            integer: true,
            min: 16,
            max: INT32_MAX,
        }),
        parallel: checkNumber("fitFor.parallel", fitFor.parallel ?? 1, { integer: true, min: 1, max: 256 }),
    };
    const useMmap = checkBoolean("useMmap", o.useMmap ?? true);
    const useMlock = checkBoolean("useMlock", o.useMlock ?? false);
    const vocabOnly = checkBoolean("vocabOnly", o.vocabOnly ?? false);
    const isolation = checkOneOf("isolation", o.isolation ?? "none", ["none", "process"] as const);
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
        threads: checkNumber("threads", po.threads ?? physicalCores(), { integer: true, min: 1, max: MAX_THREADS }),
        imageMinTokens: checkNumber("imageMinTokens", po.imageMinTokens ?? -1, {
            integer: true,
            min: -1,
            max: MAX_IMAGE_TOKENS,
        }),
        imageMaxTokens: checkNumber("imageMaxTokens", po.imageMaxTokens ?? -1, {
            integer: true,
            min: -1,
            max: MAX_IMAGE_TOKENS,
        }),
        flashAttention: flash === "auto" ? -1 : flash ? 1 : 0,
        imageCacheBytes: checkNumber("imageCacheBytes", po.imageCacheBytes ?? 256 * 1024 * 1024, {
            integer: true,
            min: 0,
        }),
    };
    const { imageMinTokens, imageMaxTokens } = projectorParams;
    if (imageMinTokens > 0 && imageMaxTokens > 0 && imageMinTokens > imageMaxTokens) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `"imageMinTokens" (${imageMinTokens}) is more than "imageMaxTokens" (${imageMaxTokens})`,
        );
    }
    const signal = o.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalid("signal", "an AbortSignal", signal);
    if (signal?.aborted) throw abortError("Model loading");

    const textFile = await checkFile("Model", modelPath);
    if (str(textFile, "general.architecture") === "clip") {
        throw new LlamaVlmError(
            "INVALID_MODEL",
            `${modelPath} is a projector (mmproj), not a text model: pass it as "projector"`,
        );
    }
    // llama.cpp asserts (aborting the process) on a layer count outside 1..LLAMA_MAX_LAYERS.
    const textArch = str(textFile, "general.architecture");
    const layers = num(textFile, `${textArch}.block_count`);
    if (layers !== undefined && !(layers >= 1 && layers <= 512)) {
        throw new LlamaVlmError(
            "INVALID_MODEL",
            `${modelPath} has ${textArch}.block_count = ${layers}; llama.cpp takes 1 to 512 layers`,
        );
    }
    if (projectorPath !== undefined) checkPair(textFile, await checkFile("Projector", projectorPath));

    const native = loadNative();
    let placement: Placement;
    if (requestedLayers === "auto") {
        placement = await fitPlacement(modelPath, fit);
    } else {
        placement = { gpuLayers: requestedLayers, reason: "as requested", devices: [] };
    }
    const gpuLayers = placement.gpuLayers;
    if (isolation === "process") {
        const spec = {
            model: modelPath,
            projector: projectorPath,
            modelParams: { gpuLayers, useMmap, useMlock, vocabOnly },
            projectorParams,
        };
        return loadIsolated(spec, o.onProgress, signal, placement);
    }
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

/** isolation "process": the model loads in its engine process; this process keeps a vocabulary-only copy. */
async function loadIsolated(
    spec: EngineSpec,
    onProgress: ((progress: number) => void) | undefined,
    signal: AbortSignal | undefined,
    placement: Placement,
): Promise<Model> {
    const engine = await EngineProcess.start(spec, onProgress, signal);
    const vocab = new (loadNative().Model)();
    try {
        await vocab.load(spec.model, { gpuLayers: 0, useMmap: true, useMlock: false, vocabOnly: true }, null);
    } catch (err) {
        engine.dispose();
        throw fromNative(err);
    }
    const info = engine.info!;
    return new Model(
        new RemoteModel(vocab, engine, info.model),
        info.projector ? new RemoteProjector(info.projector) : null,
        placement,
    );
}

/** gpuLayers "auto": llama.cpp's fitting of layers and KV cache to free device memory. */
async function fitPlacement(modelPath: string, fitFor: { contextSize: number; parallel: number }): Promise<Placement> {
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
            contextSize: fitFor.contextSize,
            parallel: fitFor.parallel,
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
