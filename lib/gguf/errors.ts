/**
 * Why a file is not a GGUF file this package can read:
 * - `GGUF_BAD_MAGIC`: it does not start with "GGUF" (not a GGUF file at all).
 * - `GGUF_UNSUPPORTED_VERSION`: a GGUF version other than 2 or 3.
 * - `GGUF_TRUNCATED`: the file ends before the structure its header describes (header, metadata, tensor
 *   directory or tensor data) does.
 * - `GGUF_INVALID`: the bytes are there but make no sense (unknown value or tensor type, impossible counts or
 *   shapes, duplicate keys or tensor names, misplaced tensor data, bad alignment).
 */
export type GgufFormatErrorCode = "GGUF_BAD_MAGIC" | "GGUF_UNSUPPORTED_VERSION" | "GGUF_TRUNCATED" | "GGUF_INVALID";

/** A malformed GGUF file. `offset` is the file offset where the problem was found, when known. */
export class GgufFormatError extends Error {
    override readonly name = "GgufFormatError";
    readonly code: GgufFormatErrorCode;
    readonly path: string | undefined;
    readonly offset: number | undefined;

    constructor(code: GgufFormatErrorCode, message: string, options: { path?: string; offset?: number } = {}) {
        const where = [options.path, options.offset === undefined ? undefined : `offset ${options.offset}`]
            .filter((s) => s !== undefined)
            .join(" at ");
        super(where ? `${message} (${where})` : message);
        this.code = code;
        this.path = options.path;
        this.offset = options.offset;
    }
}
