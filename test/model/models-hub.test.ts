/**
 * Model references against a local Hub (test/helpers/hub-server.ts: a real HTTP server on 127.0.0.1 with the Hub's
 * API shapes, serving synthetic GGUF pairs). No test touches the internet.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../lib/cli/main.js";
import { LlamaVlmError } from "../../lib/errors.js";
import { loadModel } from "../../lib/model.js";
import type { DownloadProgress } from "../../lib/models/download.js";
import { planModel, resolveModel } from "../../lib/models/resolve.js";
import { setLogger } from "../../lib/system.js";
import { testImages } from "../helpers/fixtures.js";
import { type HubFile, HubServer } from "../helpers/hub-server.js";
import { cachedModel, REPO_ROOT } from "../helpers/models.js";

const CLI = path.join(REPO_ROOT, "dist", "cli", "main.js");
const REPO = "test/qwen-vl";
const Q4 = "qwen-vl-Q4_0.gguf";
const Q8 = "qwen-vl-Q8_0.gguf";
const F16_PROJECTOR = "mmproj-qwen-vl-f16.gguf";

let tmp: string;
let files: Record<string, Buffer>;
let hub: HubServer;
const savedEnv = { ...process.env };
let cacheCount = 0;

/** A fresh, empty model cache folder for one test, set as LLAMA_VLM_MODELS. */
function freshCache(): string {
    const dir = path.join(tmp, `cache-${cacheCount++}`);
    process.env.LLAMA_VLM_MODELS = dir;
    return dir;
}

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const sha256File = (file: string) => sha256(fs.readFileSync(file));

async function startHub(): Promise<HubServer> {
    const repo: HubFile[] = [
        { path: "README.md", data: Buffer.from("# qwen-vl\nSynthetic test model.\n") },
        { path: Q4, data: files[Q4]! },
        { path: Q8, data: files[Q8]! },
        // Sorts before the F16 one: picking F16 is a preference, not the listing's order.
        { path: "mmproj-qwen-vl-Q8_0.gguf", data: files[F16_PROJECTOR]! },
        { path: F16_PROJECTOR, data: files[F16_PROJECTOR]! },
    ];
    return HubServer.start({
        [REPO]: repo,
        "test/text-only": [{ path: "text-Q4_0.gguf", data: files[Q4]! }],
        // Names only (planModel downloads nothing): which file a reference picks.
        "test/many": [
            "m-Q8_0.gguf",
            "m-Q4_0.gguf",
            "m-Q4_K_S.gguf",
            "m-Q4_K_M.gguf",
            "mmproj-m-BF16.gguf",
            "mmproj-m-F16.gguf",
        ].map((name) => ({ path: name, data: Buffer.from(name) })),
        "test/sharded": [
            "big-Q4_K_M-00001-of-00003.gguf",
            "big-Q4_K_M-00002-of-00003.gguf",
            "big-Q4_K_M-00003-of-00003.gguf",
            "big-Q8_0.gguf",
            "mmproj-big-f16.gguf",
        ].map((name) => ({ path: name, data: Buffer.from(name) })),
        "test/huge": [
            { path: "huge-Q4_0.gguf", data: Buffer.alloc(16), listedSize: 2 ** 52 },
            { path: "mmproj-huge-f16.gguf", data: files[F16_PROJECTOR]! },
        ],
    });
}

async function settle(work: () => Promise<unknown>): Promise<LlamaVlmError> {
    try {
        await work();
    } catch (error) {
        expect(error).toBeInstanceOf(LlamaVlmError);
        return error as LlamaVlmError;
    }
    throw new Error("expected an error");
}

function capture() {
    const io = { out: "", err: "" };
    return {
        io,
        streams: { stdout: { write: (s: string) => (io.out += s) }, stderr: { write: (s: string) => (io.err += s) } },
    };
}

beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-hub-"));
    const q4 = await cachedModel("qwen2.5-vl", { quant: "q4_0" });
    const q8 = await cachedModel("qwen2.5-vl", { quant: "q8_0" });
    files = {
        [Q4]: fs.readFileSync(q4.model),
        [Q8]: fs.readFileSync(q8.model),
        [F16_PROJECTOR]: fs.readFileSync(q4.projector!),
    };
    hub = await startHub();
    process.env.HF_ENDPOINT = hub.url;
    delete process.env.HF_TOKEN;
    delete process.env.HF_HUB_OFFLINE;
    setLogger(null);
});

afterEach(() => {
    hub.clearFaults();
    delete process.env.HF_HUB_OFFLINE;
    delete process.env.HF_TOKEN;
});

afterAll(async () => {
    await hub?.close();
    for (const key of ["HF_ENDPOINT", "LLAMA_VLM_MODELS", "HF_TOKEN", "HF_HUB_OFFLINE"]) {
        if (savedEnv[key] === undefined) delete process.env[key];
        else process.env[key] = savedEnv[key];
    }
    fs.rmSync(tmp, { recursive: true, force: true });
});

describe("loadModel with an hf: reference", () => {
    it("downloads the Q4_0 model and the F16 projector, verifies them and runs a request; a second load makes no request", async () => {
        const cache = freshCache();
        const progress: DownloadProgress[] = [];
        const before = hub.requests.length;
        const model = await loadModel({ model: `hf:${REPO}:Q4_0`, onDownloadProgress: (p) => progress.push(p) });
        try {
            expect(model.info.hasVision).toBe(true);
            const context = await model.createContext({ contextSize: 1024 });
            const [image] = await testImages();
            const result = await context.complete({
                prompt: "<__media__>Describe the image.",
                images: [image!],
                maxTokens: 4,
            });
            expect(result.tokens.length).toBeGreaterThan(0);
        } finally {
            await model.dispose();
        }
        const commit = hub.commitOf(REPO);
        const snapshot = path.join(cache, "hf", "test", "qwen-vl", "snapshots", commit);
        expect(sha256File(path.join(snapshot, Q4))).toBe(sha256(files[Q4]!));
        expect(sha256File(path.join(snapshot, F16_PROJECTOR))).toBe(sha256(files[F16_PROJECTOR]!));
        expect(fs.readdirSync(snapshot).sort()).toEqual([F16_PROJECTOR, Q4].sort());
        const first = hub.requests.slice(before);
        expect(first.filter((r) => r.path.startsWith("/api/models/test/qwen-vl/tree/main"))).toHaveLength(1);
        expect(hub.fileGets(Q4)).toHaveLength(1);
        expect(hub.fileGets(F16_PROJECTOR)).toHaveLength(1);
        expect(progress.filter((p) => p.file === Q4).at(-1)).toMatchObject({
            downloaded: files[Q4]!.length,
            total: files[Q4]!.length,
        });

        const count = hub.requests.length;
        const again = await loadModel({ model: `hf:${REPO}:Q4_0` });
        await again.dispose();
        expect(hub.requests.length, "requests made by the second load").toBe(count);
    });

    it("without a quantisation takes the default 4-bit file; info on the reference shows the pair", async () => {
        freshCache();
        const planned = await planModel({ model: `hf:${REPO}` });
        expect(planned.map((f) => [f.role, path.basename(f.path), f.quant, f.cached, f.verifiedBy])).toEqual([
            ["model", Q4, "Q4_0", false, "sha256"],
            ["projector", F16_PROJECTOR, "F16", false, "sha256"],
        ]);
        const info = capture();
        expect(await runCli(["info", `hf:${REPO}:Q4_0`], info.streams), info.io.err).toBe(0);
        expect(info.io.out).toContain(`model: hf:${REPO}/${Q4}@${hub.commitOf(REPO)} (Q4_0)`);
        expect(info.io.out).toContain(`projector: hf:${REPO}/${F16_PROJECTOR}@`);
        expect(info.io.out).toContain("not downloaded");
        await resolveModel({ model: `hf:${REPO}:Q4_0` });
        const cached = capture();
        expect(await runCli(["info", `hf:${REPO}:Q4_0`], cached.streams), cached.io.err).toBe(0);
        expect(cached.io.out).toContain("cached at");
        expect(cached.io.out).toContain("pair: yes");
    });
});

