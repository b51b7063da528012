#!/usr/bin/env node
// The runtime smoke suite: what an application embedding llama-vlm does, run under whatever runtime runs this
// file — Node, Bun or Deno (`deno run -A`). Not a vitest file (vitest.config.ts collects test/**/*.test.ts only):
// vitest runs under Node, and the point here is the other runtimes.
//
//   node test/runtime/smoke.mjs [--package DIR] [--model M --projector P]
//   bun test/runtime/smoke.mjs
//   deno run -A test/runtime/smoke.mjs
//
// --package: the llama-vlm package to test (its dist/ and addon), default this repository. Without --model it
// writes the tiny synthetic Qwen2.5-VL pair with this repository's synth factory (needs vendor/llama.cpp).
// Each feature prints one line with Y or N and why; then one table row (README's runtime × feature table) and
// "smoke: PASS <runtime>" when every feature works, or exit code 1. Bounded: every child process and request
// has a time limit, so a hang is an N, never a stuck CI job.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");

/** This runtime's name and version, as the table shows it. */
function runtime() {
    if (typeof globalThis.Bun !== "undefined") return { name: "bun", version: globalThis.Bun.version };
    if (typeof globalThis.Deno !== "undefined") return { name: "deno", version: globalThis.Deno.version.deno };
    return { name: "node", version: process.versions.node };
}

/** The command line that runs `script` with `args` under this same runtime. */
function self(script, args) {
    const rt = runtime().name;
    if (rt === "deno") return [process.execPath, ["run", "-A", script, ...args]];
    return [process.execPath, [script, ...args]];
}

/** Runs a command to its end (bounded): exit code, signal, output. */
function run(cmd, args, { timeoutMs = 120_000, cwd, env } = {}) {
    return new Promise((resolve) => {
        const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => {
            stdout += d;
        });
        child.stderr.on("data", (d) => {
            stderr += d;
        });
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
    });
}

function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

/** A 64×64 gradient as raw RGB. */
function rawImage(seed = 0) {
    const width = 64;
    const height = 64;
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
            const i = (y * width + x) * 3;
            data[i] = (x * 4 + seed * 37) & 255;
            data[i + 1] = (y * 4) & 255;
            data[i + 2] = ((x + y) * 2 + seed) & 255;
        }
    }
    return { data, width, height };
}

const request = (extra = {}) => ({
    prompt: "<__media__>Describe the image.",
    images: [rawImage()],
    temperature: 0,
    maxTokens: 12,
    ...extra,
});

// A child mode: load the model, stream a request and exit from inside the stream (a request in flight).
async function exitInFlight(pkg, modelPath, projectorPath) {
    const { loadModel, setLogger } = await import(pathToFileURL(path.join(pkg, "dist", "index.js")).href);
    setLogger(null);
    const model = await loadModel({ model: modelPath, projector: projectorPath });
    const ctx = await model.createContext({ contextSize: 1024, parallel: 2 });
    ctx.complete(request({ maxTokens: -1 })).catch(() => {});
    for await (const _ of ctx.stream(request({ maxTokens: -1 }))) {
        console.log("streaming");
        process.exit(7);
    }
}

// A child mode: an isolated model, one request, then nothing: the process must end by itself (an idle engine process
// does not hold it). Prints the engine process's command line first.
async function isolatedIdle(pkg, modelPath, projectorPath) {
    const { loadModel, setLogger } = await import(pathToFileURL(path.join(pkg, "dist", "index.js")).href);
    setLogger(null);
    const model = await loadModel({ model: modelPath, projector: projectorPath, isolation: "process" });
    const ctx = await model.createContext({ contextSize: 1024, parallel: 1 });
    const result = await ctx.complete(request());
    const engine = execFileSync("ps", ["-o", "args=", "--ppid", String(process.pid)], { encoding: "utf8" })
        .split("\n")
        .find((line) => line.includes("child.js"));
    console.log(JSON.stringify({ text: result.text, engine: engine?.trim() }));
}

const { values: opts } = parseArgs({
    options: {
        package: { type: "string", default: repo },
        model: { type: "string" },
        projector: { type: "string" },
        mode: { type: "string" },
    },
});
const pkg = path.resolve(opts.package);

if (opts.mode === "exit-in-flight") {
    await exitInFlight(pkg, opts.model, opts.projector);
    process.exit(3); // the stream ended without a token: not the case under test
}
if (opts.mode === "isolated-idle") {
    await isolatedIdle(pkg, opts.model, opts.projector);
    // No exit call: the event loop must empty by itself.
} else {
    await main();
}

