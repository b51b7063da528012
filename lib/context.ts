import type { EngineContext, LoadedModel, NativeEvent, Timings } from "./backend/types.js";
import { fromNative, LlamaVlmError } from "./errors.js";
import { type ImageBudget, type ImageInput, type PreparedImage, prepareImage, resolveBudget } from "./images.js";
import { loadNative } from "./native.js";
import {
    CONTEXT_KEYS,
    CONTEXT_OPTIONS,
    type ContextOptions,
    flashAttentionParam,
    KV_TYPES,
    type KvCacheType,
} from "./options/context.js";
import { resolveOptions } from "./options/table.js";
import type { ChatMessage } from "./request/messages.js";
import { buildPrompt } from "./request/prompt.js";
import {
    type CompletionResult,
    PendingRequest,
    STOP_REASONS,
    type StopReason,
    type StreamChunk,
    type TokenProbability,
} from "./request/results.js";
import { type CompletionStream, type StreamControl, streamFrom } from "./request/stream.js";
import {
    checkFastForward,
    resolveSampling,
    SAMPLING_ALIASES,
    SAMPLING_KEYS,
    type SamplingOptions,
} from "./sampling.js";
import { physicalCores } from "./system.js";
import { checkKnownKeys, checkNumber, checkObject, checkString, INT32_MAX, invalid } from "./validate.js";

export type { Timings };
// The createContext options are described once, in lib/options/context.ts.
export {
    CONTEXT_KEYS,
    type CompletionResult,
    type CompletionStream,
    type ContextOptions,
    type KvCacheType,
    STOP_REASONS,
    type StopReason,
    type StreamChunk,
    type TokenProbability,
};

/** One generation request. Give `prompt` (raw text) or `messages` (rendered with a chat template). */
export interface CompletionRequest extends SamplingOptions {
    /**
     * Raw prompt text, used as is (no chat template). Images go where the prompt has mtmd's marker
     * `<__media__>`, in order; with no marker they go first.
     */
    prompt?: string;
    /** Chat messages; images go where their content parts put them. */
    messages?: ChatMessage[];
    /** Images for `prompt`. */
    images?: ImageInput[];
    /** Chat template for `messages`: the model's own (default), a llama.cpp name such as "vicuna", or Jinja source. */
    chatTemplate?: string;
    /** Most tokens to generate; -1 = until the context is full. Alias: nPredict. Default -1. */
    maxTokens?: number;
    /** Stop strings, matched exactly as given across token boundaries. Alias: stopStrings. */
    stop?: string[];
    /**
     * Top-N token probabilities per generated token, of the distribution the token was drawn from: the
     * candidates the sampler chain kept (grammar, logit bias, top-k/p… applied), renormalised. Default 0.
     */
    nProbs?: number;
    /**
     * Grammar fast-forward (needs `grammar` or `jsonSchema`): where the grammar leaves only one way on (a JSON key, a
     * quote, the rest of an enum value), the engine tokenises that text and decodes its tokens together with the next
     * step's instead of sampling them one by one. They count in `generatedTokens` and `maxTokens`, stop strings see
     * them, penalties count them, and with `nProbs` each has itself with probability 1; `timings.forcedTokens` says
     * how many there were. A token that is the only one the grammar allows is forced exactly as sampling would pick it;
     * longer forced text is split as the tokenizer splits it, where sampling could have picked other boundaries.
     * Default false.
     */
    fastForward?: boolean;
    /** Image size limits. */
    imageBudget?: ImageBudget;
    /** Cancels the request: a running one settles with stopReason "abort"; one not started yet rejects with ABORTED. */
    signal?: AbortSignal;
    /** Alias of `maxTokens` (the reference pipeline's name). */
    nPredict?: number;
    /** Alias of `stop` (the reference pipeline's name). */
    stopStrings?: string[];
    /** Alias of `penalizeNewline` (the reference pipeline's name). */
    penalizeNl?: boolean;
}

/** Every request option, sampling options and aliases included. @internal */
export const REQUEST_KEYS: ReadonlySet<string> = new Set<string>([
    ...SAMPLING_KEYS,
    ...Object.keys(SAMPLING_ALIASES),
    "prompt",
    "messages",
    "images",
    "chatTemplate",
    "maxTokens",
    "nPredict",
    "stop",
    "stopStrings",
    "nProbs",
    "fastForward",
    "imageBudget",
    "signal",
]);

/**
 * What a Context uses of the model that creates it. `Model` is its one implementation, and model.ts merges
 * `Model` into this interface, so `context.model` is typed as the whole Model.
 * @internal
 */
export interface ContextModel {
    /** The loaded model, from whichever backend loaded it. */
    readonly loaded: LoadedModel;
    /** The model's `hugePages` load option: the context's KV cache and compute buffers follow it. */
    readonly hugePages: boolean;
    applyChatTemplate(
        messages: readonly { role: string; content: string }[],
        options?: { template?: string; addAssistant?: boolean },
    ): string;
    forgetContext(context: Context): void;
}

