#!/usr/bin/env node
// What the queue costs and what a second worker process on the same machine brings: the same N images with the
// same greedy settings (text-heavy: --tokens generated per image) through `llama-vlm extract`, through one
// `llama-vlm worker` draining a BullMQ queue on a redis-server started here, and through two workers. Runs
// alternate between the three (so all see the same machine load); medians of --runs. Every wall time is from
// process start to the last image done (model load included, the same in all three); `queue submit` is timed
// apart. Threads are split so that the workers together use --threads (default: the machine's cores).
//
//   node scripts/bench-queue.mjs [--images 24] [--tokens 128] [--parallel 2] [--runs 3] [--threads N]
//
// Needs redis-server (Debian package redis-server) and `npm run compile` (done here).
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { DIST, ROOT, rawPixels, tinyPair } from "./script-fixtures.mjs";

const { values: args } = parseArgs({
    options: {
        images: { type: "string", default: "24" },
        tokens: { type: "string", default: "128" },
        parallel: { type: "string", default: "2" },
        runs: { type: "string", default: "3" },
        threads: { type: "string" },
    },
});
const N = Number(args.images);
const tokens = Number(args.tokens);
const parallel = Number(args.parallel);
const runs = Number(args.runs);
const threads = Number(args.threads ?? os.availableParallelism());
const CLI = path.join(DIST, "cli", "main.js");

let redisBin;
try {
    redisBin = execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
} catch {
    console.error("redis-server not found: install the Debian package redis-server (apt-get install -y redis-server)");
    process.exit(1);
}
execFileSync("npm", ["run", "compile"], { cwd: ROOT, stdio: "ignore" });
const pair = await tinyPair();

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-bench-queue-"));
const scans = path.join(tmp, "scans");
fs.mkdirSync(scans);
for (let i = 0; i < N; i++) {
    const data = Buffer.from(rawPixels(224, 224, 3, i + 1));
    await sharp(data, { raw: { width: 224, height: 224, channels: 3 } })
        .png()
        .toFile(path.join(scans, `scan-${String(i).padStart(3, "0")}.png`));
}

const port = await new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
        const p = s.address().port;
        s.close(() => resolve(p));
    });
});
const redisDir = path.join(tmp, "redis");
fs.mkdirSync(redisDir);
const redis = spawn(redisBin, ["--port", String(port), "--bind", "127.0.0.1", "--dir", redisDir, "--save", ""], {
    stdio: "ignore",
});
const url = `redis://127.0.0.1:${port}`;
for (let i = 0; ; i++) {
    try {
        execFileSync(process.execPath, [CLI, "queue", "status", "--redis", url, "--queue", "probe"], {
            stdio: "ignore",
        });
        break;
    } catch (err) {
        if (i > 50) throw err;
        await new Promise((r) => setTimeout(r, 100));
    }
}

const settings = ["-n", String(tokens), "--temp", "0"];
const model = ["-m", pair.model, "--projector", pair.projector];

