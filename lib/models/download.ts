/**
 * One verified, resumable download into the model cache.
 *
 * - Bytes go to `<dest>.part`; `<dest>` appears (by rename) only once the whole file is there and verified: by
 *   the sha256 the Hub publishes for LFS files, by the git blob id for small files, by size (and ETag, through
 *   If-Range) for a plain URL, which publishes no hash.
 * - A `.part` left by an interrupted download (network failure, abort, a killed process) is resumed with an HTTP
 *   range request; what is already there is hashed first.
 * - `<dest>.lock`, created exclusively, holds the process writing the file: another process asking for the same
 *   file waits for it and then uses its result; a lock whose process is gone is taken over.
 * - A checksum mismatch deletes the partial and downloads once more; a second mismatch is CHECKSUM_MISMATCH.
 * - Free space on the cache's disk is checked before the first byte.
 */
import { createHash, type Hash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { LlamaVlmError } from "../errors.js";
import { fileSize } from "./cache.js";
import { networkError } from "./hub.js";

/** What `onProgress` is called with while a file downloads. */
export interface DownloadProgress {
    /** The file's name (its path in the repository, or the URL's file name). */
    file: string;
    /** Where it goes in the cache. */
    path: string;
    /** Bytes on disk so far, a resumed partial's included. */
    downloaded: number;
    /** The file's size, when known. */
    total: number | undefined;
    /** Bytes that were already on disk from an earlier, interrupted download. */
    resumedFrom: number;
}

export interface DownloadSpec {
    url: string;
    dest: string;
    /** What messages and progress call the file. */
    label: string;
    size?: number;
    sha256?: string;
    /** Git blob id (sha1 of "blob <size>\0" + content): what the Hub publishes for files not in LFS. */
    gitOid?: string;
    /** Sent as If-Range when resuming, so a file that changed on the server is downloaded from the start. */
    etag?: string;
    headers?: Record<string, string>;
    /** How to name the file in an error message (`hf:owner/repo/file`). */
    ref: string;
}

export interface DownloadOptions {
    signal?: AbortSignal;
    onProgress?: (progress: DownloadProgress) => void;
}

/** Resumes after a network failure within one call before giving up with NETWORK_ERROR. */
const NETWORK_RETRIES = 3;
const LOCK_POLL_MS = 200;

function aborted(spec: DownloadSpec, kept: number): LlamaVlmError {
    return new LlamaVlmError(
        "ABORTED",
        `The download of ${spec.ref} was aborted${kept > 0 ? `; ${kept} bytes are kept in ${spec.dest}.part and the next download resumes from there` : ""}`,
    );
}

function processAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}

/**
 * Takes `<dest>.lock`; resolves with undefined when, while waiting, another process finished the file. While it
 * waits, `onWait` gets the size of the other process's partial.
 */
async function lock(
    spec: DownloadSpec,
    signal: AbortSignal | undefined,
    onWait: (bytes: number) => void,
): Promise<(() => Promise<void>) | undefined> {
    const file = `${spec.dest}.lock`;
    for (;;) {
        if (signal?.aborted) throw aborted(spec, (await fileSize(`${spec.dest}.part`)) ?? 0);
        try {
            const handle = await fs.open(file, "wx");
            await handle.writeFile(`${process.pid}\n`);
            await handle.close();
            return () => fs.rm(file, { force: true });
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        }
        if (await complete(spec)) return undefined;
        const text = await fs.readFile(file, "utf8").catch(() => "");
        const pid = Number.parseInt(text, 10);
        if (Number.isInteger(pid) && pid > 0 && !processAlive(pid)) {
            // Its process is gone (killed mid-download): its partial is resumed by whoever takes the lock.
            await fs.rm(file, { force: true });
            continue;
        }
        if (text === "") {
            // Created but not yet written: give its writer a moment, then treat an empty lock older than 10 s as stale.
            const age = await fs.stat(file).then(
                (s) => Date.now() - s.mtimeMs,
                () => 0,
            );
            if (age > 10_000) await fs.rm(file, { force: true });
        }
        onWait((await fileSize(`${spec.dest}.part`)) ?? 0);
        await sleep(LOCK_POLL_MS, undefined, signal ? { signal } : {}).catch(() => {});
    }
}

