/**
 * The queue on a real redis-server (started here, on a free loopback port) and real worker processes (the compiled
 * CLI): 40 images drained by 2 workers, one killed with SIGKILL mid-job; a Redis restart while workers run; SIGTERM
 * with jobs in flight; permanent errors failing once; a PDF's pages as jobs. Results are compared with what `extract` gives for the same
 * images (greedy).
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExtractLine } from "../../lib/cli/extract.js";
import { runCli } from "../../lib/cli/main.js";
import { extractSettings } from "../../lib/extraction.js";
import { jobIdOf } from "../../lib/queue/jobs.js";
import { jobResults, queueStatus, submitJobs } from "../../lib/queue/producer.js";
import { createWorker, type WorkerEvent } from "../../lib/queue/worker.js";
import { capture, readLines } from "../helpers/cli.js";
import { testImageFile } from "../helpers/images.js";
import { cachedModel, REPO_ROOT } from "../helpers/models.js";
import { encryptedPdf, threePagePdf } from "../helpers/pdf.js";
import { type RedisServer, startRedis } from "../helpers/redis.js";

const CLI = path.join(REPO_ROOT, "dist", "cli", "main.js");
/** Greedy, 16 tokens: short, and different for each image (the tiny model's text is meaningless but deterministic). */
const SETTINGS_FLAGS = ["-n", "16", "--temp", "0"];
/** Short lock and stall check, so that a killed worker's jobs come back within seconds. */
const FAST_STALL = ["--lock-duration", "2000", "--stalled-interval", "1000"];
const IMAGES = 40;

let tmp: string;
let scans: string;
let model: string;
let projector: string;
let images: string[];
/** What `extract` gives for each image with SETTINGS_FLAGS, by absolute path. */
let reference: Map<string, ExtractLine>;
const servers: RedisServer[] = [];
const children: ChildProcess[] = [];

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    const c = capture();
    const code = await runCli(args, c.io);
    return { code, out: c.out, err: c.err };
}

/** What `extract` writes for `input` with SETTINGS_FLAGS: the reference the queue's results must equal. */
async function extractReference(input: string, name: string): Promise<ExtractLine[]> {
    const out = path.join(tmp, name);
    const r = await cli([
        "extract",
        input,
        "-m",
        model,
        "--projector",
        projector,
        ...SETTINGS_FLAGS,
        "--out",
        out,
        "--quiet",
    ]);
    expect(r.code, r.err).toBe(0);
    return readLines(out);
}

interface WorkerProcess {
    readonly name: string;
    readonly proc: ChildProcess;
    /** Its --json event lines so far. */
    readonly events: Array<{ event: string; job: string; file: string; code?: string; at: number }>;
    stderr(): string;
    readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnWorker(redis: RedisServer, queue: string, name: string, extra: string[] = []): WorkerProcess {
    const proc = spawn(
        process.execPath,
        [
            CLI,
            "worker",
            "--redis",
            redis.url,
            "--queue",
            queue,
            "-m",
            model,
            "--projector",
            projector,
            "--name",
            name,
            "--json",
            "--threads",
            "1",
            ...extra,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(proc);
    const events: WorkerProcess["events"] = [];
    let partial = "";
    let stderr = "";
    proc.stdout!.on("data", (d) => {
        partial += d;
        const lines = partial.split("\n");
        partial = lines.pop()!;
        for (const line of lines) if (line.trim()) events.push({ ...JSON.parse(line), at: Date.now() });
    });
    proc.stderr!.on("data", (d) => (stderr += d));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        proc.on("exit", (code, signal) => resolve({ code, signal })),
    );
    return { name, proc, events, stderr: () => stderr, exit };
}

/** Polls `check` every 50 ms until it returns true; fails with `what` after `ms`. */
async function until(what: () => string, check: () => boolean | Promise<boolean>, ms = 120_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

function inFlight(w: WorkerProcess): string[] {
    const open = new Set<string>();
    for (const e of w.events) {
        if (e.event === "active") open.add(e.job);
        else open.delete(e.job);
    }
    return [...open];
}

/** The fields `extract` and `queue results` must agree on (timings differ from run to run). */
function essence(line: ExtractLine) {
    return { file: line.file, sha256: line.sha256, text: line.text, stopReason: line.stopReason, error: line.error };
}

function expectSameAsExtract(lines: ExtractLine[]): void {
    expect(lines).toHaveLength(IMAGES);
    expect(new Set(lines.map((l) => l.file)).size).toBe(IMAGES);
    expect(new Set(lines.map((l) => l.job)).size).toBe(IMAGES);
    for (const line of lines) {
        const ref = reference.get(line.file);
        expect(ref, line.file).toBeDefined();
        expect(essence(line)).toEqual(essence(ref!));
        expect(line.timings?.generatedTokens).toBe(16);
    }
}

beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-queue-"));
    const pair = await cachedModel("qwen2.5-vl");
    model = pair.model;
    projector = pair.projector!;
    scans = path.join(tmp, "scans");
    fs.mkdirSync(scans);
    images = [];
    for (let seed = 0; seed < IMAGES; seed++) {
        const src = await testImageFile(seed % 2 ? "blocks" : "gradient", {
            width: 224 + 8 * (seed % 8),
            height: 224,
            seed: 100 + seed,
        });
        const dst = path.join(scans, `scan-${String(seed).padStart(2, "0")}.png`);
        fs.copyFileSync(src, dst);
        images.push(dst);
    }
    reference = new Map((await extractReference(scans, "extract.jsonl")).map((l) => [l.file, l]));
    expect(reference.size).toBe(IMAGES);
    // The tiny model's text differs between images: a mix-up of results would show.
    expect(new Set([...reference.values()].map((l) => l.text)).size).toBeGreaterThan(IMAGES / 4);
});

afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const s of servers) await s.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
});