/** A generation context: KV cache for `parallel` sequences and the engine thread that decodes them together. */
export class Context {
    /** The model this context belongs to. */
    readonly model: ContextModel;
    /** Tokens each sequence holds. */
    readonly contextSize: number;
    readonly parallel: number;
    private readonly native: EngineContext;
    private readonly vocabSize: number;
    private readonly pending = new Map<number, PendingRequest>();
    /** Settles when the request made last has been submitted or has failed: requests start in call order. */
    private lastSubmitted: Promise<void> = Promise.resolve();
    private disposed = false;
    private disposing: Promise<void> | undefined;

    private constructor(model: ContextModel, native: EngineContext, info: { contextSize: number; parallel: number }) {
        this.model = model;
        this.native = native;
        this.vocabSize = model.loaded.info.vocabSize;
        this.contextSize = info.contextSize;
        this.parallel = info.parallel;
    }

    /** @internal */
    static async create(model: ContextModel, options: ContextOptions): Promise<Context> {
        const o = checkObject("options", options) as ContextOptions;
        checkKnownKeys("createContext options", o, CONTEXT_KEYS);
        const { flashAttention, kvCacheType, ...sizes } = resolveOptions(CONTEXT_OPTIONS, o, {
            given: "nullish",
            env: { physicalCores },
        });
        const params = {
            ...sizes,
            flashAttention: flashAttentionParam(flashAttention),
            typeK: KV_TYPES[kvCacheType],
            typeV: KV_TYPES[kvCacheType],
            hugePages: model.hugePages,
        };
        // llama.cpp sizes the whole KV cache (contextSize × parallel cells) in 32 bits.
        if (params.contextSize * params.parallel > INT32_MAX) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `contextSize × parallel = ${params.contextSize} × ${params.parallel} is over the ${INT32_MAX} cells llama.cpp can address`,
            );
        }
        let context: Context | undefined;
        const native = await model.loaded.createContext(params, (events) => context?.onEvents(events));
        const info = native.info();
        context = new Context(model, native, { contextSize: info.contextSize, parallel: info.parallel });
        return context;
    }

    /** Generates a completion. */
    async complete(request: CompletionRequest): Promise<CompletionResult> {
        return this.run(request, undefined);
    }

    /**
     * Streams a completion: an async iterator of chunks. Concatenated chunk texts equal the final text;
     * `result` resolves with the whole result when the stream ends.
     */
    stream(request: CompletionRequest): CompletionStream {
        return streamFrom((onChunk, control) => this.run(request, onChunk, control));
    }

    /**
     * Runs many requests through the context's `parallel` sequences; results come back in input order,
     * each a result or the error that request met. `onProgress(done, total)` follows completions.
     */
    async completeBatch(
        requests: readonly CompletionRequest[],
        options: { onProgress?: (done: number, total: number) => void; signal?: AbortSignal } = {},
    ): Promise<Array<CompletionResult | LlamaVlmError>> {
        if (!Array.isArray(requests)) throw invalid("requests", "an array of requests", requests);
        let done = 0;
        return Promise.all(
            requests.map((r) =>
                this.complete(
                    options.signal && typeof r === "object" && r !== null && !r.signal
                        ? { ...r, signal: options.signal }
                        : r,
                ).then(
                    (result) => {
                        options.onProgress?.(++done, requests.length);
                        return result;
                    },
                    (err: unknown) => {
                        options.onProgress?.(++done, requests.length);
                        return fromNative(err);
                    },
                ),
            ),
        );
    }

    private async run(
        request: CompletionRequest,
        onChunk: ((chunk: StreamChunk) => void) | undefined,
        control?: StreamControl,
    ) {
        if (this.disposed) throw new LlamaVlmError("DISPOSED", "The context was disposed");
        const r = checkObject("request", request) as CompletionRequest & Record<string, unknown>;
        checkKnownKeys("the request", r, REQUEST_KEYS);
        const sampling: SamplingOptions = {};
        for (const key of SAMPLING_KEYS) if (r[key] !== undefined) (sampling as Record<string, unknown>)[key] = r[key];
        for (const [alias, name] of Object.entries(SAMPLING_ALIASES)) {
            if (r[alias] === undefined) continue;
            if (r[name] !== undefined)
                throw new LlamaVlmError("INVALID_OPTION", `Give "${name}" or its alias "${alias}", not both`);
            (sampling as Record<string, unknown>)[name] = r[alias];
        }
        const pick = (name: string, alias: string) => {
            if (r[name] !== undefined && r[alias] !== undefined) {
                throw new LlamaVlmError("INVALID_OPTION", `Give "${name}" or its alias "${alias}", not both`);
            }
            return r[name] ?? r[alias];
        };
        // Past INT32_MAX (which the engine takes) a limit means the same as INT32_MAX: until the context is full.
        const maxTokens = Math.min(
            checkNumber("maxTokens", pick("maxTokens", "nPredict") ?? -1, { integer: true, min: -1 }),
            INT32_MAX,
        );
        const stopList = pick("stop", "stopStrings") ?? [];
        if (!Array.isArray(stopList)) throw invalid("stop", "an array of strings", stopList);
        const stops = stopList.map((s, i) => checkString(`stop[${i}]`, s, { nonEmpty: true }));
        const nProbs = checkNumber("nProbs", r.nProbs ?? 0, { integer: true, min: 0, max: 1000 });
        const native = loadNative();
        const resolved = resolveSampling(sampling, {
            contextSize: this.contextSize,
            vocabSize: this.vocabSize,
            schemaToGrammar: (schema) => native.jsonSchemaToGrammar(schema),
        });
        const fastForward = checkFastForward(r.fastForward, resolved);
        const budget = resolveBudget(r.imageBudget);
        const signal = r.signal;
        if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalid("signal", "an AbortSignal", signal);
        const { textParts, images } = buildPrompt(r, (messages, options) =>
            this.model.applyChatTemplate(messages, options),
        );
        if (images.length > 0 && this.model.loaded.projector === null) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                "The request has images but the model was loaded without a projector",
            );
        }
        // Every image takes at least one token: a prompt with more images than the context has cells is refused
        // before any is decoded (the engine checks the exact count after preprocessing, before encoding).
        if (images.length >= this.contextSize) {
            throw new LlamaVlmError(
                "OVER_CONTEXT",
                `The request has ${images.length} images but a sequence holds ${this.contextSize} tokens, and each image takes at least one`,
            );
        }
        // Images are prepared concurrently, but a request is submitted only after the one made before it, so
        // that requests reach the engine (and start) in the order they were made, not in the order their
        // images finished decoding.
        const previous = this.lastSubmitted;
        let submitted!: () => void;
        this.lastSubmitted = new Promise<void>((done) => {
            submitted = done;
        });
        try {
            // One image ahead: the next image (a PDF page renders in its own thread) is prepared while sharp
            // processes the current one.
            const prepared: PreparedImage[] = [];
            const start = (i: number) => {
                const p = prepareImage(images[i]!, i, budget);
                p.catch(() => undefined); // observed below, or dropped with the request when an earlier one fails
                return p;
            };
            let ahead = images.length > 0 ? start(0) : undefined;
            for (let i = 0; i < images.length; i++) {
                if (signal?.aborted) throw new LlamaVlmError("ABORTED", "The request was aborted before it started");
                const current = ahead!;
                ahead = i + 1 < images.length ? start(i + 1) : undefined;
                prepared.push(await current);
            }
            await previous;
            if (signal?.aborted) throw new LlamaVlmError("ABORTED", "The request was aborted before it started");
            if (this.disposed) throw new LlamaVlmError("DISPOSED", "The context was disposed");
            if (control?.closed) throw new LlamaVlmError("ABORTED", "The stream was closed before the request started");
            // The request is submitted synchronously, in the promise executor, before the finally below lets
            // the next one go.
            const sizes = prepared.map((p) => ({
                width: p.width,
                height: p.height,
                ...(p.dpi !== undefined ? { dpi: p.dpi } : {}),
            }));
            return new Promise<CompletionResult>((resolve, reject) => {
                const settleWithSizes = (result: CompletionResult) =>
                    resolve(sizes.length > 0 ? { ...result, images: sizes } : result);
                let id: number;
                try {
                    id = this.native.submit({
                        textParts,
                        images: prepared,
                        addSpecial: true,
                        maxTokens,
                        nProbs,
                        fastForward,
                        stop: stops,
                        sampling: resolved,
                    });
                } catch (err) {
                    reject(fromNative(err));
                    return;
                }
                const onAbort = () => this.native.cancel(id);
                signal?.addEventListener("abort", onAbort, { once: true });
                if (control) control.cancel = onAbort;
                if (this.pending.size === 0) this.native.ref();
                this.pending.set(
                    id,
                    new PendingRequest(nProbs > 0, onChunk, settleWithSizes, reject, () =>
                        signal?.removeEventListener("abort", onAbort),
                    ),
                );
            });
        } finally {
            submitted();
        }
    }

    private onEvents(events: NativeEvent[]): void {
        for (const e of events) {
            const p = this.pending.get(e.id);
            if (p?.apply(e)) this.settle(e.id, p);
        }
    }

    private settle(id: number, p: PendingRequest): void {
        p.cleanup();
        this.pending.delete(id);
        if (this.pending.size === 0 && !this.disposed) this.native.unref();
    }

    /** Stops the engine; running and queued requests reject with DISPOSED. Idempotent. */
    dispose(): Promise<void> {
        if (!this.disposing) {
            this.disposed = true;
            this.model.forgetContext(this);
            this.disposing = this.native.dispose().then(() => {
                for (const [id, p] of this.pending) {
                    this.settle(id, p);
                    p.fail(new LlamaVlmError("DISPOSED", "The context was disposed"));
                }
            });
        }
        return this.disposing;
    }

    async [Symbol.asyncDispose](): Promise<void> {
        await this.dispose();
    }
}