describe("which files a reference means", () => {
    it("no quantisation takes Q4_K_M before the other 4-bit files, and the F16 projector before BF16", async () => {
        freshCache();
        const planned = await planModel({ model: "hf:test/many" });
        expect(planned.map((f) => path.basename(f.path))).toEqual(["m-Q4_K_M.gguf", "mmproj-m-F16.gguf"]);
        const named = await planModel({ model: "hf:test/many:q4_k_s", projector: "hf:test/many/mmproj-m-BF16.gguf" });
        expect(named.map((f) => path.basename(f.path))).toEqual(["m-Q4_K_S.gguf", "mmproj-m-BF16.gguf"]);
    });

    it("a split GGUF brings its other parts", async () => {
        freshCache();
        const [model] = await planModel({ model: "hf:test/sharded" });
        expect(path.basename(model!.path)).toBe("big-Q4_K_M-00001-of-00003.gguf");
        expect(model!.shards?.map((f) => path.basename(f.path))).toEqual([
            "big-Q4_K_M-00002-of-00003.gguf",
            "big-Q4_K_M-00003-of-00003.gguf",
        ]);
        const resolved = await resolveModel({ model: "hf:test/sharded" });
        for (const name of ["big-Q4_K_M-00002-of-00003.gguf", "big-Q4_K_M-00003-of-00003.gguf"])
            expect(fs.readFileSync(path.join(path.dirname(resolved.model), name), "utf8")).toBe(name);
    });
});