/** True when the verified file is at its final path (with the expected size, when known). */
export async function complete(spec: Pick<DownloadSpec, "dest" | "size">): Promise<boolean> {
    const size = await fileSize(spec.dest);
    return size !== undefined && (spec.size === undefined || size === spec.size);
}

async function checkSpace(spec: DownloadSpec, needed: number): Promise<void> {
    if (needed <= 0) return;
    let free: number;
    try {
        const s = await fs.statfs(path.dirname(spec.dest));
        free = s.bavail * s.bsize;
    } catch {
        return; // statfs is not available on every filesystem; the write itself will say ENOSPC.
    }
    if (free < needed) throw noSpace(spec, needed, free);
}

function noSpace(spec: DownloadSpec, needed: number, free?: number): LlamaVlmError {
    const dir = path.dirname(spec.dest);
    return new LlamaVlmError(
        "NO_SPACE",
        `No space for ${spec.ref}: it needs ${needed} more bytes${free !== undefined ? `, ${dir} has ${free} free` : ` in ${dir}`}. Free some space, or set LLAMA_VLM_MODELS to a folder on a larger disk`,
    );
}

function newHash(spec: DownloadSpec): { hash: Hash; expected: string; kind: string } | undefined {
    if (spec.sha256) return { hash: createHash("sha256"), expected: spec.sha256.toLowerCase(), kind: "sha256" };
    if (spec.gitOid && spec.size !== undefined) {
        const hash = createHash("sha1");
        hash.update(`blob ${spec.size}\0`);
        return { hash, expected: spec.gitOid.toLowerCase(), kind: "git blob id" };
    }
    return undefined;
}

class Retry extends Error {}

/**
 * Makes `spec.dest` a verified copy of `spec.url`. Resolves with true when this call downloaded bytes, false when
 * the file was already there (or another process finished it meanwhile).
 */
export async function download(spec: DownloadSpec, options: DownloadOptions = {}): Promise<boolean> {
    const { signal } = options;
    if (await complete(spec)) return false;
    await fs.mkdir(path.dirname(spec.dest), { recursive: true });
    const release = await lock(spec, signal, (bytes) =>
        options.onProgress?.({
            file: spec.label,
            path: spec.dest,
            downloaded: bytes,
            total: spec.size,
            resumedFrom: 0,
        }),
    );
    if (release === undefined) return false;
    try {
        if (await complete(spec)) return false;
        let mismatches = 0;
        let failures = 0;
        for (;;) {
            try {
                await attempt(spec, options);
                return true;
            } catch (error) {
                if (error instanceof Retry) {
                    if (error.message === "checksum") {
                        mismatches++;
                        if (mismatches > 1) {
                            throw new LlamaVlmError(
                                "CHECKSUM_MISMATCH",
                                `${spec.ref} did not match its published hash twice (downloaded from ${new URL(spec.url).origin}); the download was deleted. The server or a proxy is changing the bytes: retry later or from another network`,
                            );
                        }
                    } else {
                        failures++;
                        if (failures > NETWORK_RETRIES) throw (error as Retry & { final: LlamaVlmError }).final;
                        await sleep(250 * failures, undefined, signal ? { signal } : {}).catch(() => {});
                    }
                    continue;
                }
                throw error;
            }
        }
    } finally {
        await release();
    }
}

