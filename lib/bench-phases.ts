/**
 * The phase benchmark (`llama-vlm bench --phases`, scripts/bench-phases.mjs): one image request at a time,
 * image encode / image prefill / text prefill / generation for llama-vlm and for the vendored `llama-mtmd-cli`,
 * same model pair, threads, context and prompt, runs interleaved in alternating order (`inAlternatingOrder`), each
 * run a fresh process on both sides so that neither carries warm caches from an earlier run. Medians and ratios.
 *
 * What each side counts, so that the two measure the same tokens:
 * - encode: the vision encoder on the image (llama-mtmd-cli: "mtmd batch encoding done in"; llama-vlm:
 *   `timings.imageEncodeMs`). Both encode the same pixels: the image is written as a PNG of exactly the given size.
 * - image prefill: the image embeddings decoded into the KV cache (llama-mtmd-cli: the sum of mtmd-helper's
 *   "image decoded (batch i/n) in" lines; llama-vlm: `timings.imagePrefillMs`), `imageTokens` tokens.
 * - text prefill: the prompt's text tokens (chat template included, the same template on both sides). llama-mtmd-cli:
 *   llama.cpp's "prompt eval time" minus its image prefill and its encode (llama.cpp's clock runs from the first text
 *   chunk's decode to the first sampled token's sync, and llama-mtmd-cli encodes the image in between); llama-vlm: `promptMs − imagePrefillMs`, which also holds
 *   sampling the first token and the engine's own steps between prefill calls (overhead we add counts against us).
 * - generation: tokens per second over the decode steps after the first token. llama-mtmd-cli: llama.cpp's
 *   "eval time" (single-token decodes, compute only); llama-vlm: `(generatedTokens − 1) / generateMs`, wall time with
 *   sampling and event delivery. End-of-generation tokens are banned on both sides so both generate `generate` tokens.
 * - peak RSS: each side's process, read from /proc/<pid>/status (VmHWM) while it runs.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { benchImage, endOfGenerationBans, inAlternatingOrder, llamaToolsDir, median } from "./bench.js";
import { LlamaVlmError } from "./errors.js";
import { physicalCores } from "./system.js";

export interface PhaseBenchOptions {
    model: string;
    projector: string;
    /** Image sizes to measure. Default [[448, 448], [1000, 1400]]. */
    imageSizes?: Array<[number, number]>;
    /** Interleaved runs per image size (medians reported). Default 3. */
    runs?: number;
    /** Generated tokens per request. Default 64. */
    generate?: number;
    threads?: number;
    /** Context size on both sides. Default 4096. */
    contextSize?: number;
    /** The user's text after the image. */
    prompt?: string;
    /** Folder of llama.cpp's tools; default: built in the source checkout (scripts/build-llama-tools.mjs). */
    toolsDir?: string;
    log?: (line: string) => void;
}

/** One side's figures for one run (or the medians over runs). */
export interface PhaseFigures {
    encodeMs: number;
    imageTokens: number;
    imagePrefillMs: number;
    textTokens: number;
    textPrefillMs: number;
    /** Decode steps after the first token. */
    generateSteps: number;
    generateMs: number;
    peakRssBytes: number;
}

export interface PhaseRow {
    width: number;
    height: number;
    runs: number;
    llamaVlm: PhaseFigures;
    llamaMtmdCli: PhaseFigures;
    /** Speed ratios, llama-vlm ÷ llama-mtmd-cli (per-token speed: > 1 means llama-vlm is faster). */
    ratios: { encode: number; imagePrefill: number; textPrefill: number; generation: number };
    /** Every run's figures, in run order, for judging the noise. */
    all: { llamaVlm: PhaseFigures[]; llamaMtmdCli: PhaseFigures[] };
}

export interface PhaseReport {
    threads: number;
    generate: number;
    contextSize: number;
    rows: PhaseRow[];
}

const DEFAULT_PROMPT = "Extract demographic, clinical disease and medication information";

interface Finished {
    code: number | null;
    stdout: string;
    stderr: string;
    peakRssBytes: number;
}

