/**
 * `llama-vlm queue submit|status|results`: the producer's side of a fleet of workers on BullMQ + Redis. Jobs are
 * named by content hash, so submitting a corpus twice adds nothing; results come back as `extract`'s JSONL lines.
 */
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import type { ExtractLine } from "../extraction.js";
import { jobResults, queueStatus, type SubmitImage, submitJobs } from "../queue/producer.js";
import { DEFAULT_QUEUE } from "../queue/redis.js";
import { expandInputs } from "./extract.js";
import { int } from "./flags.js";
import type { CliIo } from "./io.js";
import { addPromptFlags, addSamplerFlags, readSettingsFlags } from "./settings.js";

/** The default Redis server and queue of every queue command: LLAMA_VLM_REDIS and LLAMA_VLM_QUEUE, or these. */
export const DEFAULT_REDIS = "redis://127.0.0.1:6379";

/** --redis and --queue. */
export function addQueueFlags(cmd: Command): void {
    cmd.option(
        "--redis <url>",
        `Redis server (default: $LLAMA_VLM_REDIS or ${DEFAULT_REDIS})`,
        process.env.LLAMA_VLM_REDIS || DEFAULT_REDIS,
    ).option(
        "--queue <name>",
        "queue name (default: $LLAMA_VLM_QUEUE or llama-vlm)",
        process.env.LLAMA_VLM_QUEUE || DEFAULT_QUEUE,
    );
}

interface QueueFlags extends Record<string, unknown> {
    redis: string;
    queue: string;
}