async function main() {
    const rt = runtime();
    const results = [];
    /** Runs one feature check: Y when it returns, N with the error's code and message when it throws. */
    async function feature(name, check) {
        const started = Date.now();
        try {
            const note = await withTimeout(Promise.resolve().then(check), 180_000, name);
            results.push({ name, ok: true });
            console.log(`  Y ${name}${note ? ` (${note})` : ""} [${Date.now() - started} ms]`);
        } catch (err) {
            const code = err?.code ? `${err.code}: ` : "";
            results.push({ name, ok: false, why: `${code}${err?.message ?? err}` });
            console.log(`  N ${name}: ${err?.constructor?.name ?? "Error"} ${code}${err?.message ?? err}`);
        }
    }
    function expect(condition, message) {
        if (!condition) throw new Error(message);
    }

    console.log(`llama-vlm smoke under ${rt.name} ${rt.version} (${process.platform}-${process.arch}), package ${pkg}`);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-smoke-"));
    let api;
    let modelPath = opts.model;
    let projectorPath = opts.projector;
    let model;
    let ctx;
    let greedy;

    await feature("load addon", async () => {
        api = await import(pathToFileURL(path.join(pkg, "dist", "index.js")).href);
        api.setLogger(null);
        const v = api.version();
        expect(typeof v.llamaCpp?.commit === "string", `version() returned ${JSON.stringify(v)}`);
        return `${v.build} build, ${v.loadedBackends.join("+")}, ${v.variant}`;
    });

    await feature("load model", async () => {
        if (modelPath === undefined) {
            const { writeModelPair } = await import(pathToFileURL(path.join(repo, "dist", "synth", "index.js")).href);
            const pair = await writeModelPair({ family: "qwen2.5-vl", size: "tiny", outDir: path.join(work, "model") });
            modelPath = pair.model;
            projectorPath = pair.projector;
        }
        model = await api.loadModel({ model: modelPath, projector: projectorPath });
        ctx = await model.createContext({ contextSize: 1024, parallel: 2 });
        return `${path.basename(modelPath)}`;
    });

    await feature("stream", async () => {
        const stream = ctx.stream(request());
        let text = "";
        let chunks = 0;
        for await (const chunk of stream) {
            text += chunk.text;
            chunks++;
        }
        const result = await stream.result;
        expect(chunks > 0, "no chunks were streamed");
        expect(
            text === result.text,
            `streamed text ${JSON.stringify(text)} is not the result ${JSON.stringify(result.text)}`,
        );
        greedy = result.text;
        return `${chunks} chunks, stop ${result.stopReason}`;
    });

    await feature("abort", async () => {
        const controller = new AbortController();
        const stream = ctx.stream(request({ maxTokens: -1, signal: controller.signal }));
        let chunks = 0;
        for await (const _ of stream) {
            if (++chunks === 2) controller.abort();
        }
        const result = await stream.result;
        expect(result.stopReason === "abort", `stopReason is ${result.stopReason}, expected abort`);
        return `after ${chunks} chunks`;
    });

    await feature("parallel", async () => {
        const results = await Promise.all([ctx.complete(request()), ctx.complete(request()), ctx.complete(request())]);
        for (const r of results) expect(r.text === greedy, `a parallel greedy result differs from the solo one`);
        return `${results.length} requests on 2 slots`;
    });

    await feature("coded error", async () => {
        const codes = [];
        await ctx.complete(request({ topK: -3 })).catch((e) => codes.push(e.code));
        await api
            .loadModel({ model: path.join(work, "missing.gguf") })
            .then((m) => m.dispose())
            .catch((e) => codes.push(e.code));
        expect(
            codes.join() === "INVALID_OPTION,FILE_NOT_FOUND",
            `codes ${JSON.stringify(codes)}, expected INVALID_OPTION, FILE_NOT_FOUND`,
        );
        return codes.join(", ");
    });

    await feature("dispose", async () => {
        await model.dispose();
        const code = await ctx.complete(request()).then(
            () => "none",
            (e) => e.code,
        );
        expect(code === "DISPOSED", `a request after dispose gave ${code}, expected DISPOSED`);
        await model.dispose(); // idempotent
        return "requests after it fail with DISPOSED";
    });

    await feature("worker_threads", async () => {
        const { Worker } = await import("node:worker_threads");
        const worker = new Worker(new URL("./smoke-worker.mjs", import.meta.url), {
            workerData: {
                dist: pathToFileURL(path.join(pkg, "dist", "index.js")).href,
                modelPath,
                projectorPath,
                image: rawImage(),
                request: { ...request(), images: undefined },
            },
        });
        const text = await new Promise((resolve, reject) => {
            worker.once("message", (m) => (m.error ? reject(new Error(m.error)) : resolve(m.text)));
            worker.once("error", reject);
            worker.once("exit", (code) => reject(new Error(`the worker exited with code ${code} before answering`)));
        });
        await worker.terminate();
        expect(text === greedy, `the worker's greedy text ${JSON.stringify(text)} differs from this thread's`);
        return "same greedy text as the main thread";
    });

    await feature("isolation", async () => {
        const isolated = await api.loadModel({ model: modelPath, projector: projectorPath, isolation: "process" });
        try {
            const c = await isolated.createContext({ contextSize: 1024, parallel: 2 });
            const r = await c.complete(request());
            expect(r.text === greedy, `the isolated greedy text ${JSON.stringify(r.text)} differs from in-process`);
        } finally {
            await isolated.dispose();
        }
        const [cmd, args] = self(fileURLToPath(import.meta.url), [
            "--mode",
            "isolated-idle",
            "--package",
            pkg,
            "--model",
            modelPath,
            "--projector",
            projectorPath,
        ]);
        const idle = await run(cmd, args, { timeoutMs: 60_000 });
        expect(
            idle.code === 0 && idle.signal === null,
            `a process with an idle isolated model did not end by itself: code ${idle.code}, signal ${idle.signal}; stderr: ${idle.stderr.slice(-500)}`,
        );
        const { text, engine } = JSON.parse(idle.stdout.trim().split("\n").at(-1));
        expect(text === greedy, `the isolated greedy text ${JSON.stringify(text)} differs from in-process`);
        return `same greedy text as in-process; an idle engine lets the process end; engine process: ${engine}`;
    });

    await feature("exit in flight", async () => {
        const [cmd, args] = self(fileURLToPath(import.meta.url), [
            "--mode",
            "exit-in-flight",
            "--package",
            pkg,
            "--model",
            modelPath,
            "--projector",
            projectorPath,
        ]);
        const r = await run(cmd, args, { timeoutMs: 120_000 });
        expect(
            r.code === 7 && r.signal === null && r.stdout.includes("streaming"),
            `the process ended with code ${r.code}, signal ${r.signal} (expected code 7 from process.exit(7) mid-stream); stderr: ${r.stderr.slice(-500)}`,
        );
        return "process.exit(7) mid-stream exits with 7";
    });

    await feature("cli extract", async () => {
        const image = path.join(work, "page.png");
        // sharp as the package under test resolves it (its dependency).
        const sharp = createRequire(path.join(pkg, "package.json"))("sharp");
        const raw = rawImage(1);
        await sharp(Buffer.from(raw.data), { raw: { width: raw.width, height: raw.height, channels: 3 } })
            .png()
            .toFile(image);
        const out = path.join(work, "out.jsonl");
        const [cmd, args] = self(path.join(pkg, "dist", "cli", "main.js"), [
            "extract",
            image,
            "-m",
            modelPath,
            "--projector",
            projectorPath,
            "-n",
            "6",
            "--parallel",
            "1",
            "-c",
            "1024",
            "--temperature",
            "0",
            "-q",
            "-o",
            out,
        ]);
        const r = await run(cmd, args, { timeoutMs: 120_000 });
        expect(r.code === 0, `extract exited with ${r.code} (signal ${r.signal}): ${r.stderr.slice(-500)}`);
        const lines = fs.readFileSync(out, "utf8").trim().split("\n").map(JSON.parse);
        expect(lines.length === 1 && typeof lines[0].text === "string", `unexpected output ${JSON.stringify(lines)}`);
        return "1 image → 1 JSONL line";
    });

    fs.rmSync(work, { recursive: true, force: true });

    const columns = [
        "load addon",
        "load model",
        "stream",
        "abort",
        "parallel",
        "coded error",
        "dispose",
        "worker_threads",
        "isolation",
        "exit in flight",
        "cli extract",
    ];
    const mark = (name) => (results.find((r) => r.name === name)?.ok ? "Y" : "N");
    console.log(`| ${rt.name} ${rt.version} | ${columns.map(mark).join(" | ")} |`);
    const failed = results.filter((r) => !r.ok);
    if (failed.length > 0) {
        console.log(`smoke: FAIL ${rt.name} ${rt.version}: ${failed.map((r) => r.name).join(", ")}`);
        process.exit(1);
    }
    console.log(`smoke: PASS ${rt.name} ${rt.version} (${results.length} features)`);
    process.exit(0);
}
