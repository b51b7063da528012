/**
 * The native addon's shape and the plain data that crosses it, declared once: the floor the rest of lib/ stands on.
 * Imports nothing. Internal except `Timings`, which results carry (re-exported by the public API).
 * @internal
 */

/** Where a request's time went (milliseconds) and how many tokens each phase handled. */
export interface Timings {
    /** Time spent in the vision encoder. */
    imageEncodeMs: number;
    imageTokens: number;
    /** Images served from the projector's cache of encoded images (not encoded again). */
    imageCacheHits: number;
    /** Prompt processing (text and image embeddings into the KV cache), without encoding. */
    promptMs: number;
    /** The part of `promptMs` spent decoding image embeddings into the KV cache (the rest is text). */
    imagePrefillMs: number;
    promptTokens: number;
    generateMs: number;
    /** Output tokens, sampled and forced (`fastForward`) together. */
    generatedTokens: number;
    /** Of `generatedTokens`, the tokens grammar fast-forward wrote without sampling them (0 without `fastForward`). */
    forcedTokens: number;
}

/**
 * What the native sampler builder reads (native/binding/Payload.cc ReadSamplerParams): the fields named here, and one
 * number or boolean per scalar sampling option under the option's own name. The option table (lib/options/sampling.ts)
 * declares those, and its `SamplingPayload` is this type with them spelled out: this leaf imports nothing, so it does
 * not name them. @internal
 */
export interface NativeSampling {
    readonly [scalar: string]: number | boolean | string | readonly (string | number)[] | undefined;
    drySequenceBreakers: string[];
    /** [token, bias, token, bias, …]. */
    logitBias: number[];
    grammar?: string;
    /** Sampler names, in chain order. */
    order: string[];
}

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
    hugePageBytes: number;
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
    load(path: string, params: ModelParams, onProgress: ((progress: number) => void) | null): Promise<void>;
    abortLoad(): void;
    info(): NativeModelInfo;
    tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
    detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string;
    applyChatTemplate(
        messages: { role: string; content: string }[],
        template: string | null,
        addAssistant: boolean,
    ): string;
    dispose(): void;
}

/** @internal */
export interface NativeProjector {
    load(model: NativeModel, path: string, params: ProjectorParams): Promise<void>;
    info(): ProjectorInfo;
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
    warmup: boolean;
    hugePages: boolean;
}

/** @internal */
export interface NativeRequest {
    textParts: string[];
    images: { data: Uint8Array; width: number; height: number; id: string }[];
    addSpecial: boolean;
    /** -1: until the sequence is full; 0: the engine finishes the request (stopReason "length") with no token. */
    maxTokens: number;
    nProbs: number;
    /** Grammar fast-forward; only with `sampling.grammar`. */
    fastForward: boolean;
    /** The engine ends the request before the first of these its output contains (matched on the UTF-8 bytes). */
    stop: string[];
    sampling: NativeSampling;
}

/**
 * What the engine reports of a request, in order: tokens, then one done or error. `bytes` are output released for
 * showing (a token's may be empty while it could be the start of a stop string; done's are what was held back at
 * the end); concatenated, they are the request's text, never any part of a stop string. A `Uint8Array` after
 * crossing the isolation boundary. `stopReason` and `code` are names from the addon's `stopReasons` / `errorCodes`.
 * @internal
 */
export type NativeEvent =
    | {
          id: number;
          type: "token";
          token: number;
          bytes: Uint8Array;
          probs?: { token: number; probability: number }[];
      }
    | {
          id: number;
          type: "done";
          stopReason: string;
          bytes: Uint8Array;
          timings: Timings;
      }
    | { id: number; type: "error"; code: string; message: string };

