/**
 * `llama-vlm worker`: a long-running process that drains a queue filled by `llama-vlm queue submit`, with a status
 * line. SIGTERM or Ctrl-C: stop taking jobs, finish those in flight (past the grace period, put them back), exit 0.
 */
import type { Command } from "commander";
import { Option } from "commander";
import { CONTEXT_OPTIONS } from "../options/context.js";
import { LOAD_OPTIONS } from "../options/load.js";
import { createWorker, type QueueWorker, type WorkerEvent } from "../queue/worker.js";
import { setLogger } from "../system.js";
import { addOptionFlags, int, readOptionFlags } from "./flags.js";
import { CliExit, type CliIo } from "./io.js";
import { resolveForCli } from "./pull.js";
import { addQueueFlags } from "./queue.js";

interface WorkerFlags extends Record<string, unknown> {
    redis: string;
    queue: string;
    isolation: "none" | "process";
    name?: string;
    lockDuration: number;
    stalledInterval: number;
    maxStalled: number;
    grace: number;
    statusEvery: number;
    json?: boolean;
    quiet?: boolean;
}

export function registerWorker(program: Command, io: CliIo): void {
    const cmd = program
        .command("worker")
        .summary("drain a job queue (llama-vlm queue submit): load the model once, run jobs until stopped");
    addQueueFlags(cmd);
    addOptionFlags(cmd, LOAD_OPTIONS, ["model", "projector"]);
    addOptionFlags(cmd, CONTEXT_OPTIONS, ["parallel"]);
    cmd.addOption(
        new Option(
            "--isolation <mode>",
            "process: the engine in a child process; a native abort fails only the jobs in flight (retried)",
        )
            .choices(["none", "process"])
            .default("none"),
    );
    addOptionFlags(cmd, CONTEXT_OPTIONS, ["contextSize"]);
    addOptionFlags(cmd, LOAD_OPTIONS, ["gpuLayers"]);
    addOptionFlags(cmd, CONTEXT_OPTIONS, ["threads"]);
    cmd.option("--name <name>", "this worker's name in the queue (default: hostname:pid)")
        .option(
            "--lock-duration <ms>",
            "a job's lock; renewed every half of it while the job runs",
            int("--lock-duration", 100),
            30_000,
        )
        .option(
            "--stalled-interval <ms>",
            "how often to look for jobs of dead workers (lock expired) and put them back",
            int("--stalled-interval", 100),
            30_000,
        )
        .option("--max-stalled <n>", "times a job may lose its worker before it fails", int("--max-stalled", 0), 1)
        .option(
            "--grace <s>",
            "on SIGTERM: seconds jobs in flight may take before they are put back",
            int("--grace", 0),
            60,
        )
        .option(
            "--status-every <s>",
            "seconds between status lines when stderr is not a terminal",
            int("--status-every", 1),
            30,
        )
        .option("--json", "one JSON line per job event on stdout (active, completed, failed, released)")
        .option("-q, --quiet", "no status line");
    cmd.addHelpText(
        "after",
        `
The worker decodes up to --parallel jobs together in one context, and holds as many more whose images it prepares
ahead (2 × --parallel jobs in flight, as extract does). A job whose image is missing or changed, does not
decode, or does not fit fails at once with its error code; a crashed engine (--isolation process) or an unreachable
URL is retried with the job's backoff. A worker that dies (kill -9, out of memory) loses its locks: after
--lock-duration, another worker's stalled check (every --stalled-interval) puts its jobs back. SIGTERM / Ctrl-C: stop
taking jobs, let those in flight finish (at most --grace seconds, then they go back to the queue), exit 0; a second
signal puts them back at once.

Exit codes: 0 stopped by a signal, 1 could not start (model, Redis).

Examples:
  llama-vlm worker --redis redis://queue-host:6379 --queue scans -m qwen2.5-vl-3b-q4_0.gguf --projector mmproj.gguf --parallel 4
  LLAMA_VLM_REDIS=redis://queue-host:6379 llama-vlm worker --queue scans -m model.gguf --projector mmproj.gguf --gpu-layers 99
  llama-vlm worker --queue scans -m model.gguf --projector mmproj.gguf --isolation process --json
  llama-vlm worker --queue scans -m hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF --parallel 4`,
    );
    cmd.action(async (o: WorkerFlags) => {
        const code = await runWorker(o, io);
        if (code !== 0) throw new CliExit(code);
    });
}

