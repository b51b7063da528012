/** Every error llama-vlm throws or rejects with carries one of these codes. */
export type LlamaVlmErrorCode =
    /** The native addon could not be loaded (no build for this platform, or a missing library). */
    | "NATIVE_LOAD_FAILED"
    /** A file given by path does not exist or is not a regular file. */
    | "FILE_NOT_FOUND"
    /** A model or projector file is not GGUF, is truncated, or is of an unsupported kind. */
    | "INVALID_MODEL"
    /** The projector does not belong to the text model. */
    | "PROJECTOR_MISMATCH"
    /** An image could not be decoded. */
    | "IMAGE_DECODE_FAILED"
    /** A queue job's image (a shared path or URL) no longer has the sha256 it was submitted with. */
    | "IMAGE_CHANGED"
    /** An image exceeds the pixel or token budget and the request asked for an error instead of downscaling. */
    | "OVER_BUDGET"
    /** The prompt (with its images) does not fit the context. */
    | "OVER_CONTEXT"
    /** An option has a wrong name, type or value. */
    | "INVALID_OPTION"
    /** The object was disposed. */
    | "DISPOSED"
    /** The operation was cancelled through its AbortSignal. */
    | "ABORTED"
    /** The engine process of an isolated model (`isolation: "process"`) died while running the request; it restarts for the next one. */
    | "CRASHED"
    /** llama.cpp reported a failure that fits none of the codes above. */
    | "NATIVE_ERROR"
    /** A model reference (`hf:owner/repo…`, a URL) names a repository, revision or file that does not exist or that the token (HF_TOKEN) may not read. */
    | "MODEL_NOT_FOUND"
    /** An `hf:` repository has no file of the quantisation asked for (the message lists those it has). */
    | "QUANT_NOT_FOUND"
    /** An `hf:` repository has no projector (mmproj*.gguf) and none was named. */
    | "PROJECTOR_NOT_FOUND"
    /** A downloaded file did not match the hash the Hub publishes for it, twice. */
    | "CHECKSUM_MISMATCH"
    /** A download failed on the network; what arrived is kept and the next attempt resumes from it. */
    | "NETWORK_ERROR"
    /** The model cache's disk has too little free space for a download. */
    | "NO_SPACE"
    /** Offline (HF_HUB_OFFLINE=1 or `offline: true`) and the reference is not in the model cache. */
    | "NOT_CACHED"
    /** A PDF is encrypted (needs a password); decrypt it first. */
    | "DOCUMENT_ENCRYPTED"
    /** A document (PDF) is truncated or damaged, or its renderer failed or ran past its time limit. */
    | "DOCUMENT_CORRUPT"
    /** A document has more pages than are read (10,000). */
    | "TOO_MANY_PAGES"
    /** A PDF page is larger than 14,400 points (200 inches) on a side. */
    | "PAGE_TOO_LARGE";

/** The one error class of llama-vlm. Switch on `code`; `message` is written for a person. */
export class LlamaVlmError extends Error {
    readonly code: LlamaVlmErrorCode;

    constructor(code: LlamaVlmErrorCode, message: string, options?: { cause?: unknown }) {
        super(message, options);
        this.name = "LlamaVlmError";
        this.code = code;
    }
}

/** Every error code, for code that checks them (the fuzzer). @internal */
export const ERROR_CODES: readonly LlamaVlmErrorCode[] = [
    "NATIVE_LOAD_FAILED",
    "FILE_NOT_FOUND",
    "INVALID_MODEL",
    "PROJECTOR_MISMATCH",
    "IMAGE_DECODE_FAILED",
    "IMAGE_CHANGED",
    "OVER_BUDGET",
    "OVER_CONTEXT",
    "INVALID_OPTION",
    "DISPOSED",
    "ABORTED",
    "CRASHED",
    "NATIVE_ERROR",
    "MODEL_NOT_FOUND",
    "QUANT_NOT_FOUND",
    "PROJECTOR_NOT_FOUND",
    "CHECKSUM_MISMATCH",
    "NETWORK_ERROR",
    "NO_SPACE",
    "NOT_CACHED",
    "DOCUMENT_ENCRYPTED",
    "DOCUMENT_CORRUPT",
    "TOO_MANY_PAGES",
    "PAGE_TOO_LARGE",
];
const CODES = new Set<string>(ERROR_CODES);

/** Turns an error thrown by the native addon (an Error with a string `code`) into a LlamaVlmError. */
export function fromNative(error: unknown): LlamaVlmError {
    if (error instanceof LlamaVlmError) return error;
    const err = error instanceof Error ? error : new Error(String(error));
    const code = (err as { code?: unknown }).code;
    return new LlamaVlmError(
        typeof code === "string" && CODES.has(code) ? (code as LlamaVlmErrorCode) : "NATIVE_ERROR",
        err.message,
        {
            cause: err,
        },
    );
}

/** An error as it crosses a process boundary (the engine process of an isolated model). @internal */
export interface WireError {
    code: string;
    message: string;
}

/** Any thrown value → its code (NATIVE_ERROR when it has none) and message, for the other process. @internal */
export function toWire(error: unknown): WireError {
    const e = fromNative(error);
    return { code: e.code, message: e.message };
}

/** The other process's error, as a LlamaVlmError here. @internal */
export function fromWire(error: WireError): LlamaVlmError {
    return fromNative(Object.assign(new Error(error.message), { code: error.code }));
}
