/**
 * The producer's side of the queue: submit images as jobs (one per image, named by content hash, so a second
 * submission of the same corpus adds nothing), read the queue's counts, and read finished jobs back as result lines.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { documentInfo, type PageSelection, parsePageRanges, selectPages } from "../documents/pages.js";
import { LlamaVlmError } from "../errors.js";
import { checkExtractSettings, type ExtractLine, type ExtractSettings, extractSettings } from "../extraction.js";
import { checkNumber, checkString, invalid } from "../validate.js";
import {
    type ImageSource,
    INLINE_LIMIT,
    type JobData,
    type JobResult,
    jobIdOf,
    parseFailure,
    sha256Of,
} from "./jobs.js";
import { connectRedis, DEFAULT_QUEUE, describeRedis, type RedisRef, waitReady } from "./redis.js";

/**
 * An image to submit: a path on storage every worker mounts at the same place, an http(s) URL every worker can fetch,
 * or the bytes themselves (at most INLINE_LIMIT, 64 KiB) with the name results give them.
 */
export type SubmitImage = string | { readonly data: Uint8Array; readonly name: string };

export interface QueueOptions {
    /** The Redis server: a redis:// URL or ioredis options. */
    redis: RedisRef;
    /** Queue name. Default "llama-vlm". */
    queue?: string;
}

export interface SubmitOptions extends QueueOptions {
    images: readonly SubmitImage[];
    /** What is asked of every image; defaults as `extract`'s (its prompt, maxTokens -1, the sampler defaults). */
    settings?: Partial<ExtractSettings>;
    /** Tries of a job that meets transient errors (a crashed engine, an unreachable URL). Default 3. */
    attempts?: number;
    /** First retry delay in ms, doubled on each retry. Default 10,000. */
    backoffMs?: number;
    /**
     * Pages of each document (a PDF, or a TIFF/GIF/WebP with several pages): one job per page, as `extract` gives one
     * line per page. Default "all".
     */
    pages?: PageSelection;
    /** Called as images are hashed and jobs added. */
    onProgress?: (done: number, total: number) => void;
}

export interface SubmitResult {
    /** Jobs added by this call. */
    added: number;
    /** Jobs that were already in the queue (waiting, running, done or failed): the same image with the same settings. */
    existing: number;
    /** Every job's id, in the order given (a document's pages in page order). */
    jobIds: string[];
}

/** The queue's counts by state, as `llama-vlm queue status --json` prints them. */
export interface QueueStatus {
    queue: string;
    waiting: number;
    active: number;
    delayed: number;
    completed: number;
    failed: number;
    /** Jobs finished (completed or failed) in the last minute. */
    finishedLastMinute: number;
    /** Jobs finished per minute over the last 5 minutes. */
    perMinute: number;
    /** Age in ms of the oldest job waiting, null when none waits. */
    oldestWaitingMs: number | null;
}

/** How long a producer waits for Redis to answer before it gives up (a worker waits longer: it may start first). */
const PRODUCER_CONNECT_MS = 5000;

/** BullMQ is loaded on first use: `import "llama-vlm"` does not pay for it. */
async function openQueue(
    options: QueueOptions,
): Promise<{ queue: Queue<JobData, JobResult>; redis: Redis; name: string }> {
    const { Queue } = await import("bullmq");
    const name = checkString("queue", options.queue ?? DEFAULT_QUEUE, { nonEmpty: true });
    if (name.includes(":")) throw invalid("queue", "a name without ':'", name);
    const redis = await connectRedis(options.redis, "llama-vlm producer");
    // Errors surface through the commands that meet them (and waitReady); without listeners, ioredis and BullMQ would
    // print every reconnection error.
    redis.on("error", () => {});
    const queue = new Queue<JobData, JobResult>(name, { connection: redis });
    queue.on("error", () => {});
    return { queue, redis, name };
}