describe("downloads", () => {
    it("a download cut at 40 % resumes from 40 % with a range request and verifies; nothing is at the final path before", async () => {
        freshCache();
        const size = files[Q8]!.length;
        const cut = Math.floor(size * 0.4);
        hub.dropAt(Q8, cut);
        const [model] = await planModel({ model: `hf:${REPO}:Q8_0` });
        const progress: DownloadProgress[] = [];
        const resolved = await resolveModel({
            model: `hf:${REPO}:Q8_0`,
            onProgress: (p) => {
                if (p.file === Q8) {
                    progress.push(p);
                    expect(fs.existsSync(model!.path), "the final path while downloading").toBe(false);
                }
            },
        });
        const gets = hub.fileGets(Q8);
        expect(gets).toHaveLength(2);
        expect(gets[0]!.range).toBeUndefined();
        // The resume starts where the bytes on disk end: the cut, less what the client had received but not yet
        // handed over when the connection broke (a stream that errors drops its queue).
        const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? "")?.[1]);
        expect(resumedAt).toBeGreaterThan(size * 0.35);
        expect(resumedAt).toBeLessThanOrEqual(cut);
        expect(gets[1]!.status).toBe(206);
        expect(progress.some((p) => p.resumedFrom === resumedAt)).toBe(true);
        expect(resolved.model).toBe(model!.path);
        expect(sha256File(resolved.model)).toBe(sha256(files[Q8]!));
        expect(fs.existsSync(`${resolved.model}.part`)).toBe(false);
        expect(Math.max(...progress.map((p) => p.downloaded))).toBe(size);
    });

    it("a network failure is NETWORK_ERROR and keeps the partial; the next call resumes it", async () => {
        freshCache();
        const cut = Math.floor(files[Q8]!.length * 0.4);
        hub.dropAt(Q8, cut, Number.POSITIVE_INFINITY);
        const [model] = await planModel({ model: `hf:${REPO}:Q8_0` });
        const error = await settle(() => resolveModel({ model: `hf:${REPO}:Q8_0` }));
        expect(error.code).toBe("NETWORK_ERROR");
        const kept = fs.statSync(`${model!.path}.part`).size;
        expect(kept).toBeGreaterThan(files[Q8]!.length * 0.35);
        expect(kept).toBeLessThanOrEqual(cut);
        expect(error.message).toContain(`${kept} bytes are kept`);
        expect(fs.existsSync(model!.path)).toBe(false);
        hub.clearFaults();
        const before = hub.fileGets(Q8).length;
        const resolved = await resolveModel({ model: `hf:${REPO}:Q8_0` });
        expect(
            hub
                .fileGets(Q8)
                .slice(before)
                .map((r) => r.range),
        ).toEqual([`bytes=${kept}-`]);
        expect(sha256File(resolved.model)).toBe(sha256(files[Q8]!));
    });

    it("a byte flipped in transit fails verification and is downloaded once more", async () => {
        freshCache();
        hub.corrupt(Q4, 1000, 1);
        const resolved = await resolveModel({ model: `hf:${REPO}:Q4_0` });
        expect(
            hub
                .fileGets(Q4)
                .slice(-2)
                .map((r) => r.range),
        ).toEqual([undefined, undefined]);
        expect(sha256File(resolved.model)).toBe(sha256(files[Q4]!));
    });

    it("a byte flipped every time is CHECKSUM_MISMATCH after one retry, and no file is left", async () => {
        freshCache();
        const before = hub.fileGets(Q4).length;
        hub.corrupt(Q4, 5000, Number.POSITIVE_INFINITY);
        const [model] = await planModel({ model: `hf:${REPO}:Q4_0` });
        const error = await settle(() => resolveModel({ model: `hf:${REPO}:Q4_0` }));
        expect(error.code).toBe("CHECKSUM_MISMATCH");
        expect(error.message).toContain(Q4);
        expect(hub.fileGets(Q4).length - before).toBe(2);
        expect(fs.readdirSync(path.dirname(model!.path))).toEqual([]);
    });

    it("an AbortSignal cancels the download and leaves a partial that the next call resumes", async () => {
        freshCache();
        hub.throttle = { bytes: 256 * 1024, delayMs: 20 };
        const controller = new AbortController();
        const [model] = await planModel({ model: `hf:${REPO}:Q4_0` });
        const error = await settle(() =>
            loadModel({
                model: `hf:${REPO}:Q4_0`,
                signal: controller.signal,
                onDownloadProgress: (p) => {
                    if (p.downloaded > p.total! * 0.3) controller.abort();
                },
            }),
        );
        expect(error.code).toBe("ABORTED");
        const kept = fs.statSync(`${model!.path}.part`).size;
        expect(kept).toBeGreaterThan(0);
        expect(kept).toBeLessThan(files[Q4]!.length);
        expect(fs.existsSync(`${model!.path}.lock`)).toBe(false);
        const before = hub.fileGets(Q4).length;
        const resolved = await resolveModel({ model: `hf:${REPO}:Q4_0` });
        expect(
            hub
                .fileGets(Q4)
                .slice(before)
                .map((r) => r.range),
        ).toEqual([`bytes=${kept}-`]);
        expect(sha256File(resolved.model)).toBe(sha256(files[Q4]!));
    });

    it("a file outside LFS is checked against its git blob id", async () => {
        freshCache();
        const ref = `hf:${REPO}/README.md`;
        const resolved = await resolveModel({ model: ref });
        expect(resolved.files[0]).toMatchObject({ verifiedBy: "git blob id" });
        expect(fs.readFileSync(resolved.model, "utf8")).toBe("# qwen-vl\nSynthetic test model.\n");
        freshCache();
        hub.corrupt("README.md", 3, Number.POSITIVE_INFINITY);
        expect((await settle(() => resolveModel({ model: ref }))).code).toBe("CHECKSUM_MISMATCH");
    });

    it("a lock left by a killed process is taken over and its partial resumed", async () => {
        freshCache();
        const [model] = await planModel({ model: `hf:${REPO}:Q4_0` });
        const dead = spawn(process.execPath, ["-e", ""]);
        await new Promise((resolve) => dead.on("close", resolve));
        fs.mkdirSync(path.dirname(model!.path), { recursive: true });
        fs.writeFileSync(`${model!.path}.lock`, `${dead.pid}\n`);
        fs.writeFileSync(`${model!.path}.part`, files[Q4]!.subarray(0, 100_000));
        const before = hub.fileGets(Q4).length;
        const resolved = await resolveModel({ model: `hf:${REPO}:Q4_0` });
        expect(
            hub
                .fileGets(Q4)
                .slice(before)
                .map((r) => r.range),
        ).toEqual(["bytes=100000-"]);
        expect(sha256File(resolved.model)).toBe(sha256(files[Q4]!));
        expect(fs.existsSync(`${model!.path}.lock`)).toBe(false);
    });

    it("a URL reference downloads once, checked by size and ETag", async () => {
        freshCache();
        const url = `${hub.url}/files/${Q4}`;
        const resolved = await resolveModel({ model: url });
        expect(resolved.files[0]).toMatchObject({ verifiedBy: "size and ETag", bytes: files[Q4]!.length });
        expect(sha256File(resolved.model)).toBe(sha256(files[Q4]!));
        const count = hub.requests.length;
        expect((await resolveModel({ model: url })).model).toBe(resolved.model);
        expect(hub.requests.length).toBe(count);
    });

    it("HF_TOKEN is sent as a bearer token and never printed", async () => {
        freshCache();
        const token = "hf_secretTokenValue0123456789";
        process.env.HF_TOKEN = token;
        const before = hub.requests.length;
        const run = capture();
        expect(await runCli(["pull", `hf:${REPO}:Q4_0`], run.streams), run.io.err).toBe(0);
        const made = hub.requests.slice(before);
        expect(
            made.filter((r) => !r.path.startsWith("/lfs/")).every((r) => r.authorization === `Bearer ${token}`),
        ).toBe(true);
        const missing = capture();
        expect(await runCli(["pull", "hf:test/missing"], missing.streams)).toBe(1);
        const json = capture();
        expect(await runCli(["pull", "hf:test/sharded", "--json"], json.streams), json.io.err).toBe(0);
        expect((JSON.parse(json.io.out) as { files: { shards?: unknown[] }[] }).files[0]!.shards).toHaveLength(2);
        for (const text of [run.io.out, run.io.err, missing.io.out, missing.io.err, json.io.out, json.io.err])
            expect(text).not.toContain(token);
    });
});