async function attempt(spec: DownloadSpec, options: DownloadOptions): Promise<void> {
    const { signal, onProgress } = options;
    const part = `${spec.dest}.part`;
    let start = (await fileSize(part)) ?? 0;
    if (spec.size !== undefined && start > spec.size) {
        await fs.rm(part, { force: true });
        start = 0;
    }
    const verify = newHash(spec);
    if (start > 0 && verify) {
        const handle = await fs.open(part, "r");
        try {
            for await (const chunk of handle.readableWebStream({ type: "bytes" }) as AsyncIterable<Uint8Array>)
                verify.hash.update(chunk);
        } finally {
            await handle.close();
        }
    }
    if (spec.size !== undefined) await checkSpace(spec, spec.size - start);
    if (signal?.aborted) throw aborted(spec, start);

    const headers: Record<string, string> = { ...spec.headers, "accept-encoding": "identity" };
    const whole = spec.size !== undefined && start === spec.size;
    if (start > 0 && !whole) {
        headers.range = `bytes=${start}-`;
        if (spec.etag && !spec.etag.startsWith("W/")) headers["if-range"] = spec.etag;
    }
    let written = start;
    const report = () =>
        onProgress?.({ file: spec.label, path: spec.dest, downloaded: written, total: spec.size, resumedFrom: start });
    const networkRetry = (error: unknown) => {
        if (signal?.aborted) return aborted(spec, written);
        const final = networkError(`Downloading ${spec.ref}`, error);
        final.message += written > 0 ? `; ${written} bytes are kept and the next download resumes from there` : "";
        return Object.assign(new Retry("network"), { final });
    };

    if (!whole) {
        let response: Response;
        try {
            response = await fetch(spec.url, { headers, redirect: "follow", ...(signal ? { signal } : {}) });
        } catch (error) {
            throw networkRetry(error);
        }
        if (response.status >= 400) {
            await response.body?.cancel();
            const err = new LlamaVlmError(
                response.status === 404 || response.status === 401 || response.status === 403
                    ? "MODEL_NOT_FOUND"
                    : "NETWORK_ERROR",
                `Downloading ${spec.ref}: the server answered HTTP ${response.status}`,
            );
            if (err.code === "NETWORK_ERROR" && response.status >= 500)
                throw Object.assign(new Retry("network"), { final: err });
            throw err;
        } else {
            let append = response.status === 206 && start > 0;
            if (append) {
                const range = /^bytes (\d+)-/.exec(response.headers.get("content-range") ?? "");
                if (!range || Number(range[1]) !== start) append = false;
            }
            if (!append && start > 0) {
                // The server sent the whole file (no range support, or the file changed): start over.
                if (response.status === 206) {
                    await response.body?.cancel();
                    await fs.rm(part, { force: true });
                    throw Object.assign(new Retry("network"), {
                        final: networkError(`Downloading ${spec.ref}`, new Error("bad Content-Range")),
                    });
                }
                start = 0;
                written = 0;
                if (verify) {
                    const fresh = newHash(spec)!;
                    verify.hash = fresh.hash;
                }
            }
            const length = Number(response.headers.get("content-length") ?? Number.NaN);
            if (spec.size === undefined && Number.isFinite(length)) spec.size = start + length;
            if (spec.size !== undefined) await checkSpace(spec, spec.size - start);
            const handle = await fs.open(part, append ? "a" : "w");
            try {
                report();
                if (response.body) {
                    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
                        verify?.hash.update(chunk);
                        await handle.write(chunk);
                        written += chunk.byteLength;
                        report();
                    }
                }
                await handle.datasync();
            } catch (error) {
                if ((error as NodeJS.ErrnoException).code === "ENOSPC") throw noSpace(spec, (spec.size ?? 0) - written);
                throw networkRetry(error);
            } finally {
                await handle.close();
            }
        }
    }

    if (spec.size !== undefined && written !== spec.size) {
        if (written > spec.size) {
            await fs.rm(part, { force: true });
            throw new Retry("checksum");
        }
        throw networkRetry(new Error(`the connection ended after ${written} of ${spec.size} bytes`));
    }
    if (verify && verify.hash.digest("hex") !== verify.expected) {
        await fs.rm(part, { force: true });
        throw new Retry("checksum");
    }
    await fs.rename(part, spec.dest);
}