async function closeQueue(q: { queue: Queue; redis: Redis }): Promise<void> {
    await q.queue.close();
    await q.redis.quit().catch(() => q.redis.disconnect());
}

async function hashFile(file: string): Promise<string> {
    const hash = createHash("sha256");
    for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
    return hash.digest("hex");
}

interface Described {
    file: string;
    source: ImageSource;
    sha256: string;
    /** What a document reader takes: the path, or the bytes already in hand (a URL's, an inline image's). */
    input: string | Uint8Array;
}

/**
 * The page count of a document (a PDF, or an image file with several pages); undefined for a plain image, and for a
 * file no reader can open: its one job fails at the worker with the reader's code (an encrypted PDF: DOCUMENT_ENCRYPTED).
 */
async function documentPageCount(input: string | Uint8Array): Promise<number | undefined> {
    try {
        const info = await documentInfo(input);
        return info.kind === "pdf" || info.pageCount > 1 ? info.pageCount : undefined;
    } catch {
        return undefined;
    }
}

async function describeImage(image: SubmitImage): Promise<Described> {
    if (typeof image === "string") {
        if (/^https?:\/\//i.test(image)) {
            let response: Response;
            try {
                response = await fetch(image);
            } catch (err) {
                throw new LlamaVlmError("FILE_NOT_FOUND", `Could not fetch ${image}: ${(err as Error).message}`);
            }
            if (!response.ok) throw new LlamaVlmError("FILE_NOT_FOUND", `${image} answered HTTP ${response.status}`);
            const bytes = new Uint8Array(await response.arrayBuffer());
            return { file: image, source: { kind: "url", url: image }, sha256: sha256Of(bytes), input: bytes };
        }
        const file = path.resolve(image);
        if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile())
            throw new LlamaVlmError("FILE_NOT_FOUND", `${file} is not a file`);
        return { file, source: { kind: "path", path: file }, sha256: await hashFile(file), input: file };
    }
    if (image === null || typeof image !== "object" || !(image.data instanceof Uint8Array))
        throw invalid("images[]", "a path, a URL or { data, name }", image);
    const name = checkString("name", image.name, { nonEmpty: true });
    if (image.data.byteLength > INLINE_LIMIT) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `${name} is ${image.data.byteLength} bytes: images above ${INLINE_LIMIT} bytes go by path (shared storage) or URL, not inside the job`,
        );
    }
    return {
        file: name,
        source: { kind: "inline", base64: Buffer.from(image.data).toString("base64") },
        sha256: sha256Of(image.data),
        input: image.data,
    };
}

/**
 * Adds one job per image. A job's id is the hash of the image's bytes and the settings: an image already queued,
 * running, done or failed with the same settings is not added again. Settings are checked before anything is added.
 */
