/**
 * A queue worker: loads the model once and decodes up to `parallel` jobs together in one context, so queue jobs batch
 * like local requests. Like `extract`, it holds as many more jobs whose images are read, checked, decoded and encoded
 * ahead of a free sequence (2 × parallel in all): without them the decoder waits for each next image. BullMQ holds a lock on each running job and renews it while the job runs (the
 * encoder and the decoder run on native threads, so the event loop is free to renew); a worker that dies (kill -9, a
 * native abort) stops renewing, and after the stall interval another worker takes its jobs again.
 *
 * Failures: an error the same input would meet on any worker (a missing or changed file, an image that does not
 * decode, an option the model refuses) fails the job at once with its code (BullMQ's UnrecoverableError, no retries);
 * others (an isolated engine that crashed, a URL that did not answer) are retried with the job's backoff until its
 * attempts are spent. Results are the job's return value, by job id.
 */
import os from "node:os";
import type { Job } from "bullmq";
import type { Redis } from "ioredis";
import type { Context } from "../context.js";
import { DEFAULT_PAGE_PIXELS } from "../documents/pages.js";
import { LlamaVlmError } from "../errors.js";
import { extractImage } from "../extraction.js";
import type { ImageInput } from "../images.js";
import { type LoadModelOptions, loadModel, type Model } from "../model.js";
import { checkNumber, checkString, invalid } from "../validate.js";
import { failureReason, type JobData, type JobResult, PERMANENT_CODES, readJobImage, TransientError } from "./jobs.js";
import type { QueueOptions } from "./producer.js";
import { connectRedis, DEFAULT_QUEUE, describeRedis, waitReady } from "./redis.js";

export interface CreateWorkerOptions extends QueueOptions {
    /** Path of the text model GGUF. */
    model: string;
    /** Path of the vision projector GGUF. */
    projector?: string;
    /** Jobs decoded together in one context (as many more are held, their images prepared ahead). Default 1. */
    parallel?: number;
    /** Tokens per sequence. Default 4096. */
    contextSize?: number;
    /** Layers on the GPU (-1 = all, "auto"). Default -1. */
    gpuLayers?: LoadModelOptions["gpuLayers"];
    /** Inference threads. Default: physical cores. */
    threads?: number;
    /** "process": the engine runs in a child process; a native abort fails the jobs in flight (retried) only. */
    isolation?: "none" | "process";
    /** This worker's name in BullMQ (a job's `processedBy`). Default "<hostname>:<pid>". */
    name?: string;
    /** How long a job's lock lasts without renewal, in ms; it is renewed every half of it. Default 30,000. */
    lockDurationMs?: number;
    /** How often this worker looks for jobs whose worker died (their lock expired), in ms. Default 30,000. */
    stalledIntervalMs?: number;
    /** Times a job may be found stalled (its worker died) before it fails. Default 1. */
    maxStalledCount?: number;
    /** On close: how long jobs in flight may take to finish before they are cancelled and put back, in ms. Default 60,000. */
    graceMs?: number;
    /** Longest wait for an image URL, in ms. Default 60,000. */
    fetchTimeoutMs?: number;
    /** Follows the jobs. */
    onEvent?: (event: WorkerEvent) => void;
}

export type WorkerEvent =
    | { type: "active"; job: string; file: string }
    | { type: "completed"; job: string; file: string; ms: number }
    /** `final`: the job is in the failed set (permanent error, or attempts spent); otherwise it will be retried. */
    | { type: "failed"; job: string; file: string; code: string; message: string; final: boolean }
    /** A job cancelled by close() past its grace period, put back to wait for another worker. */
    | { type: "released"; job: string; file: string }
    /** A connection or BullMQ error; the worker goes on (ioredis reconnects). */
    | { type: "error"; message: string };

export interface WorkerStats {
    /** Jobs completed. */
    done: number;
    /** Jobs failed (final failures and failures to be retried). */
    failed: number;
    /** Jobs running now. */
    active: number;
    /** Jobs completed per minute over the last minute (since the first job started, when that is less). */
    imagesPerMinute: number;
}

export interface QueueWorker {
    readonly name: string;
    readonly model: Model;
    stats(): WorkerStats;
    /**
     * Stops taking jobs and lets those in flight finish; past `graceMs` (default: the worker's) they are cancelled and
     * put back to wait for another worker. Then disposes the model and closes the connections. Idempotent.
     */
    close(options?: { graceMs?: number }): Promise<void>;
}

