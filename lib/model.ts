import { inProcessBackend } from "./backend/in-process.js";
import { processBackend } from "./backend/process.js";
import type { LoadedModel, NativeModel } from "./backend/types.js";
import { Context, type ContextOptions } from "./context.js";
import { fromNative, LlamaVlmError } from "./errors.js";
import { resolveModel } from "./models/resolve.js";
import { flashAttentionParam } from "./options/context.js";
import {
    LOAD_KEYS,
    LOAD_OPTIONS,
    type LoadModelOptions,
    PROJECTOR_KEYS,
    type ProjectorOptions,
} from "./options/load.js";
import { resolveOptions } from "./options/table.js";
import { fitPlacement, type Placement } from "./placement.js";
import { checkTemplateNesting, preflight } from "./preflight.js";
import { physicalCores } from "./system.js";
import { checkBoolean, checkKnownKeys, checkNumber, checkObject, checkString, INT32_MAX, invalid } from "./validate.js";

declare module "./context.js" {
    // A context's `model` is the Model that created it: this widens context.ts's ContextModel (what a Context uses
    // of its model) to the whole Model, without context.ts importing this file.
    interface ContextModel extends Model {}
}

// The loadModel options are described once, in lib/options/load.ts.
export { LOAD_KEYS, type LoadModelOptions, PROJECTOR_KEYS, type ProjectorOptions };

/** What a loaded model is. */
export interface ModelInfo {
    architecture: string;
    name: string;
    description: string;
    parameters: number;
    sizeBytes: number;
    /**
     * Bytes of the weights in RAM that the kernel backed with 2 MiB pages at load (the `hugePages` option): 0 with
     * it off, off Linux, with THP set to `never`, for weights on a GPU and for those read straight from the mapped file.
     */
    hugePageBytes: number;
    contextLengthTrained: number;
    embeddingLength: number;
    layers: number;
    vocabSize: number;
    /** The model's own chat template (Jinja), if it has one. */
    chatTemplate: string | null;
    hasVision: boolean;
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
    readonly loaded: LoadedModel;
    /** @internal The `hugePages` load option (contexts follow it). */
    readonly hugePages: boolean;
    private readonly contexts = new Set<Context>();
    private disposed = false;

    /** @internal */
    constructor(loaded: LoadedModel, placement: Placement, hugePages: boolean) {
        this.loaded = loaded;
        this.hugePages = hugePages;
        this.placement = placement;
        const i = loaded.info;
        this.info = {
            architecture: i.architecture,
            name: i.name,
            description: i.description,
            parameters: i.parameters,
            sizeBytes: i.sizeBytes,
            hugePageBytes: i.hugePageBytes,
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
    const r = resolveOptions(LOAD_OPTIONS, o, { given: "nullish", env: { physicalCores } });
    const { gpuLayers: requestedLayers, signal } = r;
    const { flashAttention, ...projectorOptions } = r.projectorOptions;
    const projectorParams = {
        ...projectorOptions,
        flashAttention: flashAttentionParam(flashAttention),
        hugePages: r.hugePages,
    };
    if (signal?.aborted) throw abortError("Model loading");

    // hf: and URL references become local files here (local paths pass through unread).
    const { model: modelPath, projector: projectorPath } = await resolveModel({
        model: r.model,
        projector: r.projector,
        ...(r.offline !== undefined ? { offline: r.offline } : {}),
        ...(signal ? { signal } : {}),
        ...(r.onDownloadProgress ? { onProgress: r.onDownloadProgress } : {}),
    });
    if (signal?.aborted) throw abortError("Model loading");

    await preflight(modelPath, projectorPath);

    const placement: Placement =
        requestedLayers === "auto"
            ? await fitPlacement(modelPath, r.fitFor)
            : { gpuLayers: requestedLayers, reason: "as requested", devices: [] };
    const backend = r.isolation === "process" ? processBackend : inProcessBackend;
    const loaded = await backend.load(
        {
            model: modelPath,
            projector: projectorPath,
            modelParams: {
                gpuLayers: placement.gpuLayers,
                useMmap: r.useMmap,
                useMlock: r.useMlock,
                vocabOnly: r.vocabOnly,
                hugePages: r.hugePages,
            },
            projectorParams,
        },
        r.onProgress,
        signal,
    );
    return new Model(loaded, placement, r.hugePages);
}
