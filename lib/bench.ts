/**
 * Benchmarks for `llama-vlm bench` and scripts/bench-batch.mjs: batched generation against the vendored
 * llama-batched-bench measured in the same run, and image + prompt throughput per `parallel` value.
 * Figures are medians over `runs`; ratios compare numbers measured on the same machine in the same run.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import sharp from "sharp";
import type { CompletionResult } from "./context.js";
import { LlamaVlmError } from "./errors.js";
import { loadModel, type Model } from "./model.js";
import { packageRoot } from "./native.js";
import { physicalCores } from "./system.js";

export interface BenchOptions {
    model: string;
    projector?: string;
    /** Parallel values to measure. Default [1, 2, 4]. */
    parallel?: number[];
    /** Prompt tokens per sequence in the text benchmark. Default 128. */
    promptTokens?: number;
    /** Generated tokens per sequence in the text benchmark. Default 64. */
    textGenerate?: number;
    /** Image requests per parallel value are `imagesPerSlot × N`. Default 2. */
    imagesPerSlot?: number;
    /** Image size for image requests. Default 448×448. */
    imageSize?: [number, number];
    /** Generated tokens per image request. Default 256. */
    imageGenerate?: number;
    /** Runs per text measurement (median reported). Default 3. */
    runs?: number;
    threads?: number;
    /** Also run llama.cpp's llama-batched-bench (built from the vendored tree) and print ratios. */
    compareLlamaCpp?: boolean;
    /** Skip the image requests (text generation only). */
    skipImages?: boolean;
    /** Skip the text benchmark (image requests only). */
    skipText?: boolean;
    log?: (line: string) => void;
}

export interface TextRow {
    parallel: number;
    runs: number;
    /** Aggregate generation tokens/s, median of the runs. */
    generationTps: number;
    /** Prompt tokens/s of the prefill (all N prompts together), median of the runs. */
    promptTps: number;
    /** llama-batched-bench's medians, and the ratios llama-vlm ÷ llama-batched-bench of the medians. */
    llamaCpp?: { generationTps: number; promptTps: number; ratio: number; promptRatio: number };
    /** Every run: llama-vlm's figures and, when compared, llama-batched-bench's run next to it (in the order of `inAlternatingOrder`). */
    samples: Array<{
        generationTps: number;
        promptTps: number;
        llamaCpp?: { generationTps: number; promptTps: number };
    }>;
}

export interface ImageRow {
    parallel: number;
    requests: number;
    wallS: number;
    imagesPerMinute: number;
    ratioToFirst: number;
    aggregateTps: number;
    imageTokens: number;
    encodeMsPerImage: number;
    promptMsPerRequest: number;
    generateMsPerRequest: number;
}

export interface BenchReport {
    threads: number;
    text: TextRow[];
    images: ImageRow[];
    peakRssBytes: number;
}

export const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A seeded page-like test image (PNG). */
export async function benchImage(width: number, height: number, seed: number): Promise<Buffer> {
    const px = Buffer.alloc(width * height * 3, 250);
    let s = seed >>> 0;
    const next = () => (s = (s * 1664525 + 1013904223) >>> 0);
    for (let line = 24; line < height - 24; line += 28) {
        let x = 24;
        while (x < width - 40) {
            const w = 12 + (next() % 60);
            for (let y = line; y < line + 14; y++)
                for (let i = x; i < Math.min(x + w, width - 24); i++)
                    px.fill(30 + (next() % 40), (y * width + i) * 3, (y * width + i) * 3 + 3);
            x += w + 8;
        }
    }
    return sharp(px, { raw: { width, height, channels: 3 } })
        .png()
        .toBuffer();
}

let toolsDir: string | undefined;

/**
 * llama.cpp's tools, built in the addon's CMake tree for the backend this process loaded (scripts/build-llama-tools.mjs;
 * a no-op when up to date). They need a source checkout: an installed package has no llama.cpp build tree. @internal
 */