/** Loads the model, connects to Redis and starts taking jobs. */
export async function createWorker(options: CreateWorkerOptions): Promise<QueueWorker> {
    const queueName = checkString("queue", options.queue ?? DEFAULT_QUEUE, { nonEmpty: true });
    if (queueName.includes(":")) throw invalid("queue", "a name without ':'", queueName);
    const parallel = checkNumber("parallel", options.parallel ?? 1, { integer: true, min: 1, max: 256 });
    const lockDuration = checkNumber("lockDurationMs", options.lockDurationMs ?? 30_000, { integer: true, min: 100 });
    const stalledInterval = checkNumber("stalledIntervalMs", options.stalledIntervalMs ?? 30_000, {
        integer: true,
        min: 100,
    });
    const maxStalledCount = checkNumber("maxStalledCount", options.maxStalledCount ?? 1, { integer: true, min: 0 });
    const defaultGrace = checkNumber("graceMs", options.graceMs ?? 60_000, { min: 0 });
    const name = checkString("name", options.name ?? `${os.hostname()}:${process.pid}`, { nonEmpty: true });
    const emit = (event: WorkerEvent) => options.onEvent?.(event);

    // BullMQ is loaded on first use: `import "llama-vlm"` does not pay for it.
    const { UnrecoverableError, WaitingError, Worker } = await import("bullmq");
    const redis: Redis = await connectRedis(options.redis, `llama-vlm worker ${name}`);
    redis.on("error", (err: Error) => emit({ type: "error", message: `redis: ${err.message}` }));
    let model: Model | undefined;
    let context: Context;
    try {
        await waitReady(redis, describeRedis(options.redis), 30_000);
        model = await loadModel({
            model: options.model,
            ...(options.projector ? { projector: options.projector } : {}),
            ...(options.gpuLayers !== undefined ? { gpuLayers: options.gpuLayers } : {}),
            ...(options.isolation ? { isolation: options.isolation } : {}),
            ...(options.threads ? { projectorOptions: { threads: options.threads } } : {}),
        });
        context = await model.createContext({
            parallel,
            ...(options.contextSize ? { contextSize: options.contextSize } : {}),
            ...(options.threads ? { threads: options.threads } : {}),
        });
    } catch (err) {
        await model?.dispose();
        redis.disconnect();
        throw err;
    }
    const loaded = model;

    let done = 0;
    let failed = 0;
    let active = 0;
    let firstStart: number | undefined;
    /** When each job of the last minute completed. */
    const finishedAt: number[] = [];
    let releasing = false;

    const processJob = async (job: Job<JobData, JobResult>, token?: string, signal?: AbortSignal) => {
        const data = job.data;
        const id = job.id!;
        if (data?.v !== 1 || typeof data.sha256 !== "string" || data.settings === undefined) {
            throw new UnrecoverableError(
                failureReason("INVALID_OPTION", `job ${id} was not submitted by llama-vlm (no image reference)`),
            );
        }
        active++;
        firstStart ??= Date.now();
        const started = Date.now();
        emit({ type: "active", job: id, file: data.file });
        const release = async () => {
            // Cancelled by close() past its grace: back to wait, without spending an attempt.
            await job.moveToWait(token);
            emit({ type: "released", job: id, file: data.file });
            throw new WaitingError();
        };
        try {
            const bytes = await readJobImage(data, options);
            let lastProgress = 0;
            // A document's page: rendered (a PDF) or picked (a multi-page image) at extract's page budget.
            const paged = typeof data.page === "number";
            const image: ImageInput = paged ? { document: bytes, page: data.page! } : bytes;
            const r = await extractImage(context, loaded, image, data.settings, {
                ...(signal ? { signal } : {}),
                ...(paged ? { imageBudget: { maxPixels: DEFAULT_PAGE_PIXELS } } : {}),
                onToken: (tokens) => {
                    const now = Date.now();
                    if (now - lastProgress < 1000) return;
                    lastProgress = now;
                    job.updateProgress({ tokens }).catch(() => {});
                },
            });
            if (r === undefined) return await release();
            done++;
            finishedAt.push(Date.now());
            emit({ type: "completed", job: id, file: data.file, ms: Date.now() - started });
            return {
                file: data.file,
                sha256: data.sha256,
                ...(paged ? { page: data.page!, pages: data.pages! } : {}),
                ...r.line,
                job: id,
            } satisfies JobResult;
        } catch (err) {
            if (err instanceof WaitingError) throw err;
            if (signal?.aborted && releasing) return await release();
            const code = err instanceof LlamaVlmError || err instanceof TransientError ? err.code : "NATIVE_ERROR";
            const message = err instanceof Error ? err.message : String(err);
            const permanent = !(err instanceof TransientError) && PERMANENT_CODES.has(code);
            failed++;
            const final = permanent || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
            emit({ type: "failed", job: id, file: data.file, code, message, final });
            const reason = failureReason(code, message);
            throw permanent ? new UnrecoverableError(reason) : new Error(reason);
        } finally {
            active--;
        }
    };

    const worker = new Worker<JobData, JobResult>(queueName, processJob, {
        connection: redis,
        name,
        // `parallel` decoding and as many being prepared, as extract does (measured: scripts/bench-queue.mjs).
        concurrency: parallel * 2,
        lockDuration,
        stalledInterval,
        maxStalledCount,
        // Completed and failed jobs stay (BullMQ's default): they hold the results, and their ids keep a resubmission
        // from adding them again.
    });
    worker.on("error", (err: Error) => emit({ type: "error", message: err.message }));

    let closing: Promise<void> | undefined;
    let releaseAt = Number.POSITIVE_INFINITY;
    let releaseTimer: NodeJS.Timeout | undefined;
    return {
        name,
        model: loaded,
        stats() {
            const now = Date.now();
            while (finishedAt.length > 0 && finishedAt[0]! < now - 60_000) finishedAt.shift();
            const minutes = firstStart === undefined ? 0 : Math.min(1, (now - firstStart) / 60_000);
            return { done, failed, active, imagesPerMinute: minutes > 0 ? finishedAt.length / minutes : 0 };
        },
        close(closeOptions = {}) {
            // A second call may shorten the grace period (a second Ctrl-C), never lengthen it.
            const grace = checkNumber("graceMs", closeOptions.graceMs ?? defaultGrace, { min: 0 });
            if (Date.now() + grace < releaseAt) {
                releaseAt = Date.now() + grace;
                clearTimeout(releaseTimer);
                releaseTimer = setTimeout(() => {
                    releasing = true;
                    worker.cancelAllJobs("the worker is shutting down");
                }, grace);
            }
            closing ??= (async () => {
                try {
                    await worker.close();
                } finally {
                    clearTimeout(releaseTimer);
                    await loaded.dispose();
                    await redis.quit().catch(() => redis.disconnect());
                }
            })();
            return closing;
        },
    };
}
