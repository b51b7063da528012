import { randomBytes } from "node:crypto";
import { TextDecoder } from "node:util";
import type { EngineContext, LoadedModel, NativeEvent, Timings } from "./backend/types.js";
import { fromNative, LlamaVlmError } from "./errors.js";
import { type ImageBudget, type ImageInput, type PreparedImage, prepareImage, resolveBudget } from "./images.js";
import { loadNative } from "./native.js";
import type { ChatMessage } from "./request/messages.js";
import { resolveSampling, SAMPLING_ALIASES, SAMPLING_KEYS, type SamplingOptions } from "./sampling.js";
import { physicalCores } from "./system.js";
import {
    checkKnownKeys,
    checkNumber,
    checkObject,
    checkOneOf,
    checkString,
    checkText,
    INT32_MAX,
    invalid,
    MAX_THREADS,
} from "./validate.js";

export type { Timings };

/** KV cache element types. */
export type KvCacheType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_1" | "iq4_nl" | "q5_0" | "q5_1";
const KV_TYPES: Record<KvCacheType, number> = {
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

export interface ContextOptions {
    /** Tokens each sequence can hold (prompt + image tokens + output). Alias: nCtx. Default 4096. */
    contextSize?: number;
    /** Most tokens submitted to one llama_decode (llama.cpp's n_batch). Default 512. */
    batchSize?: number;
    /** Physical micro-batch (llama.cpp's n_ubatch). Default 512. */
    ubatchSize?: number;
    /** Requests decoded together, each in its own sequence. Default 1. */
    parallel?: number;
    /** Threads for generation. Default: physical cores. */
    threads?: number;
    /** Threads for prompt processing. Default: `threads`. */
    threadsBatch?: number;
    /** Flash attention: "auto" (default), true or false. */
    flashAttention?: boolean | "auto";
    /** KV cache type for K and V. Default "f16". */
    kvCacheType?: KvCacheType;
    /** Alias of `contextSize` (the reference pipeline's name). */
    nCtx?: number;
}

/** Every createContext option, for validation and the bad-input corpus. @internal */
export const CONTEXT_KEYS = [
    "contextSize",
    "nCtx",
    "batchSize",
    "ubatchSize",
    "parallel",
    "threads",
    "threadsBatch",
    "flashAttention",
    "kvCacheType",
];

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

/**
 * Why a request ended. The engine decides each (native/engine/Finish.h); test/model/stop-engine.test.ts holds this list
 * equal to the addon's `stopReasons`. @internal
 */
export const STOP_REASONS = ["eos", "stop", "length", "abort", "context"] as const;

export type StopReason = (typeof STOP_REASONS)[number];

export interface TokenProbability {
    token: number;
    probability: number;
}

export interface CompletionResult {
    text: string;
    tokens: number[];
    stopReason: StopReason;
    /** With nProbs > 0: for each generated token, the top-N alternatives. */
    probs?: TokenProbability[][];
    timings: Timings;
}

export interface StreamChunk {
    /** New text (may be empty while a possible stop string is held back). */
    text: string;
    token: number;
    probs?: TokenProbability[];
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
    "imageBudget",
    "signal",
]);

const MEDIA_MARKER = "<__media__>";

/** Lets a stream's consumer stop its request: before submission (closed) or after (cancel). */
interface StreamControl {
    closed: boolean;
    cancel?: () => void;
}

interface Pending {
    /** The engine releases bytes, which may end inside a UTF-8 character: decoded as a stream. */
    decoder: TextDecoder;
    text: string;
    tokens: number[];
    probs: TokenProbability[][] | undefined;
    onChunk: ((chunk: StreamChunk) => void) | undefined;
    resolve: (result: CompletionResult) => void;
    reject: (error: LlamaVlmError) => void;
    cleanup: () => void;
}

/**
 * What a Context uses of the model that creates it. `Model` is its one implementation, and model.ts merges
 * `Model` into this interface, so `context.model` is typed as the whole Model.
 * @internal
 */