export function llamaToolsDir(): string {
    if (toolsDir !== undefined) return toolsDir;
    const script = path.join(packageRoot, "scripts", "build-llama-tools.mjs");
    if (!fs.existsSync(script)) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            "comparing against llama.cpp needs llama-vlm's source checkout (scripts/build-llama-tools.mjs builds llama.cpp's tools there)",
        );
    }
    const gpu = process.env.LLAMA_VLM_GPU;
    const out = execFileSync(
        process.execPath,
        [script, "--print-dir", "--quiet", ...(gpu && gpu !== "cpu" ? ["--gpu", gpu] : [])],
        { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    toolsDir = out.trim().split("\n").at(-1)!;
    return toolsDir;
}

function batchedBench(
    model: string,
    n: number,
    pp: number,
    tg: number,
    threads: number,
): { generationTps: number; promptTps: number } {
    const bin = path.join(llamaToolsDir(), "llama-batched-bench");
    const out = execFileSync(
        bin,
        [
            "-m",
            model,
            "-c",
            String((pp + tg) * n + 256),
            "-b",
            "2048",
            "-ub",
            "512",
            "-npp",
            String(pp),
            "-ntg",
            String(tg),
            "-npl",
            String(n),
            "-t",
            String(threads),
        ],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 16 << 20 },
    );
    // | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
    const row = out.split("\n").find((l) => /^\|\s*\d+\s*\|\s*\d+\s*\|\s*\d+\s*\|/.test(l));
    if (!row) throw new Error(`llama-batched-bench printed no result row:\n${out}`);
    const cells = row
        .split("|")
        .map((c) => c.trim())
        .filter(Boolean);
    return { promptTps: Number(cells[5]), generationTps: Number(cells[7]) };
}

/**
 * Runs one benchmark pair: llama-vlm's side first on even runs, the reference's first on odd ones, so that a machine
 * whose speed drifts over minutes favours neither side. @internal
 */
export async function inAlternatingOrder(
    run: number,
    mine: () => Promise<void>,
    reference: () => Promise<void> | void,
): Promise<void> {
    if (run % 2 === 0) {
        await mine();
        await reference();
    } else {
        await reference();
        await mine();
    }
}

/** A logit bias that bans the usual end-of-generation tokens, so that a benchmark generates what it asks for. @internal */
export function endOfGenerationBans(model: Model): Record<number, number> {
    const banned: Record<number, number> = {};
    for (const text of ["<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>", "<end_of_utterance>"]) {
        const ids = model.tokenize(text, { addSpecial: false });
        if (ids.length === 1) banned[ids[0]!] = Number.NEGATIVE_INFINITY;
    }
    return banned;
}

/**
 * A prompt of exactly `n` tokens as a request counts them (special tokens such as BOS included), cut from `text`.
 * Text → tokens → text can merge or split a token at the cut, so the cuts nearest the estimate are tried. @internal
 */