function run(argv) {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [CLI, ...argv], { stdio: ["ignore", "ignore", "pipe"] });
        let err = "";
        child.stderr.on("data", (d) => (err += d));
        child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${argv[0]} exited ${code}: ${err}`))));
    });
}

async function timeExtract(r) {
    const t0 = performance.now();
    const out = path.join(tmp, `extract-${r}.jsonl`);
    await run([
        "extract",
        scans,
        ...model,
        ...settings,
        "--parallel",
        String(parallel),
        "--threads",
        String(threads),
        "--out",
        out,
        "--quiet",
    ]);
    const seconds = (performance.now() - t0) / 1000;
    const lines = fs.readFileSync(out, "utf8").trim().split("\n");
    if (lines.length !== N) throw new Error(`extract wrote ${lines.length} lines, expected ${N}`);
    return seconds;
}

/** Submits the images to a fresh queue, then starts `workers` workers and times them until every job is done. */
async function timeWorkers(workers, r) {
    const queue = `bench-${workers}-${r}`;
    const s0 = performance.now();
    await run(["queue", "submit", scans, "--redis", url, "--queue", queue, ...settings, "-q"]);
    const submitSeconds = (performance.now() - s0) / 1000;
    const perWorker = Math.max(1, Math.floor(threads / workers));
    const t0 = performance.now();
    let done = 0;
    let finished;
    const allDone = new Promise((resolve) => {
        finished = resolve;
    });
    const children = [];
    for (let w = 0; w < workers; w++) {
        const child = spawn(
            process.execPath,
            [
                CLI,
                "worker",
                "--redis",
                url,
                "--queue",
                queue,
                ...model,
                "--parallel",
                String(parallel),
                "--threads",
                String(perWorker),
                "--json",
                "-q",
            ],
            { stdio: ["ignore", "pipe", "inherit"] },
        );
        let partial = "";
        child.stdout.on("data", (d) => {
            partial += d;
            const lines = partial.split("\n");
            partial = lines.pop();
            for (const line of lines) {
                if (line.includes('"event":"completed"') && ++done === N) finished(performance.now());
            }
        });
        children.push({ child, exit: new Promise((resolve) => child.on("exit", resolve)) });
    }
    const end = await allDone;
    for (const c of children) c.child.kill("SIGTERM");
    await Promise.all(children.map((c) => c.exit));
    return { seconds: (end - t0) / 1000, submitSeconds };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { extract: [], one: [], two: [], submit: [] };
try {
    for (let r = 0; r < runs; r++) {
        // Rotate the order so that no configuration always runs first.
        const order = [
            ["extract", () => timeExtract(r)],
            ["one", () => timeWorkers(1, r)],
            ["two", () => timeWorkers(2, r)],
        ];
        for (let k = 0; k < r % 3; k++) order.push(order.shift());
        for (const [name, fn] of order) {
            const t = await fn();
            if (typeof t === "number") results[name].push(t);
            else {
                results[name].push(t.seconds);
                results.submit.push(t.submitSeconds);
            }
        }
        process.stderr.write(
            `run ${r + 1}/${runs}: extract ${results.extract.at(-1).toFixed(2)} s, 1 worker ${results.one.at(-1).toFixed(2)} s, 2 workers ${results.two.at(-1).toFixed(2)} s\n`,
        );
    }
} finally {
    redis.kill("SIGTERM");
    await new Promise((r) => redis.on("exit", r));
    fs.rmSync(tmp, { recursive: true, force: true });
}

const perMin = (s) => (N / s) * 60;
const ex = median(results.extract);
const one = median(results.one);
const two = median(results.two);
console.log(
    `tiny qwen2.5-vl q8_0, ${N} images 224×224, ${tokens} generated tokens each (greedy), --parallel ${parallel} per process, ` +
        `${threads} threads in all; median of ${runs} runs (wall time from process start to the last image, model load included)`,
);
console.log("| how | threads per process | wall s | images/min | vs extract |");
console.log("|---|---|---|---|---|");
console.log(`| extract | ${threads} | ${ex.toFixed(2)} | ${perMin(ex).toFixed(1)} | 1.00 |`);
console.log(`| 1 worker | ${threads} | ${one.toFixed(2)} | ${perMin(one).toFixed(1)} | ${(ex / one).toFixed(2)} |`);
console.log(
    `| 2 workers | ${Math.max(1, Math.floor(threads / 2))} | ${two.toFixed(2)} | ${perMin(two).toFixed(1)} | ${(ex / two).toFixed(2)} |`,
);
console.log(
    `2 workers / 1 worker throughput: ×${(one / two).toFixed(2)}; queue overhead per job (1 worker − extract) / ${N}: ` +
        `${(((one - ex) / N) * 1000).toFixed(1)} ms; queue submit of ${N} images: ${median(results.submit).toFixed(2)} s (median)`,
);
