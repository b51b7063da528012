/**
 * What a queue job carries and how it is named: a reference to one image that every worker can read (a path on a
 * shared filesystem, an http(s) URL, or the bytes themselves below INLINE_LIMIT) with the image's sha256 (for a
 * document, the page the job reads), and the extraction settings. The job id is the content hash of (image bytes, settings), so a corpus submitted twice adds
 * nothing. Failures cross Redis as "CODE: message" reasons.
 */
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import { LlamaVlmError, type LlamaVlmErrorCode } from "../errors.js";
import type { ExtractLine, ExtractSettings } from "../extraction.js";

/** Largest image carried inside a job (in Redis) rather than by reference: 64 KiB. */
export const INLINE_LIMIT = 64 * 1024;

/** Where a worker finds a job's image. */
export type ImageSource =
    | { readonly kind: "path"; readonly path: string }
    | { readonly kind: "url"; readonly url: string }
    | { readonly kind: "inline"; readonly base64: string };

/** A job's data in Redis. */
export interface JobData {
    /** Layout version of this object. */
    readonly v: 1;
    /** The name results give the image (`file` of its line): the absolute path, the URL, or the given name. */
    readonly file: string;
    readonly source: ImageSource;
    /** Hex sha256 of the image bytes the job was submitted with; a worker checks it before inference. */
    readonly sha256: string;
    readonly settings: ExtractSettings;
    /** Documents (a PDF, a TIFF/GIF/WebP with several pages): the page this job reads (1-based)... */
    readonly page?: number;
    /** ...and how many pages the document has. */
    readonly pages?: number;
}

/** A finished job's return value in Redis: its result line. */
export type JobResult = ExtractLine;

/** JSON with object keys sorted, at every depth: equal values give equal text. */
export function canonicalJson(value: unknown): string {
    return JSON.stringify(value, (_, v: unknown) =>
        v !== null && typeof v === "object" && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
            : v,
    );
}

/** The job id: sha256 of the image's hash and the canonical settings (and, for a document's page, the page). */
export function jobIdOf(imageSha256: string, settings: ExtractSettings, page?: number): string {
    return createHash("sha256")
        .update(
            `llama-vlm job v1\n${imageSha256}\n${canonicalJson(settings)}${page === undefined ? "" : `\npage ${page}`}`,
        )
        .digest("hex");
}

export function sha256Of(bytes: Uint8Array): string {
    return createHash("sha256").update(bytes).digest("hex");
}

/** A failure as BullMQ stores it (the error's message): "CODE: message". */
export function failureReason(code: string, message: string): string {
    return `${code}: ${message}`;
}

/**
 * A stored failure reason back into its code and message. Reasons BullMQ writes itself: a job whose workers kept
 * dying ("job stalled more than allowable limit") is CRASHED, any other NATIVE_ERROR.
 */
export function parseFailure(reason: string | undefined): { code: string; message: string } {
    const m = /^([A-Z][A-Z_]+): ([\s\S]*)$/.exec(reason ?? "");
    if (m) return { code: m[1]!, message: m[2]! };
    const message = reason || "unknown failure";
    return { code: /stalled/i.test(message) ? "CRASHED" : "NATIVE_ERROR", message };
}

/**
 * Error codes that fail a job for good: the same input would fail the same way on any worker. The others (CRASHED,
 * DISPOSED, a network or server error fetching a URL) are retried with backoff.
 */
export const PERMANENT_CODES: ReadonlySet<string> = new Set<LlamaVlmErrorCode | "INVALID_OUTPUT">([
    "FILE_NOT_FOUND",
    "IMAGE_CHANGED",
    "IMAGE_DECODE_FAILED",
    "DOCUMENT_ENCRYPTED",
    "DOCUMENT_CORRUPT",
    "TOO_MANY_PAGES",
    "PAGE_TOO_LARGE",
    "OVER_BUDGET",
    "OVER_CONTEXT",
    "INVALID_OPTION",
    "INVALID_MODEL",
    "PROJECTOR_MISMATCH",
    "NATIVE_ERROR",
]);

/** A transient failure: retried with backoff. */
export class TransientError extends Error {
    constructor(
        readonly code: string,
        message: string,
    ) {
        super(message);
        this.name = "TransientError";
    }
}

/**
 * Reads a job's image and checks its hash: FILE_NOT_FOUND for a missing file or an HTTP 404/410, IMAGE_CHANGED when
 * the bytes are not the ones submitted; a network failure or another HTTP error is a TransientError.
 */
export async function readJobImage(data: JobData, options: { fetchTimeoutMs?: number } = {}): Promise<Buffer> {
    const source = data.source;
    let bytes: Buffer;
    if (source.kind === "inline") bytes = Buffer.from(source.base64, "base64");
    else if (source.kind === "path") {
        try {
            bytes = await fs.readFile(source.path);
        } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") {
                throw new LlamaVlmError(
                    "FILE_NOT_FOUND",
                    `The job's image ${source.path} is not on this worker's filesystem (${code}): is the shared storage mounted at the same path?`,
                );
            }
            throw new TransientError("FILE_NOT_FOUND", `Could not read ${source.path}: ${(err as Error).message}`);
        }
    } else {
        let response: Response;
        try {
            response = await fetch(source.url, { signal: AbortSignal.timeout(options.fetchTimeoutMs ?? 60_000) });
        } catch (err) {
            throw new TransientError("FILE_NOT_FOUND", `Could not fetch ${source.url}: ${(err as Error).message}`);
        }
        if (response.status === 404 || response.status === 410) {
            throw new LlamaVlmError("FILE_NOT_FOUND", `${source.url} answered HTTP ${response.status}`);
        }
        if (!response.ok) {
            throw new TransientError("FILE_NOT_FOUND", `${source.url} answered HTTP ${response.status}`);
        }
        bytes = Buffer.from(await response.arrayBuffer());
    }
    const actual = sha256Of(bytes);
    if (actual !== data.sha256) {
        throw new LlamaVlmError(
            "IMAGE_CHANGED",
            `${data.file} changed after it was submitted (sha256 ${actual.slice(0, 12)}…, submitted as ${data.sha256.slice(0, 12)}…): submit it again`,
        );
    }
    return bytes;
}