export function promptOfLength(model: Model, text: string, n: number): string {
    const tokens = model.tokenize(text, { addSpecial: false });
    const estimate = n - model.tokenize("").length;
    for (const d of [0, -1, 1, -2, 2, -3, 3, -4, 4]) {
        const cut = estimate + d;
        if (cut <= 0 || cut > tokens.length) continue;
        const prompt = model.detokenize(tokens.slice(0, cut));
        if (model.tokenize(prompt).length === n) return prompt;
    }
    throw new LlamaVlmError("INVALID_OPTION", `cannot make a prompt of exactly ${n} tokens from the filler text`);
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
    const log = o.log ?? (() => {});
    const ns = o.parallel ?? [1, 2, 4];
    const pp = o.promptTokens ?? 128;
    const tg = o.textGenerate ?? 64;
    const runs = o.runs ?? 3;
    const threads = o.threads ?? physicalCores();
    const model = await loadModel({
        model: o.model,
        ...(o.projector ? { projector: o.projector } : {}),
        useMmap: false,
    });
    try {
        // Generation must not stop early: end-of-generation tokens are banned.
        const banned = endOfGenerationBans(model);
        const filler = "the patient was given five milligrams of the medication twice daily for seven days ".repeat(
            Math.max(40, Math.ceil(pp / 8)),
        );
        // Each prompt is exactly `pp` tokens as the engine counts them, like llama-batched-bench's: the count
        // changes the kernels (ggml's repacked Q4_0 runs 4 rows at a time, and the rest as single-row products),
        // so 127 tokens against 128 would cost about 5 % more per token (docs/architecture.md).
        const promptOf = (i: number) => promptOfLength(model, `${i} ${filler}`, pp);

        const text: TextRow[] = [];
        for (const n of o.skipText ? [] : ns) {
            const mine: Array<{ generationTps: number; promptTps: number }> = [];
            const ref: Array<{ generationTps: number; promptTps: number }> = [];
            const runMine = async () => {
                const ctx = await model.createContext({
                    contextSize: pp + tg + 64,
                    parallel: n,
                    batchSize: 2048,
                    threads,
                });
                try {
                    // llama-batched-bench decodes 16 tokens before it times anything; so does this run (a context's
                    // first prefill of a larger batch pays first use of its compute buffer: docs/architecture.md).
                    await ctx.complete({
                        prompt: model.detokenize(model.tokenize(filler, { addSpecial: false }).slice(0, 15)),
                        temperature: 0,
                        maxTokens: 1,
                    });
                    const prompts = Array.from({ length: n }, (_, i) => promptOf(i));
                    const t0 = performance.now();
                    const results = await Promise.all(
                        prompts.map((prompt) =>
                            ctx.complete({ prompt, temperature: 0, maxTokens: tg, logitBias: banned }),
                        ),
                    );
                    const wall = (performance.now() - t0) / 1000;
                    for (const x of results) {
                        if (x.timings.promptTokens !== pp)
                            throw new Error(`bench prompt has ${x.timings.promptTokens} tokens, not ${pp}`);
                    }
                    const prompt = Math.max(...results.map((x) => x.timings.promptMs)) / 1000;
                    const generated = results.reduce((a, x) => a + x.tokens.length, 0);
                    mine.push({
                        generationTps: generated / (wall - prompt),
                        promptTps: results.reduce((a, x) => a + x.timings.promptTokens, 0) / prompt,
                    });
                } finally {
                    await ctx.dispose();
                }
            };
            for (let r = 0; r < runs; r++) {
                await inAlternatingOrder(r, runMine, () => {
                    if (o.compareLlamaCpp) ref.push(batchedBench(o.model, n, pp, tg, threads));
                });
            }
            const row: TextRow = {
                parallel: n,
                runs,
                generationTps: median(mine.map((m) => m.generationTps)),
                promptTps: median(mine.map((m) => m.promptTps)),
                samples: mine.map((m, i) => (ref[i] ? { ...m, llamaCpp: ref[i] } : { ...m })),
            };
            if (o.compareLlamaCpp) {
                const g = median(ref.map((m) => m.generationTps));
                const p = median(ref.map((m) => m.promptTps));
                row.llamaCpp = {
                    generationTps: g,
                    promptTps: p,
                    ratio: row.generationTps / g,
                    promptRatio: row.promptTps / p,
                };
            }
            text.push(row);
            log(
                `text N=${n}: ${row.generationTps.toFixed(2)} t/s` +
                    (row.llamaCpp
                        ? ` vs llama-batched-bench ${row.llamaCpp.generationTps.toFixed(2)} t/s (×${row.llamaCpp.ratio.toFixed(3)})`
                        : ""),
            );
        }

        const images: ImageRow[] = [];
        if (o.projector && !o.skipImages) {
            const [w, h] = o.imageSize ?? [448, 448];
            const gen = o.imageGenerate ?? 256;
            for (const n of ns) {
                const requests = (o.imagesPerSlot ?? 2) * n;
                const pngs = await Promise.all(Array.from({ length: requests }, (_, i) => benchImage(w, h, 1000 + i)));
                const ctx = await model.createContext({ contextSize: 4096, parallel: n, batchSize: 2048, threads });
                let results: CompletionResult[];
                const t0 = performance.now();
                try {
                    results = await Promise.all(
                        pngs.map((png) =>
                            ctx.complete({
                                messages: [
                                    {
                                        role: "user",
                                        content: [
                                            { image: png },
                                            "Extract demographic, clinical disease and medication information",
                                        ],
                                    },
                                ],
                                temperature: 0,
                                maxTokens: gen,
                                logitBias: banned,
                            }),
                        ),
                    );
                } finally {
                    await ctx.dispose();
                }
                const wall = (performance.now() - t0) / 1000;
                const sum = (k: keyof CompletionResult["timings"]) => results.reduce((a, r) => a + r.timings[k], 0);
                const row: ImageRow = {
                    parallel: n,
                    requests,
                    wallS: wall,
                    imagesPerMinute: (requests / wall) * 60,
                    ratioToFirst: 1,
                    aggregateTps: sum("generatedTokens") / wall,
                    imageTokens: results[0]!.timings.imageTokens,
                    encodeMsPerImage: sum("imageEncodeMs") / requests,
                    promptMsPerRequest: sum("promptMs") / requests,
                    generateMsPerRequest: sum("generateMs") / requests,
                };
                images.push(row);
                log(
                    `images N=${n}: ${row.imagesPerMinute.toFixed(2)} images/min, ${row.aggregateTps.toFixed(2)} t/s aggregate`,
                );
            }
            for (const r of images) r.ratioToFirst = r.imagesPerMinute / images[0]!.imagesPerMinute;
        }
        return { threads, text, images, peakRssBytes: process.resourceUsage().maxRSS * 1024 };
    } finally {
        await model.dispose();
    }
}

