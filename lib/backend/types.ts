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
    promptTokens: number;
    generateMs: number;
    generatedTokens: number;
}

/** What the native sampler builder reads (native/Sampler.cc ReadSamplerParams). @internal */
export interface NativeSampling {
    temperature: number;
    dynatempRange: number;
    dynatempExponent: number;
    topK: number;
    topP: number;
    minP: number;
    typicalP: number;
    tfsZ: number;
    minKeep: number;
    repeatPenalty: number;
    repeatLastN: number;
    frequencyPenalty: number;
    presencePenalty: number;
    penalizeNewline: boolean;
    dryMultiplier: number;
    dryBase: number;
    dryAllowedLength: number;
    dryPenaltyLastN: number;
    drySequenceBreakers: string[];
    xtcProbability: number;
    xtcThreshold: number;
    topNSigma: number;
    mirostat: number;
    mirostatTau: number;
    mirostatEta: number;
    logitBias: number[];
    grammar?: string;
    seed: number;
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
    sampling: NativeSampling;
}

/** @internal */
export type NativeEvent =
    | { id: number; type: "token"; token: number; bytes: Buffer; probs?: { token: number; probability: number }[] }
    | {
          id: number;
          type: "done";
          stopReason: string;
          timings: Timings;
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
        sampling: NativeSampling,
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