describe("llama-vlm queue and worker on a real Redis", () => {
    it("40 images, 2 workers, one killed with SIGKILL mid-job: the other finishes everything, results equal extract's, a resubmission adds 0", async () => {
        const redis = await startRedis();
        servers.push(redis);
        const queue = "kill";
        const submitted = await cli([
            "queue",
            "submit",
            scans,
            "--redis",
            redis.url,
            "--queue",
            queue,
            ...SETTINGS_FLAGS,
        ]);
        expect(submitted.code, submitted.err).toBe(0);
        expect(submitted.out).toBe(`${IMAGES} added, 0 already queued or done\n`);

        const victim = spawnWorker(redis, queue, "victim", ["--parallel", "2", ...FAST_STALL]);
        const survivor = spawnWorker(redis, queue, "survivor", ["--parallel", "2", ...FAST_STALL]);
        // Kill the victim once it has done a few jobs and holds one.
        await until(
            () => `victim events ${JSON.stringify(victim.events)}; stderr ${victim.stderr()}`,
            () => victim.events.filter((e) => e.event === "completed").length >= 2 && inFlight(victim).length > 0,
        );
        victim.proc.kill("SIGKILL");
        expect((await victim.exit).signal).toBe("SIGKILL");

        const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
        const q = new Queue(queue, { connection });
        try {
            // The killed worker's jobs are still active (nobody holds their lock any more).
            const orphans = (await q.getJobs(["active"])).filter((j) => j.processedBy === "victim").map((j) => j.id!);
            expect(orphans.length, "the victim held no job when it was killed").toBeGreaterThan(0);

            await until(
                () => `survivor stderr ${survivor.stderr()}`,
                async () => (await queueStatus({ redis: redis.url, queue })).completed === IMAGES,
            );
            const status = await queueStatus({ redis: redis.url, queue });
            expect(status).toMatchObject({ waiting: 0, active: 0, delayed: 0, completed: IMAGES, failed: 0 });
            // Re-delivered after the stall interval, and finished by the other worker.
            for (const id of orphans) {
                const job = (await q.getJob(id))!;
                expect(await job.getState()).toBe("completed");
                expect(job.processedBy).toBe("survivor");
                expect(job.stalledCounter).toBe(1);
                expect(survivor.events.some((e) => e.event === "completed" && e.job === id)).toBe(true);
            }
        } finally {
            await q.close();
            connection.disconnect();
        }

        survivor.proc.kill("SIGTERM");
        expect(await survivor.exit).toEqual({ code: 0, signal: null });

        const out = path.join(tmp, "kill.jsonl");
        const exported = await cli(["queue", "results", "--redis", redis.url, "--queue", queue, "--out", out]);
        expect(exported.code, exported.err).toBe(0);
        const lines = readLines(out);
        expectSameAsExtract(lines);
        const settings = extractSettings({ maxTokens: 16, sampling: { temperature: 0 } });
        for (const line of lines) expect(line.job).toBe(jobIdOf(line.sha256, settings));
        // Resumable: a second export into the same file adds nothing.
        const again = await cli(["queue", "results", "--redis", redis.url, "--queue", queue, "--out", out]);
        expect(again.err).toContain(`0 written (0 failed jobs), ${IMAGES} already in`);
        expect(readLines(out)).toHaveLength(IMAGES);

        const resubmitted = await cli([
            "queue",
            "submit",
            scans,
            "--redis",
            redis.url,
            "--queue",
            queue,
            ...SETTINGS_FLAGS,
        ]);
        expect(resubmitted.out).toBe(`0 added, ${IMAGES} already queued or done\n`);
        const json = await cli(["queue", "status", "--redis", redis.url, "--queue", queue, "--json"]);
        expect(JSON.parse(json.out)).toMatchObject({ queue, waiting: 0, active: 0, completed: IMAGES, failed: 0 });
    });

    it("Redis restarted while workers run: they reconnect and the run completes, nothing lost or done twice", async () => {
        const redis = await startRedis({ persist: true });
        servers.push(redis);
        const queue = "restart";
        const submitted = await cli([
            "queue",
            "submit",
            scans,
            "--redis",
            redis.url,
            "--queue",
            queue,
            ...SETTINGS_FLAGS,
        ]);
        expect(submitted.out).toBe(`${IMAGES} added, 0 already queued or done\n`);
        const workers = [
            spawnWorker(redis, queue, "a", ["--parallel", "2"]),
            spawnWorker(redis, queue, "b", ["--parallel", "2"]),
        ];
        const completed = () => workers.flatMap((w) => w.events.filter((e) => e.event === "completed"));
        await until(
            () => `stderr ${workers.map((w) => w.stderr()).join("\n")}`,
            () => completed().length >= 4,
        );
        const before = completed().length;
        await redis.stop();
        await new Promise((r) => setTimeout(r, 1000));
        await redis.start();
        await until(
            () => `after restart: ${workers.map((w) => w.stderr()).join("\n")}; redis ${redis.log()}`,
            async () => (await queueStatus({ redis: redis.url, queue })).completed === IMAGES,
        );
        expect(before).toBeLessThan(IMAGES);
        for (const w of workers) w.proc.kill("SIGTERM");
        for (const w of workers) expect(await w.exit, w.stderr()).toEqual({ code: 0, signal: null });
        // The workers noticed the restart (and went on).
        expect(workers.map((w) => w.stderr()).join("\n")).toMatch(
            /worker: .*(ECONNREFUSED|Connection is closed|ECONNRESET)/,
        );

        expect(await queueStatus({ redis: redis.url, queue })).toMatchObject({
            waiting: 0,
            active: 0,
            delayed: 0,
            completed: IMAGES,
            failed: 0,
        });
        // Each job run to completion exactly once.
        const ids = completed().map((e) => e.job);
        expect(ids).toHaveLength(IMAGES);
        expect(new Set(ids).size).toBe(IMAGES);
        const out = path.join(tmp, "restart.jsonl");
        expect((await cli(["queue", "results", "--redis", redis.url, "--queue", queue, "--out", out])).code).toBe(0);
        expectSameAsExtract(readLines(out));
    });

    it("SIGTERM with jobs in flight: they finish and are acknowledged, the worker exits 0, the rest stays queued", async () => {
        const redis = await startRedis();
        servers.push(redis);
        const queue = "term";
        // Longer jobs (256 tokens) so that SIGTERM lands while two are running.
        const submitted = await cli([
            "queue",
            "submit",
            scans,
            "--redis",
            redis.url,
            "--queue",
            queue,
            "-n",
            "256",
            "--temp",
            "0",
        ]);
        expect(submitted.code, submitted.err).toBe(0);
        const w = spawnWorker(redis, queue, "term", ["--parallel", "2"]);
        // Parallel 2: two decoding, two more prepared ahead.
        await until(
            () => `events ${JSON.stringify(w.events)}; stderr ${w.stderr()}`,
            () => inFlight(w).length >= 2,
        );
        const running = inFlight(w);
        w.proc.kill("SIGTERM");
        expect(await w.exit, w.stderr()).toEqual({ code: 0, signal: null });
        expect(w.stderr()).toMatch(/worker: stopping: finishing [1-4] job\(s\) in flight/);
        for (const id of running) expect(w.events.some((e) => e.event === "completed" && e.job === id)).toBe(true);
        const status = await queueStatus({ redis: redis.url, queue });
        const finished = w.events.filter((e) => e.event === "completed").length;
        expect(status).toMatchObject({ active: 0, failed: 0, completed: finished, waiting: IMAGES - finished });
        const results: ExtractLine[] = [];
        for await (const line of jobResults({ redis: redis.url, queue })) results.push(line);
        expect(results.map((l) => l.job).sort()).toEqual(
            w.events
                .filter((e) => e.event === "completed")
                .map((e) => e.job)
                .sort(),
        );
        for (const line of results) expect(line.timings?.generatedTokens).toBe(256);
    });

    it("a corrupt image, a missing shared file and a changed file each fail their job once, with their code; a transient error is retried, then fails", async () => {
        const redis = await startRedis();
        servers.push(redis);
        const queue = "bad";
        const dir = path.join(tmp, "bad");
        fs.mkdirSync(dir);
        const corrupt = path.join(dir, "torn.png");
        fs.writeFileSync(corrupt, fs.readFileSync(images[0]!).subarray(0, 100));
        const missing = path.join(dir, "gone.png");
        fs.copyFileSync(images[1]!, missing);
        const changed = path.join(dir, "changed.png");
        fs.copyFileSync(images[2]!, changed);
        const good = path.join(dir, "good.png");
        fs.copyFileSync(images[3]!, good);
        // A URL served by a real server on loopback, and one it does not have.
        let flakyRequests = 0;
        const server = http.createServer((req, res) => {
            if (req.url === "/scan.png") res.end(fs.readFileSync(images[4]!));
            else if (req.url === "/flaky.png") {
                // Answers the producer (which hashes it), then fails: a transient error on every worker try.
                if (flakyRequests++ === 0) res.end(fs.readFileSync(images[7]!));
                else {
                    res.statusCode = 503;
                    res.end();
                }
            } else {
                res.statusCode = 404;
                res.end();
            }
        });
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
        const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
        const events: WorkerEvent[] = [];
        try {
            const settings = { maxTokens: 16, sampling: { temperature: 0 } };
            const submitted = await submitJobs({
                redis: redis.url,
                queue,
                images: [
                    corrupt,
                    missing,
                    changed,
                    good,
                    `${base}/scan.png`,
                    { data: fs.readFileSync(images[5]!), name: "inline-5" },
                ],
                settings,
                attempts: 3,
                // A job wrongly retried would sit in "delayed" for a minute: the test would see it.
                backoffMs: 60_000,
            });
            expect(submitted).toMatchObject({ added: 6, existing: 0 });
            const flaky = await submitJobs({
                redis: redis.url,
                queue,
                images: [`${base}/flaky.png`],
                settings,
                attempts: 2,
                backoffMs: 200,
            });
            expect(flaky).toMatchObject({ added: 1, existing: 0 });
            fs.rmSync(missing);
            fs.copyFileSync(images[6]!, changed);
            await expect(
                submitJobs({ redis: redis.url, queue, images: [`${base}/nothing.png`], settings }),
            ).rejects.toMatchObject({ code: "FILE_NOT_FOUND" });

            const worker = await createWorker({
                redis: redis.url,
                queue,
                model,
                projector,
                parallel: 2,
                threads: 1,
                onEvent: (e) => events.push(e),
            });
            try {
                await until(
                    () => JSON.stringify(events),
                    async () => {
                        const s = await queueStatus({ redis: redis.url, queue });
                        return s.completed + s.failed === 7;
                    },
                    60_000,
                );
            } finally {
                await worker.close();
            }
            const status = await queueStatus({ redis: redis.url, queue });
            expect(status).toMatchObject({ waiting: 0, active: 0, delayed: 0, completed: 3, failed: 4 });
            const failures = events.filter((e) => e.type === "failed");
            expect(failures.map((e) => [path.basename(e.file), e.code, e.final]).sort()).toEqual([
                ["changed.png", "IMAGE_CHANGED", true],
                ["flaky.png", "FILE_NOT_FOUND", false],
                ["flaky.png", "FILE_NOT_FOUND", true],
                ["gone.png", "FILE_NOT_FOUND", true],
                ["torn.png", "IMAGE_DECODE_FAILED", true],
            ]);
            // The transient error was retried after its backoff, then the job failed with its reason.
            expect(flakyRequests).toBe(3);

            const lines: ExtractLine[] = [];
            for await (const line of jobResults({ redis: redis.url, queue })) lines.push(line);
            expect(lines).toHaveLength(7);
            const byName = new Map(lines.map((l) => [path.basename(l.file), l]));
            expect(byName.get("torn.png")!.error!.code).toBe("IMAGE_DECODE_FAILED");
            expect(byName.get("gone.png")!.error).toMatchObject({ code: "FILE_NOT_FOUND" });
            expect(byName.get("gone.png")!.error!.message).toContain(missing);
            expect(byName.get("changed.png")!.error!.code).toBe("IMAGE_CHANGED");
            expect(byName.get("flaky.png")!.error!.message).toContain("HTTP 503");
            // Failed once: no retry was made (but for the transient error, tried twice).
            const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
            const q = new Queue(queue, { connection });
            try {
                for (const line of lines.filter((l) => l.error)) {
                    const job = (await q.getJob(line.job!))!;
                    expect(job.attemptsMade, line.file).toBe(line.file.endsWith("flaky.png") ? 2 : 1);
                    expect(await job.getState()).toBe("failed");
                }
            } finally {
                await q.close();
                connection.disconnect();
            }
            // The good file, the URL and the inline image give extract's results.
            const ok = (name: string, image: string) => {
                const line = byName.get(name)!;
                expect(line.error).toBeUndefined();
                expect(line.text).toBe(reference.get(image)!.text);
                expect(line.sha256).toBe(reference.get(image)!.sha256);
            };
            ok("good.png", images[3]!);
            ok("scan.png", images[4]!);
            ok("inline-5", images[5]!);
        } finally {
            server.close();
        }
    });

    it("close() past its grace period puts the jobs in flight back without spending an attempt; another worker runs them", async () => {
        const redis = await startRedis();
        servers.push(redis);
        const queue = "release";
        const submitted = await submitJobs({
            redis: redis.url,
            queue,
            images: images.slice(0, 3),
            settings: { maxTokens: 512, sampling: { temperature: 0 } },
        });
        expect(submitted.added).toBe(3);
        const events: WorkerEvent[] = [];
        const first = await createWorker({
            redis: redis.url,
            queue,
            model,
            projector,
            parallel: 2,
            threads: 1,
            onEvent: (e) => events.push(e),
        });
        // Parallel 2 holds up to 4 jobs: all 3.
        await until(
            () => JSON.stringify(events),
            () => events.filter((e) => e.type === "active").length === 3,
        );
        await first.close({ graceMs: 0 });
        const released = events.filter((e) => e.type === "released").map((e) => (e as { job: string }).job);
        expect(released).toHaveLength(3);
        expect(events.filter((e) => e.type === "completed" || e.type === "failed")).toEqual([]);
        expect(await queueStatus({ redis: redis.url, queue })).toMatchObject({
            waiting: 3,
            active: 0,
            completed: 0,
            failed: 0,
        });
        const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
        const q = new Queue(queue, { connection });
        try {
            for (const id of released) expect((await q.getJob(id))!.attemptsMade).toBe(0);
            const second = await createWorker({
                redis: redis.url,
                queue,
                name: "second",
                model,
                projector,
                parallel: 2,
                threads: 1,
            });
            try {
                await until(
                    () => "the second worker did not finish the released jobs",
                    async () => (await queueStatus({ redis: redis.url, queue })).completed === 3,
                );
            } finally {
                await second.close();
            }
            for (const id of released) {
                const job = (await q.getJob(id))!;
                expect(job.processedBy).toBe("second");
                expect(job.attemptsMade).toBe(1);
                expect(job.returnvalue.timings.generatedTokens).toBe(512);
            }
        } finally {
            await q.close();
            connection.disconnect();
        }
    });

    it("a document gives one job per page; its results equal extract's page lines; an unreadable PDF fails once with its code", async () => {
        const redis = await startRedis();
        servers.push(redis);
        const queue = "docs";
        const docs = path.join(tmp, "docs");
        fs.mkdirSync(docs);
        const letter = path.join(docs, "letter.pdf");
        fs.writeFileSync(letter, threePagePdf());
        const refLines = await extractReference(letter, "docs-extract.jsonl");
        expect(refLines.map((l) => l.page)).toEqual([1, 2, 3]);

        const locked = path.join(docs, "locked.pdf");
        fs.writeFileSync(locked, encryptedPdf());
        const submitted = await cli([
            "queue",
            "submit",
            docs,
            "--redis",
            redis.url,
            "--queue",
            queue,
            ...SETTINGS_FLAGS,
        ]);
        expect(submitted.code, submitted.err).toBe(0);
        // Three pages of the letter, and one job for the PDF no reader can open (it fails at the worker).
        expect(submitted.out).toBe("4 added, 0 already queued or done\n");
        const again = await cli([
            "queue",
            "submit",
            letter,
            "--pages",
            "2",
            "--redis",
            redis.url,
            "--queue",
            queue,
            ...SETTINGS_FLAGS,
        ]);
        expect(again.out).toBe("0 added, 1 already queued or done\n");

        const w = spawnWorker(redis, queue, "docs");
        await until(
            () => `events ${JSON.stringify(w.events)}; stderr ${w.stderr()}`,
            () => w.events.filter((e) => e.event === "completed" || e.event === "failed").length >= 4,
        );
        w.proc.kill("SIGTERM");
        expect(await w.exit, w.stderr()).toEqual({ code: 0, signal: null });
        const results: ExtractLine[] = [];
        for await (const line of jobResults({ redis: redis.url, queue })) results.push(line);
        const pages = results.filter((l) => l.file === letter).sort((a, b) => a.page! - b.page!);
        expect(pages).toHaveLength(3);
        for (const [i, line] of pages.entries()) {
            const r = refLines[i]!;
            expect({ ...essence(line), page: line.page, pages: line.pages, images: line.images }).toEqual({
                ...essence(r),
                page: r.page,
                pages: 3,
                images: r.images,
            });
        }
        const bad = results.filter((l) => l.file === locked);
        expect(bad).toHaveLength(1);
        expect(bad[0]!.error?.code).toBe("DOCUMENT_ENCRYPTED");
        expect(w.events.filter((e) => e.file === locked && e.event === "failed")).toHaveLength(1);
    });

    it("refuses bad input before it queues anything", async () => {
        const redis = await startRedis();
        servers.push(redis);
        const big = { data: new Uint8Array(64 * 1024 + 1), name: "big" };
        await expect(submitJobs({ redis: redis.url, images: [big] })).rejects.toMatchObject({ code: "INVALID_OPTION" });
        await expect(
            submitJobs({ redis: redis.url, images: [images[0]!], settings: { sampling: { topK: -3 } } }),
        ).rejects.toMatchObject({ code: "INVALID_OPTION", message: expect.stringContaining("topK") });
        await expect(submitJobs({ redis: redis.url, images: [path.join(tmp, "none.png")] })).rejects.toMatchObject({
            code: "FILE_NOT_FOUND",
        });
        expect((await queueStatus({ redis: redis.url })).waiting).toBe(0);
        const r = await cli(["queue", "submit", images[0]!, "--redis", "redis://127.0.0.1:1", "--queue", "x"]);
        expect(r.code).toBe(1);
        expect(r.err).toContain("Could not reach Redis at redis://127.0.0.1:1");
        for (const command of [["queue", "submit"], ["queue", "status"], ["queue", "results"], ["worker"]]) {
            const help = await cli([...command, "--help"]);
            expect(help.code).toBe(0);
            expect(help.out).toContain("Examples:");
        }
    });
});