export function registerQueue(program: Command, io: CliIo): void {
    const queue = program
        .command("queue")
        .summary("submit images to a job queue that llama-vlm workers drain; its status; its results")
        .description(
            "A queue on Redis (BullMQ) that any number of `llama-vlm worker` processes, on any number of machines, drain.",
        );
    queue.addHelpText(
        "after",
        `
Examples:
  llama-vlm queue submit /mnt/scans --redis redis://queue-host:6379 --queue scans --preset clinical
  llama-vlm queue status --redis redis://queue-host:6379 --queue scans
  llama-vlm queue results --redis redis://queue-host:6379 --queue scans --out results.jsonl`,
    );

    const submit = queue
        .command("submit")
        .summary(
            "one job per image (and per document page); an image already queued or done with the same settings is not added again",
        )
        .argument(
            "<inputs...>",
            "image files, folders (searched recursively), glob patterns, or http(s) URLs; paths must be where every worker sees them",
        );
    addQueueFlags(submit);
    addPromptFlags(submit);
    addSamplerFlags(submit, (c) =>
        c
            .option("--attempts <n>", "tries of a job that meets transient errors", int("--attempts", 1), 3)
            .option("--backoff <ms>", "first retry delay, doubled on each retry", int("--backoff", 0), 10_000)
            .option(
                "--pages <list>",
                'pages of each document (PDF, multi-page TIFF/GIF/WebP), one job each: "all" (default), "2", "1-3", "1,3-5"',
            )
            .option("-q, --quiet", "print nothing but the summary line"),
    );
    submit.addHelpText(
        "after",
        `
The job id is the sha256 of the image's bytes and the settings (prompt, preset, sampler flags): submitting the same
corpus again adds 0 jobs; changing a setting makes new jobs. Jobs carry a path or URL and the image's sha256, not
the image: a worker fails a job whose file is missing (FILE_NOT_FOUND) or changed (IMAGE_CHANGED). A document (a PDF,
or a TIFF/GIF/WebP with several pages) gives one job per page (--pages), rendered at extract's page budget (1 MP);
its results carry "page" and "pages" as extract's lines do.

Prints "<n> added, <m> already queued or done". Exit codes: 0 done, 1 bad options, unreadable input or no Redis.

Examples:
  llama-vlm queue submit /mnt/scans --redis redis://queue-host:6379 --queue scans --preset clinical
  llama-vlm queue submit 'scans/**/*.png' --queue scans --chat-template vicuna --temp 0.05 --stop "</s>" -n 512
  llama-vlm queue submit https://files.example.org/scan-0001.png --queue scans`,
    );
    submit.action(async (inputs: string[], o: QueueFlags) => {
        const settings = readSettingsFlags(o);
        const urls = inputs.filter((i) => /^https?:\/\//i.test(i));
        const files = await expandInputs(inputs.filter((i) => !urls.includes(i)));
        const images: SubmitImage[] = [...files, ...urls];
        if (!o.quiet) io.stderr.write(`queue submit: ${images.length} image(s) to ${o.queue} at ${o.redis}\n`);
        const r = await submitJobs({
            redis: o.redis,
            queue: o.queue,
            images,
            settings,
            ...(o.pages !== undefined ? { pages: o.pages as string } : {}),
            attempts: o.attempts as number,
            backoffMs: o.backoff as number,
        });
        io.stdout.write(`${r.added} added, ${r.existing} already queued or done\n`);
    });

    const status = queue
        .command("status")
        .summary("jobs by state (waiting, active, delayed, completed, failed), throughput, oldest waiting");
    addQueueFlags(status);
    status.option("--json", "one JSON object, for scripts");
    status.addHelpText(
        "after",
        `
--json prints {"queue", "waiting", "active", "delayed", "completed", "failed", "finishedLastMinute", "perMinute",
"oldestWaitingMs"}; delayed jobs are waiting to be retried.

Examples:
  llama-vlm queue status --redis redis://queue-host:6379 --queue scans
  watch -n 10 llama-vlm queue status --queue scans
  llama-vlm queue status --queue scans --json | jq .failed`,
    );
    status.action(async (o: QueueFlags) => {
        const s = await queueStatus({ redis: o.redis, queue: o.queue });
        if (o.json) {
            io.stdout.write(`${JSON.stringify(s)}\n`);
            return;
        }
        const oldest = s.oldestWaitingMs === null ? "none" : `${(s.oldestWaitingMs / 1000).toFixed(0)} s ago`;
        io.stdout.write(
            `queue ${s.queue}: ${s.waiting} waiting, ${s.active} active, ${s.delayed} delayed (retry), ` +
                `${s.completed} completed, ${s.failed} failed\n` +
                `throughput: ${s.finishedLastMinute} finished in the last minute, ${s.perMinute.toFixed(1)}/min over 5 minutes; ` +
                `oldest waiting: ${oldest}\n`,
        );
    });

    const results = queue
        .command("results")
        .summary("finished jobs as extract's JSONL lines, each job once; resumable with --out");
    addQueueFlags(results);
    results
        .option(
            "-o, --out <file>",
            "JSONL file to append to; jobs already in it are skipped (a rerun adds only new ones)",
        )
        .option("--wait", "first wait until no job is waiting, running or waiting to retry")
        .option("-q, --quiet", "no summary on stderr");
    results.addHelpText(
        "after",
        `
Completed jobs give the line the worker wrote (the same fields as \`extract --out\`, plus "job", the job id); failed
jobs (a permanent error, or out of tries) give an error line { file, sha256, error: { code, message }, job }.

Examples:
  llama-vlm queue results --queue scans --out results.jsonl
  llama-vlm queue results --queue scans --wait --out results.jsonl
  llama-vlm queue results --queue scans | jq -r 'select(.error) | .file'`,
    );
    results.action(async (o: QueueFlags) => {
        if (o.wait) await waitDrained(o, io);
        const out = o.out ? path.resolve(o.out as string) : undefined;
        const done = out ? doneJobs(out) : new Set<string>();
        const fd = out ? fs.openSync(out, "a") : undefined;
        let written = 0;
        let failed = 0;
        let skipped = 0;
        try {
            for await (const line of jobResults({ redis: o.redis, queue: o.queue })) {
                if (done.has(line.job!)) {
                    skipped++;
                    continue;
                }
                done.add(line.job!);
                const text = `${JSON.stringify(line)}\n`;
                // One write per line: an interrupted export never leaves half a line.
                if (fd !== undefined) fs.writeSync(fd, text);
                else io.stdout.write(text);
                written++;
                if (line.error) failed++;
            }
        } finally {
            if (fd !== undefined) fs.closeSync(fd);
        }
        if (!o.quiet) {
            io.stderr.write(
                `queue results: ${written} written (${failed} failed jobs), ${skipped} already in ${out ?? "the output"}\n`,
            );
        }
    });
}

/** Jobs (by id) whose lines are in an earlier export. Torn last lines are ignored. */
function doneJobs(outFile: string): Set<string> {
    const done = new Set<string>();
    if (!fs.existsSync(outFile)) return done;
    for (const line of fs.readFileSync(outFile, "utf8").split("\n")) {
        if (!line.trim()) continue;
        try {
            const row = JSON.parse(line) as ExtractLine;
            if (row.job) done.add(row.job);
        } catch {
            // A line cut by a crash: the job is simply written again.
        }
    }
    return done;
}

async function waitDrained(o: QueueFlags, io: CliIo): Promise<void> {
    let said = "";
    for (;;) {
        const s = await queueStatus({ redis: o.redis, queue: o.queue });
        const left = s.waiting + s.active + s.delayed;
        if (left === 0) return;
        const line = `queue results: waiting for ${left} job(s)`;
        if (!o.quiet && line !== said) io.stderr.write(`${line}\n`);
        said = line;
        await new Promise((r) => setTimeout(r, 1000));
    }
}