export interface ContextModel {
    /** The loaded model, from whichever backend loaded it. */
    readonly loaded: LoadedModel;
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
    private readonly pending = new Map<number, Pending>();
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
        if (o.contextSize !== undefined && o.nCtx !== undefined) {
            throw new LlamaVlmError("INVALID_OPTION", 'Give "contextSize" or its alias "nCtx", not both');
        }
        const threads = checkNumber("threads", o.threads ?? physicalCores(), {
            integer: true,
            min: 1,
            max: MAX_THREADS,
        });
        const flash = o.flashAttention ?? "auto";
        if (flash !== "auto" && typeof flash !== "boolean")
            throw invalid("flashAttention", 'true, false or "auto"', flash);
        const kv = checkOneOf("kvCacheType", o.kvCacheType ?? "f16", Object.keys(KV_TYPES) as KvCacheType[]);
        const params = {
            contextSize: checkNumber("contextSize", o.contextSize ?? o.nCtx ?? 4096, {
                integer: true,
                min: 16,
                max: INT32_MAX,
            }),
            batchSize: checkNumber("batchSize", o.batchSize ?? 512, { integer: true, min: 1, max: INT32_MAX }),
            ubatchSize: checkNumber("ubatchSize", o.ubatchSize ?? 512, { integer: true, min: 1, max: INT32_MAX }),
            parallel: checkNumber("parallel", o.parallel ?? 1, { integer: true, min: 1, max: 256 }),
            threads,
            threadsBatch: checkNumber("threadsBatch", o.threadsBatch ?? threads, {
                integer: true,
                min: 1,
                max: MAX_THREADS,
            }),
            flashAttention: flash === "auto" ? -1 : flash ? 1 : 0,
            typeK: KV_TYPES[kv],
            typeV: KV_TYPES[kv],
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
    stream(request: CompletionRequest): AsyncIterableIterator<StreamChunk> & { result: Promise<CompletionResult> } {
        const queue: StreamChunk[] = [];
        let wake: (() => void) | undefined;
        let finished = false;
        let failure: unknown;
        const control: StreamControl = { closed: false };
        const result = this.run(
            request,
            (chunk) => {
                queue.push(chunk);
                wake?.();
            },
            control,
        ).then(
            (r) => {
                finished = true;
                wake?.();
                return r;
            },
            (err) => {
                finished = true;
                failure = err;
                wake?.();
                throw err;
            },
        );
        result.catch(() => {}); // surfaced through the iterator; `result` rejects for those who await it
        const iterator: AsyncIterableIterator<StreamChunk> & { result: Promise<CompletionResult> } = {
            result,
            async next(): Promise<IteratorResult<StreamChunk>> {
                while (queue.length === 0 && !finished) {
                    await new Promise<void>((r) => {
                        wake = r;
                    });
                    wake = undefined;
                }
                if (queue.length > 0) return { value: queue.shift()!, done: false };
                if (failure !== undefined) throw failure;
                return { value: undefined, done: true };
            },
            async return(): Promise<IteratorResult<StreamChunk>> {
                // The consumer stopped reading (break, return): stop generating too.
                control.closed = true;
                control.cancel?.();
                finished = true;
                return { value: undefined, done: true };
            },
            [Symbol.asyncIterator]() {
                return iterator;
            },
        };
        return iterator;
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
        const budget = resolveBudget(r.imageBudget);
        const signal = r.signal;
        if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalid("signal", "an AbortSignal", signal);
        const { textParts, images } = this.buildPrompt(r);
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
            const prepared: PreparedImage[] = [];
            for (const [i, image] of images.entries()) {
                if (signal?.aborted) throw new LlamaVlmError("ABORTED", "The request was aborted before it started");
                prepared.push(await prepareImage(image, i, budget));
            }
            await previous;
            if (signal?.aborted) throw new LlamaVlmError("ABORTED", "The request was aborted before it started");
            if (this.disposed) throw new LlamaVlmError("DISPOSED", "The context was disposed");
            if (control?.closed) throw new LlamaVlmError("ABORTED", "The stream was closed before the request started");
            // The request is submitted synchronously, in the promise executor, before the finally below lets
            // the next one go.
            return new Promise<CompletionResult>((resolve, reject) => {
                let id: number;
                try {
                    id = this.native.submit({
                        textParts,
                        images: prepared,
                        addSpecial: true,
                        maxTokens,
                        nProbs,
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
                this.pending.set(id, {
                    decoder: new TextDecoder("utf-8"),
                    text: "",
                    tokens: [],
                    probs: nProbs > 0 ? [] : undefined,
                    onChunk,
                    resolve,
                    reject,
                    cleanup: () => signal?.removeEventListener("abort", onAbort),
                });
            });
        } finally {
            submitted();
        }
    }

    /** Renders the prompt and splits it at the images into text parts. */
    private buildPrompt(r: CompletionRequest): { textParts: string[]; images: ImageInput[] } {
        if ((r.prompt === undefined) === (r.messages === undefined)) {
            throw new LlamaVlmError("INVALID_OPTION", 'A request needs exactly one of "prompt" or "messages"');
        }
        if (r.prompt !== undefined) {
            const prompt = checkText("prompt", r.prompt);
            const images = r.images ?? [];
            if (!Array.isArray(images)) throw invalid("images", "an array", images);
            if (prompt.length === 0 && images.length === 0) {
                throw new LlamaVlmError("INVALID_OPTION", 'The "prompt" is empty and the request has no images');
            }
            if (r.chatTemplate !== undefined)
                throw new LlamaVlmError("INVALID_OPTION", '"chatTemplate" applies to "messages", not "prompt"');
            const parts = prompt.split(MEDIA_MARKER);
            if (images.length > 0 && parts.length === 1) {
                return { textParts: [...images.map(() => ""), ...parts], images };
            }
            if (parts.length - 1 !== images.length) {
                throw new LlamaVlmError(
                    "INVALID_OPTION",
                    `The prompt has ${parts.length - 1} image marker(s) ${MEDIA_MARKER} but ${images.length} image(s) were given`,
                );
            }
            return { textParts: parts, images };
        }
        if (r.images !== undefined)
            throw new LlamaVlmError("INVALID_OPTION", 'With "messages", put images in message content, not "images"');
        if (!Array.isArray(r.messages) || r.messages.length === 0)
            throw invalid("messages", "a non-empty array", r.messages);
        // A marker no user text contains, so typed markers never become image slots.
        let marker: string;
        const allText = JSON.stringify(
            r.messages.map((m: unknown) => {
                // Not validated yet (that happens below, message by message): anything may be here.
                const content = (m as { content?: unknown } | null)?.content;
                return Array.isArray(content) ? content.filter((p) => typeof p === "string") : content;
            }),
        );
        do marker = `<__llama_vlm_image_${randomBytes(8).toString("hex")}__>`;
        while (allText.includes(marker));
        const images: ImageInput[] = [];
        const rendered = r.messages.map((m, i) => {
            const msg = checkObject(`messages[${i}]`, m);
            const role = checkOneOf(`messages[${i}].role`, msg.role, ["system", "user", "assistant"] as const);
            const content = msg.content;
            if (typeof content === "string") return { role, content: checkText(`messages[${i}].content`, content) };
            if (!Array.isArray(content))
                throw invalid(`messages[${i}].content`, "a string or an array of parts", content);
            let text = "";
            for (const [k, part] of content.entries()) {
                if (typeof part === "string") text += checkText(`messages[${i}].content[${k}]`, part);
                else if (typeof part === "object" && part !== null && "image" in part) {
                    images.push(part.image);
                    text += marker;
                } else throw invalid(`messages[${i}].content[${k}]`, "a string or { image }", part);
            }
            return { role, content: text };
        });
        const template =
            r.chatTemplate === undefined ? undefined : checkString("chatTemplate", r.chatTemplate, { nonEmpty: true });
        const prompt = this.model.applyChatTemplate(rendered, {
            ...(template ? { template } : {}),
            addAssistant: true,
        });
        const textParts = prompt.split(marker);
        if (textParts.length - 1 !== images.length) {
            throw new LlamaVlmError("INVALID_OPTION", "The chat template dropped or repeated an image position");
        }
        return { textParts, images };
    }

    private onEvents(events: NativeEvent[]): void {
        for (const e of events) {
            const p = this.pending.get(e.id);
            if (p === undefined) continue;
            // The engine finishes requests (stop strings included) and holds back output that could be the start of a
            // stop string: what it releases is shown as is.
            if (e.type === "token") {
                p.tokens.push(e.token);
                const text = p.decoder.decode(e.bytes, { stream: true });
                p.text += text;
                const probs = e.probs?.map((x) => ({ token: x.token, probability: x.probability }));
                if (probs && p.probs) p.probs.push(probs);
                p.onChunk?.({ text, token: e.token, ...(probs ? { probs } : {}) });
            } else if (e.type === "done") {
                const tail = p.decoder.decode(e.bytes);
                if (tail.length > 0) {
                    p.text += tail;
                    p.onChunk?.({ text: tail, token: -1 });
                }
                this.settle(e.id, p);
                p.resolve({
                    text: p.text,
                    tokens: p.tokens,
                    stopReason: e.stopReason as StopReason,
                    ...(p.probs ? { probs: p.probs } : {}),
                    timings: e.timings,
                });
            } else {
                this.settle(e.id, p);
                p.reject(new LlamaVlmError(e.code as LlamaVlmError["code"], e.message));
            }
        }
    }

    private settle(id: number, p: Pending): void {
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
                    p.reject(new LlamaVlmError("DISPOSED", "The context was disposed"));
                }
            });
        }
        return this.disposing;
    }

    async [Symbol.asyncDispose](): Promise<void> {
        await this.dispose();
    }
}
