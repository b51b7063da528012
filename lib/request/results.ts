/** A request's results: the public result types, and the engine's events for one request → its chunks and result. */
import type { NativeEvent, Timings } from "../backend/types.js";
import { LlamaVlmError, type LlamaVlmErrorCode } from "../errors.js";

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
    /**
     * The size of each image as the encoder got it (after rendering and the image budget), in prompt order;
     * `dpi` for a rendered PDF page.
     */
    images?: Array<{ width: number; height: number; dpi?: number }>;
}

export interface StreamChunk {
    /** New text (may be empty while a possible stop string is held back). */
    text: string;
    token: number;
    probs?: TokenProbability[];
}

/**
 * One submitted request, from its first event to its last. The engine releases the output's bytes (holding back any
 * that could start a stop string), which may end inside a UTF-8 character: they are decoded as a stream.
 */
export class PendingRequest {
    private readonly decoder = new TextDecoder("utf-8");
    private text = "";
    private readonly tokens: number[] = [];
    private readonly probs: TokenProbability[][] | undefined;

    constructor(
        withProbs: boolean,
        private readonly onChunk: ((chunk: StreamChunk) => void) | undefined,
        private readonly resolve: (result: CompletionResult) => void,
        private readonly reject: (error: LlamaVlmError) => void,
        /** Run once the request has settled (removes its abort listener). */
        readonly cleanup: () => void,
    ) {
        this.probs = withProbs ? [] : undefined;
    }

    /** Takes one of the request's events; true when it was the last (the request has settled). */
    apply(e: NativeEvent): boolean {
        if (e.type === "token") {
            this.tokens.push(e.token);
            const text = this.decoder.decode(e.bytes, { stream: true });
            this.text += text;
            const probs = e.probs?.map((x) => ({ token: x.token, probability: x.probability }));
            if (probs && this.probs) this.probs.push(probs);
            this.onChunk?.({ text, token: e.token, ...(probs ? { probs } : {}) });
            return false;
        }
        if (e.type === "done") {
            const tail = this.decoder.decode(e.bytes);
            if (tail.length > 0) {
                this.text += tail;
                this.onChunk?.({ text: tail, token: -1 });
            }
            this.resolve({
                text: this.text,
                tokens: this.tokens,
                stopReason: e.stopReason as StopReason,
                ...(this.probs ? { probs: this.probs } : {}),
                timings: e.timings,
            });
            return true;
        }
        this.fail(new LlamaVlmError(e.code as LlamaVlmErrorCode, e.message));
        return true;
    }

    fail(error: LlamaVlmError): void {
        this.reject(error);
    }
}