async function runWorker(o: WorkerFlags, io: CliIo): Promise<number> {
    const { model, projector, gpuLayers } = readOptionFlags(LOAD_OPTIONS, o);
    const { contextSize, parallel, threads } = readOptionFlags(CONTEXT_OPTIONS, o);
    const tty = Boolean(io.stderr.isTTY) && !o.quiet;
    const say = (line: string) => {
        if (o.quiet) return;
        io.stderr.write(tty ? `\r\x1b[K${line}\n` : `${line}\n`);
    };
    setLogger((level, line) => {
        if (level === "error") say(`llama.cpp: ${line}`);
    }, "error");
    let lastError = "";
    const onEvent = (e: WorkerEvent) => {
        if (o.json && e.type !== "error") {
            const { type, ...rest } = e;
            io.stdout.write(`${JSON.stringify({ event: type, ...rest })}\n`);
        }
        if (e.type === "failed")
            say(`worker: ${e.file}: ${e.code}: ${e.message}${e.final ? "" : " (will be retried)"}`);
        else if (e.type === "error" && e.message !== lastError) {
            // A Redis that is away repeats the same error on every reconnection attempt: say it once.
            lastError = e.message;
            say(`worker: ${e.message}`);
        }
    };
    // Signals are taken from the start: one that comes while the model loads stops the worker once it has loaded.
    let worker: QueueWorker | undefined;
    let signals = 0;
    let stop!: () => void;
    const stopRequested = new Promise<void>((resolve) => {
        stop = resolve;
    });
    const onSignal = () => {
        signals++;
        if (signals === 1) {
            say(`worker: stopping: finishing ${worker?.stats().active ?? 0} job(s) in flight (grace ${o.grace} s)`);
            stop();
        } else if (worker) {
            say("worker: putting the jobs in flight back to the queue");
            void worker.close({ graceMs: 0 });
        }
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    try {
        try {
            // hf: and URL references are fetched (or found in the cache) once, before the worker takes jobs.
            const resolved = await resolveForCli(io, model!, projector, {
                prefix: "worker",
                ...(o.quiet ? { quiet: true } : {}),
            });
            worker = await createWorker({
                redis: o.redis,
                queue: o.queue,
                model: resolved.model,
                ...(resolved.projector ? { projector: resolved.projector } : {}),
                ...(gpuLayers !== undefined ? { gpuLayers } : {}),
                parallel: parallel!,
                ...(contextSize ? { contextSize } : {}),
                ...(threads ? { threads } : {}),
                isolation: o.isolation,
                ...(o.name ? { name: o.name } : {}),
                lockDurationMs: o.lockDuration,
                stalledIntervalMs: o.stalledInterval,
                maxStalledCount: o.maxStalled,
                graceMs: o.grace * 1000,
                onEvent,
            });
        } catch (err) {
            io.stderr.write(`llama-vlm: ${(err as Error).message}\n`);
            return 1;
        }
        const w = worker;
        const statusLine = () => {
            const s = w.stats();
            return `worker ${w.name}: ${s.done} done, ${s.failed} failed, ${s.active} active, ${s.imagesPerMinute.toFixed(1)} images/min`;
        };
        say(`worker ${w.name}: waiting for jobs on ${o.queue} (parallel ${parallel})`);
        const timer = setInterval(
            () => {
                if (tty) io.stderr.write(`\r${statusLine()}\x1b[K`);
                else say(statusLine());
            },
            tty ? 1000 : o.statusEvery * 1000,
        );
        await stopRequested;
        await w.close();
        clearInterval(timer);
        say(`${statusLine()}; stopped`);
        return 0;
    } finally {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
    }
}