export async function submitJobs(options: SubmitOptions): Promise<SubmitResult> {
    const settings = extractSettings(options.settings);
    checkExtractSettings(settings);
    const attempts = checkNumber("attempts", options.attempts ?? 3, { integer: true, min: 1 });
    const backoffMs = checkNumber("backoffMs", options.backoffMs ?? 10_000, { integer: true, min: 0 });
    if (!Array.isArray(options.images)) throw invalid("images", "an array", options.images);
    const pages = options.pages ?? "all";
    if (typeof pages === "string" && pages !== "all") parsePageRanges(pages); // the syntax, before any work
    // One job per image, and per selected page of a document.
    const described: Array<Described & { page?: number; pages?: number }> = [];
    for (const image of options.images) {
        const d = await describeImage(image);
        const count = await documentPageCount(d.input);
        if (count === undefined) described.push(d);
        else for (const page of selectPages(pages, count)) described.push({ ...d, page, pages: count });
    }

    const q = await openQueue(options);
    try {
        await waitReady(q.redis, describeRedis(options.redis), PRODUCER_CONNECT_MS);
        const jobIds = described.map((d) => jobIdOf(d.sha256, settings, d.page));
        let added = 0;
        const BATCH = 500;
        for (let from = 0; from < described.length; from += BATCH) {
            const ids = jobIds.slice(from, from + BATCH);
            // Counted before adding: a job another producer adds in between is counted as added by both, but
            // exists once (BullMQ ignores an id it holds).
            const exists = await q.redis.pipeline(ids.map((id) => ["exists", q.queue.toKey(id)])).exec();
            const fresh = ids.flatMap((id, i) => (exists?.[i]?.[1] === 1 ? [] : [{ id, d: described[from + i]! }]));
            // One image twice in the same batch: one job.
            const unique = [...new Map(fresh.map((f) => [f.id, f])).values()];
            await q.queue.addBulk(
                unique.map(({ id, d }) => ({
                    name: "extract",
                    data: {
                        v: 1,
                        file: d.file,
                        source: d.source,
                        sha256: d.sha256,
                        settings,
                        ...(d.page !== undefined ? { page: d.page, pages: d.pages! } : {}),
                    } satisfies JobData,
                    opts: { jobId: id, attempts, backoff: { type: "exponential", delay: backoffMs } },
                })),
            );
            added += unique.length;
            options.onProgress?.(Math.min(from + BATCH, described.length), described.length);
        }
        return { added, existing: new Set(jobIds).size - added, jobIds };
    } finally {
        await closeQueue(q);
    }
}

/** Counts by state, throughput and the age of the oldest waiting job. */
export async function queueStatus(options: QueueOptions): Promise<QueueStatus> {
    const q = await openQueue(options);
    try {
        await waitReady(q.redis, describeRedis(options.redis), PRODUCER_CONNECT_MS);
        const counts = await q.queue.getJobCounts("waiting", "active", "delayed", "prioritized", "completed", "failed");
        const now = Date.now();
        const finishedSince = async (ms: number) =>
            (await q.redis.zcount(q.queue.toKey("completed"), now - ms, "+inf")) +
            (await q.redis.zcount(q.queue.toKey("failed"), now - ms, "+inf"));
        const oldestId = await q.redis.lindex(q.queue.toKey("wait"), -1);
        const oldest = oldestId ? await q.queue.getJob(oldestId) : undefined;
        return {
            queue: q.name,
            waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
            active: counts.active ?? 0,
            delayed: counts.delayed ?? 0,
            completed: counts.completed ?? 0,
            failed: counts.failed ?? 0,
            finishedLastMinute: await finishedSince(60_000),
            perMinute: (await finishedSince(300_000)) / 5,
            oldestWaitingMs: oldest?.timestamp ? Math.max(0, now - oldest.timestamp) : null,
        };
    } finally {
        await closeQueue(q);
    }
}

/**
 * Finished jobs as result lines, each job once: completed ones as the worker wrote them, failed ones (out of tries, or
 * failed for good) as error lines. Jobs still waiting, running or waiting to retry are not finished.
 */
export async function* jobResults(options: QueueOptions): AsyncGenerator<ExtractLine> {
    const q = await openQueue(options);
    try {
        await waitReady(q.redis, describeRedis(options.redis), PRODUCER_CONNECT_MS);
        const seen = new Set<string>();
        const PAGE = 200;
        for (const state of ["completed", "failed"] as const) {
            // Oldest first: jobs finishing meanwhile are appended after the pages read.
            for (let from = 0; ; from += PAGE) {
                const jobs = await q.queue.getJobs([state], from, from + PAGE - 1, true);
                for (const job of jobs) {
                    if (!job?.id || seen.has(job.id)) continue;
                    seen.add(job.id);
                    const data = job.data as JobData;
                    if (state === "completed") yield { ...(job.returnvalue as JobResult), job: job.id };
                    else
                        yield {
                            file: data.file,
                            sha256: data.sha256,
                            error: parseFailure(job.failedReason),
                            job: job.id,
                        };
                }
                if (jobs.length < PAGE) break;
            }
        }
    } finally {
        await closeQueue(q);
    }
}