/** Runs a process to its end, reading its peak RSS (VmHWM) from /proc while it runs. */
function runMeasured(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Finished> {
    return new Promise((resolve, reject) => {
        const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], env });
        let stdout = "";
        let stderr = "";
        let peak = 0;
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        const readPeak = () => {
            try {
                const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"));
                if (m) peak = Math.max(peak, Number(m[1]) * 1024);
            } catch {
                // exited, or no /proc (not Linux): the figure stays what was last read
            }
        };
        const timer = setInterval(readPeak, 100);
        child.on("error", (err) => {
            clearInterval(timer);
            reject(err);
        });
        child.on("exit", () => clearInterval(timer));
        child.on("close", (code) => resolve({ code, stdout, stderr, peakRssBytes: peak }));
    });
}

const num = (re: RegExp, text: string): number | undefined => {
    const m = re.exec(text);
    return m ? Number(m[1]) : undefined;
};

/** llama-mtmd-cli's figures, from its log (`-lv 4`). Exported for tests. @internal */
export function parseMtmdCliLog(log: string, imageTokens: number): Omit<PhaseFigures, "peakRssBytes"> {
    const encodeMs = [...log.matchAll(/mtmd batch encoding done in (\d+) ms/g)].reduce((a, m) => a + Number(m[1]), 0);
    const imagePrefillMs = [...log.matchAll(/image decoded \(batch \d+\/\d+\) in (\d+) ms/g)].reduce(
        (a, m) => a + Number(m[1]),
        0,
    );
    const promptMs = num(/prompt eval time =\s*([\d.]+) ms/, log);
    const promptTokens = num(/prompt eval time =\s*[\d.]+ ms \/\s*(\d+) tokens/, log);
    const evalMs = num(/\beval time =\s*([\d.]+) ms \/\s*\d+ runs/, log);
    const evalRuns = num(/\beval time =\s*[\d.]+ ms \/\s*(\d+) runs/, log);
    const encoded = /mtmd batch encoding done in/.test(log) && /image decoded \(batch \d+\/\d+\) in/.test(log);
    if (
        !encoded ||
        promptMs === undefined ||
        promptTokens === undefined ||
        evalMs === undefined ||
        evalRuns === undefined
    ) {
        throw new Error(`llama-mtmd-cli printed no timings; its log ends:\n${log.slice(-2000)}`);
    }
    return {
        encodeMs,
        imageTokens,
        imagePrefillMs,
        textTokens: promptTokens - imageTokens,
        // llama.cpp's prompt clock runs from the first decode after a sync to the next sync (the first token's logits):
        // llama-mtmd-cli encodes the image between the first text chunk's decode and that sync, so the encode is in it.
        textPrefillMs: Math.max(0, promptMs - imagePrefillMs - encodeMs),
        generateSteps: evalRuns,
        generateMs: evalMs,
    };
}

/** The child that runs llama-vlm's side: dist/bench-phases.js run as a script. */
const SELF = fileURLToPath(import.meta.url);

interface ChildRequest {
    model: string;
    projector: string;
    image: string;
    generate: number;
    threads: number;
    contextSize: number;
    prompt: string;
}