describe("errors a person can act on", () => {
    it.each([
        ["hf:test/missing", "MODEL_NOT_FOUND", ["hf:test/missing", "HF_TOKEN"]],
        [`hf:${REPO}@no-such-branch`, "MODEL_NOT_FOUND", ["revision does not exist"]],
        [`hf:${REPO}/nope.gguf`, "MODEL_NOT_FOUND", ['no file "nope.gguf"', Q4]],
        [`hf:${REPO}:Q3_K_M`, "QUANT_NOT_FOUND", ["Q3_K_M", "Available: Q4_0, Q8_0", `hf:${REPO}:Q4_0`]],
        ["hf:test/text-only", "PROJECTOR_NOT_FOUND", ["mmproj", 'projector: "hf:owner/repo/mmproj-'] as string[]],
        ["hf:test/huge", "NO_SPACE", ["huge-Q4_0.gguf", "LLAMA_VLM_MODELS"]],
    ] as const)("%s → %s", async (ref, code, words) => {
        freshCache();
        const error = await settle(() => resolveModel({ model: ref }));
        expect(error.code, error.message).toBe(code);
        for (const w of words) expect(error.message).toContain(w);
    });

    it("a server that does not answer is NETWORK_ERROR", async () => {
        freshCache();
        process.env.HF_ENDPOINT = "http://127.0.0.1:1";
        try {
            const error = await settle(() => resolveModel({ model: `hf:${REPO}:Q4_0` }));
            expect(error.code).toBe("NETWORK_ERROR");
            expect(error.message).toContain("HF_ENDPOINT");
        } finally {
            process.env.HF_ENDPOINT = hub.url;
        }
    });
});