/** The addon's Context: an EngineContext in this process, initialised with a loaded model. @internal */
export interface NativeContext extends EngineContext {
    init(
        model: NativeModel,
        projector: NativeProjector | null,
        params: NativeContextParams,
        onEvents: (events: NativeEvent[]) => void,
    ): Promise<void>;
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
        sampling: NativeSampling,
        logits: Float32Array,
        history: Int32Array,
        select: boolean,
        model: NativeModel | null,
    ): NativeSamplerResult;
    jsonSchemaToGrammar(schema: string): string;
    /**
     * How many of `text`'s tokens grammar fast-forward would force if a model sampled that text (benchmarks: the
     * forced share of a real output). INVALID_OPTION when the grammar rejects the text.
     */
    replayFastForward(model: NativeModel, grammar: string, text: string): { tokens: number; forced: number };
    /** The engine's stop reasons (native/engine/Finish.h), the names a done event's `stopReason` takes. */
    readonly stopReasons: readonly string[];
    /** The error codes native code raises (native/engine/Errors.h), each a `LlamaVlmErrorCode`. */
    readonly errorCodes: readonly string[];
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

/** How a text model loads (validated by loadModel). @internal */
export interface ModelParams {
    gpuLayers: number;
    useMmap: boolean;
    useMlock: boolean;
    vocabOnly: boolean;
    hugePages: boolean;
}

/** How a projector loads (validated by loadModel). @internal */
export interface ProjectorParams {
    useGpu: boolean;
    threads: number;
    imageMinTokens: number;
    imageMaxTokens: number;
    flashAttention: number;
    imageCacheBytes: number;
    /** The encoder's weights and compute buffer on huge pages (the model's `hugePages` option). */
    hugePages: boolean;
}

/** @internal */
export interface ProjectorInfo {
    supportsVision: boolean;
    usesMrope: boolean;
    marker: string;
}

/** What to load: a text model and optionally its projector. @internal */
export interface LoadSpec {
    model: string;
    projector: string | undefined;
    modelParams: ModelParams;
    projectorParams: ProjectorParams;
}

/** @internal */
export interface EngineContextInfo {
    /** Tokens each sequence holds. */
    contextSize: number;
    totalContextSize: number;
    parallel: number;
    batchSize: number;
}

/** A context's engine (KV cache and decoding threads), wherever it runs. @internal */
export interface EngineContext {
    /** Queues a request; its events follow through the context's `onEvents`. Returns the request's id. */
    submit(request: NativeRequest): number;
    /** Ends a request: it finishes with stopReason "abort" within one decode step. */
    cancel(id: number): void;
    info(): EngineContextInfo;
    /** Keep the process alive while requests run (and let it exit when none do). */
    ref(): void;
    unref(): void;
    /** Frees the context; running requests end with DISPOSED. */
    dispose(): Promise<void>;
    /**
     * Test-only (LLAMA_VLM_TEST_FAULTS=1 where the engine runs): "abort" makes the engine thread abort natively before
     * its next decode; "throw-prepare" / "throw-prefill" make the next request's work in the encoder / decoder stage
     * throw a std::runtime_error (that request fails with NATIVE_ERROR, the engine goes on).
     */
    testFault(kind: TestFault): void;
}

/** A loaded model and its projector, wherever the weights live. @internal */
export interface LoadedModel {
    readonly info: NativeModelInfo;
    readonly projector: ProjectorInfo | null;
    /**
     * The vocabulary in this process, for tokenizer and chat-template calls: the model itself when it loaded here, a
     * vocabulary-only copy when its weights live in an engine process.
     */
    readonly vocab: NativeModel;
    /** A context for generation; `onEvents` receives its requests' events, in order, on this thread. */
    createContext(params: NativeContextParams, onEvents: (events: NativeEvent[]) => void): Promise<EngineContext>;
    /** Frees the model (its contexts are disposed first, by their owner). */
    dispose(): void;
}

/**
 * Where models load and engines run. Two implementations: in this process (backend/in-process.ts, the addon) and in
 * a child process that runs the in-process backend (backend/process.ts and backend/child.ts), so that a native abort
 * ends the child and not the application. `Model` and `Context` talk only to this interface.
 * @internal
 */
export interface Backend {
    /** Loads the model and, with `spec.projector`, its projector. Rejects with ABORTED when `signal` fires. */
    load(spec: LoadSpec, onProgress?: (progress: number) => void, signal?: AbortSignal): Promise<LoadedModel>;
}