async function childMain(req: ChildRequest): Promise<void> {
    const { loadModel } = await import("./model.js");
    const { setLogger } = await import("./system.js");
    setLogger(null);
    const model = await loadModel({ model: req.model, projector: req.projector });
    const banned = endOfGenerationBans(model);
    const ctx = await model.createContext({ contextSize: req.contextSize, parallel: 1, threads: req.threads });
    const r = await ctx.complete({
        messages: [{ role: "user", content: [{ image: req.image }, req.prompt] }],
        temperature: 0,
        maxTokens: req.generate,
        logitBias: banned,
    });
    await model.dispose();
    const t = r.timings;
    const out: Omit<PhaseFigures, "peakRssBytes"> & { selfPeakRssBytes: number } = {
        encodeMs: t.imageEncodeMs,
        imageTokens: t.imageTokens,
        imagePrefillMs: t.imagePrefillMs,
        textTokens: t.promptTokens - t.imageTokens,
        textPrefillMs: t.promptMs - t.imagePrefillMs,
        generateSteps: Math.max(0, t.generatedTokens - 1),
        generateMs: t.generateMs,
        selfPeakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
    process.stdout.write(`PHASES ${JSON.stringify(out)}\n`);
}

if (process.argv[1] === SELF && process.argv[2] === "--child") {
    await childMain(JSON.parse(process.argv[3]!) as ChildRequest);
}

function medianFigures(xs: PhaseFigures[]): PhaseFigures {
    const m = (k: keyof PhaseFigures) => median(xs.map((x) => x[k]));
    return {
        encodeMs: m("encodeMs"),
        imageTokens: m("imageTokens"),
        imagePrefillMs: m("imagePrefillMs"),
        textTokens: m("textTokens"),
        textPrefillMs: m("textPrefillMs"),
        generateSteps: m("generateSteps"),
        generateMs: m("generateMs"),
        peakRssBytes: m("peakRssBytes"),
    };
}

/**
 * Per-token speeds of one run, for ratios: tokens per second in each phase (encode: images per second). llama-mtmd-cli
 * logs encode and image prefill in whole milliseconds, so a phase under 1 ms (a tiny model's) counts as 0.5 ms.
 */
function speeds(f: PhaseFigures) {
    const ms = (x: number) => Math.max(x, 0.5);
    return {
        encode: 1000 / ms(f.encodeMs),
        imagePrefill: (f.imageTokens * 1000) / ms(f.imagePrefillMs),
        textPrefill: (f.textTokens * 1000) / ms(f.textPrefillMs),
        generation: (f.generateSteps * 1000) / ms(f.generateMs),
    };
}

export async function runPhaseBench(o: PhaseBenchOptions): Promise<PhaseReport> {
    const log = o.log ?? (() => {});
    const runs = o.runs ?? 3;
    const generate = o.generate ?? 64;
    const threads = o.threads ?? physicalCores();
    const contextSize = o.contextSize ?? 4096;
    const prompt = o.prompt ?? DEFAULT_PROMPT;
    const sizes = o.imageSizes ?? [
        [448, 448],
        [1000, 1400],
    ];
    if (!SELF.endsWith(".js")) {
        throw new LlamaVlmError("INVALID_OPTION", "the phase benchmark runs from the compiled package (dist/)");
    }
    const cli = path.join(o.toolsDir ?? llamaToolsDir(), "llama-mtmd-cli");
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-phases-"));
    const rows: PhaseRow[] = [];
    try {
        for (const [width, height] of sizes) {
            const image = path.join(tmp, `page-${width}x${height}.png`);
            fs.writeFileSync(image, await benchImage(width, height, 7));
            const vlmRuns: PhaseFigures[] = [];
            const refRuns: PhaseFigures[] = [];
            const runVlm = async (): Promise<PhaseFigures & { selfPeakRssBytes: number }> => {
                const vlm = await runMeasured(process.execPath, [
                    SELF,
                    "--child",
                    JSON.stringify({
                        model: o.model,
                        projector: o.projector,
                        image,
                        generate,
                        threads,
                        contextSize,
                        prompt,
                    } satisfies ChildRequest),
                ]);
                const line = vlm.stdout.split("\n").find((l) => l.startsWith("PHASES "));
                if (vlm.code !== 0 || !line) {
                    throw new Error(`llama-vlm's run failed (exit ${vlm.code}):\n${vlm.stderr.slice(-2000)}`);
                }
                const mine = JSON.parse(line.slice(7)) as PhaseFigures & { selfPeakRssBytes: number };
                return { ...mine, peakRssBytes: Math.max(mine.selfPeakRssBytes, vlm.peakRssBytes) };
            };
            const runRef = async (imageTokens: number): Promise<PhaseFigures> => {
                const ref = await runMeasured(cli, [
                    "-m",
                    o.model,
                    "--mmproj",
                    o.projector,
                    "--image",
                    image,
                    "-p",
                    prompt,
                    "-n",
                    String(generate),
                    "-t",
                    String(threads),
                    "-c",
                    String(contextSize),
                    "--temp",
                    "0",
                    "--ignore-eos",
                    "--jinja",
                    "-lv",
                    "4",
                ]);
                if (ref.code !== 0) {
                    throw new Error(`llama-mtmd-cli failed (exit ${ref.code}):\n${ref.stderr.slice(-2000)}`);
                }
                return { ...parseMtmdCliLog(ref.stdout + ref.stderr, imageTokens), peakRssBytes: ref.peakRssBytes };
            };
            for (let r = 0; r < runs; r++) {
                await inAlternatingOrder(
                    r,
                    async () => {
                        vlmRuns.push(await runVlm());
                    },
                    async () => {
                        // The reference's log does not say how many image tokens it decoded; llama-vlm's first run
                        // (run 0 runs llama-vlm first) did.
                        refRuns.push(await runRef(vlmRuns[0]!.imageTokens));
                    },
                );
                const a = speeds(vlmRuns.at(-1)!);
                const b = speeds(refRuns.at(-1)!);
                log(
                    `${width}×${height} run ${r + 1}/${runs}: encode ×${(a.encode / b.encode).toFixed(3)}, image prefill ×${(a.imagePrefill / b.imagePrefill).toFixed(3)}, text prefill ×${(a.textPrefill / b.textPrefill).toFixed(3)}, generation ×${(a.generation / b.generation).toFixed(3)}`,
                );
            }
            const vlm = medianFigures(vlmRuns);
            const ref = medianFigures(refRuns);
            // Ratios of the medians of per-run speeds.
            const ratio = (k: keyof ReturnType<typeof speeds>) =>
                median(vlmRuns.map((f) => speeds(f)[k])) / median(refRuns.map((f) => speeds(f)[k]));
            rows.push({
                width,
                height,
                runs,
                llamaVlm: vlm,
                llamaMtmdCli: ref,
                ratios: {
                    encode: ratio("encode"),
                    imagePrefill: ratio("imagePrefill"),
                    textPrefill: ratio("textPrefill"),
                    generation: ratio("generation"),
                },
                all: { llamaVlm: vlmRuns, llamaMtmdCli: refRuns },
            });
        }
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
    return { threads, generate, contextSize, rows };
}

/** The report as a Markdown table. */
export function formatPhaseBench(r: PhaseReport): string {
    const lines = [
        `Phases, one request at a time (${r.threads} threads, context ${r.contextSize}, ${r.generate} generated tokens; medians; ratio = llama-vlm speed ÷ llama-mtmd-cli speed)`,
        "| image | runs | phase | tokens | llama-mtmd-cli | llama-vlm | ratio |",
        "|---|---|---|---|---|---|---|",
    ];
    const ms = (x: number) => `${(x / 1000).toFixed(2)} s`;
    const tps = (n: number, t: number) => `${((n * 1000) / t).toFixed(2)} t/s`;
    for (const x of r.rows) {
        const size = `${x.width}×${x.height}`;
        const a = x.llamaVlm;
        const b = x.llamaMtmdCli;
        lines.push(
            `| ${size} | ${x.runs} | encode | ${a.imageTokens} | ${ms(b.encodeMs)} | ${ms(a.encodeMs)} | ${x.ratios.encode.toFixed(3)} |`,
            `| ${size} | ${x.runs} | image prefill | ${a.imageTokens} | ${ms(b.imagePrefillMs)} | ${ms(a.imagePrefillMs)} | ${x.ratios.imagePrefill.toFixed(3)} |`,
            `| ${size} | ${x.runs} | text prefill | ${a.textTokens} / ${b.textTokens} | ${ms(b.textPrefillMs)} | ${ms(a.textPrefillMs)} | ${x.ratios.textPrefill.toFixed(3)} |`,
            `| ${size} | ${x.runs} | generation | ${a.generateSteps} | ${tps(b.generateSteps, b.generateMs)} | ${tps(a.generateSteps, a.generateMs)} | ${x.ratios.generation.toFixed(3)} |`,
            `| ${size} | ${x.runs} | peak RSS | | ${(b.peakRssBytes / 1e9).toFixed(2)} GB | ${(a.peakRssBytes / 1e9).toFixed(2)} GB | |`,
        );
    }
    return lines.join("\n");
}