describe("offline", () => {
    it("a cached model loads and runs with the server stopped; an uncached one is NOT_CACHED", async () => {
        freshCache();
        const local = await startHub();
        process.env.HF_ENDPOINT = local.url;
        try {
            await resolveModel({ model: `hf:${REPO}:Q4_0` });
        } finally {
            await local.close();
        }
        try {
            await offlineChecks();
        } finally {
            process.env.HF_ENDPOINT = hub.url;
        }
    });
});

async function offlineChecks(): Promise<void> {
    process.env.HF_HUB_OFFLINE = "1";
    const model = await loadModel({ model: `hf:${REPO}:Q4_0` });
    try {
        const context = await model.createContext({ contextSize: 1024 });
        const [image] = await testImages();
        const result = await context.complete({ prompt: "<__media__>Describe.", images: [image!], maxTokens: 2 });
        expect(result.tokens.length).toBeGreaterThan(0);
    } finally {
        await model.dispose();
    }
    const error = await settle(() => loadModel({ model: `hf:${REPO}:Q8_0` }));
    expect(error.code).toBe("NOT_CACHED");
    expect(error.message).toContain("HF_HUB_OFFLINE=1");
    expect(error.message).toContain(`llama-vlm pull hf:${REPO}:Q8_0`);
    delete process.env.HF_HUB_OFFLINE;
    const explicit = await settle(() => resolveModel({ model: `hf:${REPO}:Q8_0`, offline: true }));
    expect(explicit.code).toBe("NOT_CACHED");
    // Not offline, server gone: the cached reference still resolves (cache first), the uncached one cannot.
    expect((await resolveModel({ model: `hf:${REPO}:Q4_0` })).projector).toMatch(/mmproj-qwen-vl-f16\.gguf$/);
    expect((await settle(() => resolveModel({ model: `hf:${REPO}:Q8_0` }))).code).toBe("NETWORK_ERROR");
}

/** Runs the compiled CLI; resolves with its exit code and output. */
function runNode(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
    return runProgram(process.execPath, [CLI, ...args], env);
}

function runProgram(
    program: string,
    args: string[],
    env: NodeJS.ProcessEnv,
): Promise<{ code: number; out: string; err: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn(program, args, { env, stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
        let out = "";
        let err = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (err += d));
        child.on("error", reject);
        child.on("close", (code) => resolve({ code: code ?? -1, out, err }));
    });
}

function scriptPath(): string {
    try {
        return execFileSync("sh", ["-c", "command -v script"], { encoding: "utf8" }).trim();
    } catch {
        throw new Error(
            "This test runs `llama-vlm pull` under a pseudo-terminal with `script` (util-linux), which is not installed: apt-get install bsdutils",
        );
    }
}