/** The report as Markdown tables. */
export function formatBench(r: BenchReport): string {
    const lines: string[] = [];
    const t0 = r.text[0];
    if (t0) {
        lines.push(`Text generation (${t0.runs} runs, median; ${r.threads} threads)`);
        lines.push(
            "| N | llama-vlm gen t/s | llama-batched-bench gen t/s | ratio | llama-vlm prompt t/s | reference prompt t/s | ratio | per-run ratios gen; prompt |",
        );
        lines.push("|---|---|---|---|---|---|---|---|");
        const perRun = (x: TextRow, key: "generationTps" | "promptTps") =>
            x.samples
                .filter((s) => s.llamaCpp)
                .map((s) => (s[key] / s.llamaCpp![key]).toFixed(2))
                .join(" ");
        for (const x of r.text) {
            lines.push(
                `| ${x.parallel} | ${x.generationTps.toFixed(2)} | ${x.llamaCpp?.generationTps.toFixed(2) ?? "–"} | ${x.llamaCpp?.ratio.toFixed(3) ?? "–"} | ${x.promptTps.toFixed(1)} | ${x.llamaCpp?.promptTps.toFixed(1) ?? "–"} | ${x.llamaCpp?.promptRatio.toFixed(3) ?? "–"} | ${x.llamaCpp ? `${perRun(x, "generationTps")}; ${perRun(x, "promptTps")}` : "–"} |`,
            );
        }
    }
    if (r.images.length > 0) {
        lines.push("", "Image + prompt requests (1 run)");
        lines.push(
            "| N | requests | images/min | ratio to first N | aggregate gen t/s | image tokens | encode ms/image | prompt ms/request | generate ms/request | wall s |",
        );
        lines.push("|---|---|---|---|---|---|---|---|---|---|");
        for (const x of r.images) {
            lines.push(
                `| ${x.parallel} | ${x.requests} | ${x.imagesPerMinute.toFixed(2)} | ${x.ratioToFirst.toFixed(2)} | ${x.aggregateTps.toFixed(2)} | ${x.imageTokens} | ${x.encodeMsPerImage.toFixed(0)} | ${x.promptMsPerRequest.toFixed(0)} | ${x.generateMsPerRequest.toFixed(0)} | ${x.wallS.toFixed(1)} |`,
            );
        }
    }
    lines.push("", `peak RSS ${(r.peakRssBytes / 1e9).toFixed(2)} GB`);
    return lines.join("\n");
}
