import { inProcessBackend } from "./backend/in-process.js";
import { processBackend } from "./backend/process.js";
import type { LoadedModel, NativeModel } from "./backend/types.js";
import { Context, type ContextOptions } from "./context.js";
import { fromNative, LlamaVlmError } from "./errors.js";
import { fitPlacement, type Placement } from "./placement.js";
import { checkTemplateNesting, preflight } from "./preflight.js";
import { physicalCores } from "./system.js";
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
    readonly loaded: LoadedModel;
    private readonly contexts = new Set<Context>();
    private disposed = false;

    /** @internal */
    constructor(loaded: LoadedModel, placement: Placement) {
        this.loaded = loaded;
        this.placement = placement;
        const i = loaded.info;
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
            hasVision: loaded.projector?.supportsVision ?? false,
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
                this.loaded.vocab.tokenize(
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
            this.loaded.vocab.detokenize(
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
            this.loaded.vocab.applyChatTemplate(
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

    /** The addon's handle of the vocabulary in this process (tests run samplers with it). @internal */
    get native(): NativeModel {
        return this.loaded.vocab;
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
        this.loaded.dispose();
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

    await preflight(modelPath, projectorPath);

    const placement: Placement =
        requestedLayers === "auto"
            ? await fitPlacement(modelPath, fit)
            : { gpuLayers: requestedLayers, reason: "as requested", devices: [] };
    const backend = isolation === "process" ? processBackend : inProcessBackend;
    const loaded = await backend.load(
        {
            model: modelPath,
            projector: projectorPath,
            modelParams: { gpuLayers: placement.gpuLayers, useMmap, useMlock, vocabOnly },
            projectorParams,
        },
        o.onProgress,
        signal,
    );
    return new Model(loaded, placement);
}