describe("llama-vlm pull, models, models rm", () => {
    it("two processes pulling the same file at once both succeed with one intact file", async () => {
        const cache = freshCache();
        hub.throttle = { bytes: 512 * 1024, delayMs: 25 };
        const before = hub.fileGets(Q8).length;
        const env = { ...process.env, LLAMA_VLM_MODELS: cache, HF_ENDPOINT: hub.url };
        const [a, b] = await Promise.all([
            runNode(["pull", `hf:${REPO}:Q8_0`, "--json"], env),
            runNode(["pull", `hf:${REPO}:Q8_0`, "--json"], env),
        ]);
        expect(a.code, a.err).toBe(0);
        expect(b.code, b.err).toBe(0);
        const pathA = (JSON.parse(a.out) as { model: string }).model;
        expect((JSON.parse(b.out) as { model: string }).model).toBe(pathA);
        expect(sha256File(pathA)).toBe(sha256(files[Q8]!));
        const downloads = hub.fileGets(Q8).length - before;
        expect(downloads).toBeGreaterThanOrEqual(1);
        expect(downloads).toBeLessThanOrEqual(2);
        expect(fs.readdirSync(path.dirname(pathA)).filter((f) => /\.(part|lock|tmp)$/.test(f))).toEqual([]);
    }, 60_000);

    it("pull draws a moving bar on a terminal and plain lines when piped", async () => {
        const script = scriptPath();
        const env = { ...process.env, LLAMA_VLM_MODELS: freshCache(), HF_ENDPOINT: hub.url, COLUMNS: "120" };
        hub.throttle = { bytes: 256 * 1024, delayMs: 40 };
        // Asynchronously: the Hub this test serves runs on this process's event loop.
        const run = await runProgram(
            script,
            ["-qfc", `"${process.execPath}" "${CLI}" pull hf:${REPO}:Q4_0`, "/dev/null"],
            env,
        );
        expect(run.code, run.err).toBe(0);
        const tty = run.out;
        const frames = tty.split("\r").filter((f) => f.includes("█") || f.includes("░"));
        const percents = new Set(frames.map((f) => /(\d+)%/.exec(f)?.[1]).filter(Boolean));
        expect(percents.size, tty).toBeGreaterThanOrEqual(3);
        expect(
            frames.some((f) => /\/s {2}ETA \d+ s/.test(f)),
            tty,
        ).toBe(true);
        expect(tty).toContain(`model: ${env.LLAMA_VLM_MODELS}`);

        env.LLAMA_VLM_MODELS = freshCache();
        const piped = await runNode(["pull", `hf:${REPO}:Q4_0`], env);
        expect(piped.code, piped.err).toBe(0);
        expect(piped.err).not.toContain("\r");
        expect(piped.err).not.toContain("█");
        const lines = piped.err.split("\n").filter((l) => l.startsWith(`pull: ${Q4} `) && l.includes("%"));
        expect(lines.length, piped.err).toBeGreaterThanOrEqual(5);
        expect(lines.at(-1)).toMatch(/100% .*ETA/);
        expect(piped.out.trim().split("\n")).toEqual([
            `model: ${path.join(env.LLAMA_VLM_MODELS, "hf", "test", "qwen-vl", "snapshots", hub.commitOf(REPO), Q4)}`,
            `projector: ${path.join(env.LLAMA_VLM_MODELS, "hf", "test", "qwen-vl", "snapshots", hub.commitOf(REPO), F16_PROJECTOR)}`,
        ]);
    }, 120_000);

    it("models lists the cache with sizes; models rm deletes by quantisation", async () => {
        freshCache();
        await resolveModel({ model: `hf:${REPO}:Q4_0` });
        const list = capture();
        expect(await runCli(["models"], list.streams), list.io.err).toBe(0);
        const commit = hub.commitOf(REPO);
        expect(list.io.out).toContain(`hf:${REPO}/${Q4}@${commit}  (main)`);
        expect(list.io.out).toContain(`hf:${REPO}/${F16_PROJECTOR}@${commit}`);
        expect(list.io.out).toMatch(/16\.\d MB|\d+\.\d+ MB/);
        expect(list.io.out).toContain("total in");
        const rm = capture();
        expect(await runCli(["models", "rm", `hf:${REPO}:Q4_0`], rm.streams), rm.io.err).toBe(0);
        expect(rm.io.out).toContain(`removed `);
        const after = capture();
        await runCli(["models", "--json"], after.streams);
        const listed = (JSON.parse(after.io.out) as { files: { ref: string }[] }).files.map((f) => f.ref);
        expect(listed).toEqual([`hf:${REPO}/${F16_PROJECTOR}@${commit}`]);
        const again = capture();
        expect(await runCli(["models", "rm", `hf:${REPO}:Q4_0`], again.streams)).toBe(1);
        expect(again.io.err).toContain("Nothing in the model cache");
    });

    it("extract takes an hf: reference", async () => {
        freshCache();
        const [image] = await testImages();
        const run = capture();
        const code = await runCli(
            ["extract", image!, "-m", `hf:${REPO}:Q4_0`, "-n", "2", "-q", "-c", "1024"],
            run.streams,
        );
        expect(code, run.io.err).toBe(0);
        const row = JSON.parse(run.io.out.trim().split("\n")[0]!) as { text?: string; stopReason?: string };
        expect(row.stopReason).toBeDefined();
    });
});
