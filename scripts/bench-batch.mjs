#!/usr/bin/env node
// Batched decoding benchmark on the shape-true Qwen2.5-VL-3B pair (synthetic weights: speed does not
// depend on weight values). Prints, for parallel N = 1, 2, 4:
//   1. aggregate generation tokens/s, next to the vendored llama-batched-bench at the same N, measured
//      in the same run (text: 128-token prompt, 64 generated tokens per sequence), median of --runs;
//   2. images/minute and aggregate tokens/s for image + prompt requests (448×448 image, 256 generated
//      tokens each, 2N requests per N), with the ratio to N = 1;
//   3. with --document, the document-sized case (1000×1400 px ≈ 1,800 image tokens) phase by phase.
//
//   npm run bench:batch -- [--runs 3] [--parallel 1,2,4] [--document] [--threads N] [--json]
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
    options: {
        runs: { type: "string", default: "3" },
        parallel: { type: "string", default: "1,2,4" },
        document: { type: "boolean", default: false },
        threads: { type: "string" },
        json: { type: "boolean", default: false },
        "skip-images": { type: "boolean", default: false },
    },
});
const RUNS = Number(args.runs);
const NS = args.parallel.split(",").map(Number);

function log(msg) {
    process.stderr.write(`[bench] ${msg}\n`);
}
const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

if (!fs.existsSync(path.join(root, "dist", "index.js")))
    execFileSync("npm", ["run", "compile"], { cwd: root, stdio: "inherit" });
const lib = await import(path.join(root, "dist", "index.js"));
const { ensurePair } = await import(path.join(root, "dist", "synth", "index.js"));
execFileSync(process.execPath, [path.join(root, "scripts", "build-llama-tools.mjs"), "--if-missing"], {
    stdio: "inherit",
});
const tools = path.join(root, "build-tools", "bin");
const threads = Number(args.threads ?? lib.physicalCores());

log("synthetic qwen2.5-vl 3b pair (written once into .cache/models)");
const pair = await ensurePair({
    family: "qwen2.5-vl",
    size: "3b",
    seed: 1,
    quant: "q4_0",
    dir: path.join(root, ".cache", "models"),
});
lib.setLogger(null);

// --- 1. text generation vs llama-batched-bench -------------------------------------------------------
const PP = 128;
const TG = 64;
function batchedBench(n) {
    const out = execFileSync(
        path.join(tools, "llama-batched-bench"),
        [
            "-m",
            pair.model,
            "-c",
            String((PP + TG) * n + 64),
            "-b",
            "2048",
            "-ub",
            "512",
            "-npp",
            String(PP),
            "-ntg",
            String(TG),
            "-npl",
            String(n),
            "-t",
            String(threads),
            "--no-mmap",
        ],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 16 << 20 },
    );
    // | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
    const row = out.split("\n").find((l) => /^\|\s*\d+\s*\|\s*\d+\s*\|\s*\d+\s*\|/.test(l));
    if (!row) throw new Error(`no result row in llama-batched-bench output:\n${out}`);
    const cells = row
        .split("|")
        .map((c) => c.trim())
        .filter(Boolean);
    return { ppTps: Number(cells[5]), tgTps: Number(cells[7]) };
}

const model = await lib.loadModel({ model: pair.model, projector: pair.projector, useMmap: false });
const eos = model.tokenize("<|im_end|>", { addSpecial: false })[0];
const endOfText = model.tokenize("<|endoftext|>", { addSpecial: false })[0];
const noEos = { [eos]: Number.NEGATIVE_INFINITY, [endOfText]: Number.NEGATIVE_INFINITY };
const words = "the patient was given five milligrams of the medication twice daily for seven days ".repeat(20);
const promptOf = (i) => {
    const toks = model.tokenize(`${i} ${words}`, { addSpecial: false }).slice(0, PP);
    return model.detokenize(toks);
};

async function ours(n) {
    const ctx = await model.createContext({ contextSize: PP + TG + 64, parallel: n, batchSize: 2048, threads });
    try {
        const t0 = performance.now();
        const results = await Promise.all(
            Array.from({ length: n }, (_, i) =>
                ctx.complete({ prompt: promptOf(i), temperature: 0, maxTokens: TG, logitBias: noEos }),
            ),
        );
        const wall = (performance.now() - t0) / 1000;
        const prompt = Math.max(...results.map((r) => r.timings.promptMs)) / 1000;
        const generated = results.reduce((a, r) => a + r.tokens.length, 0);
        return {
            tgTps: generated / (wall - prompt),
            ppTps: results.reduce((a, r) => a + r.timings.promptTokens, 0) / prompt,
        };
    } finally {
        await ctx.dispose();
    }
}

const text = [];
for (const n of NS) {
    const ref = [];
    const mine = [];
    for (let r = 0; r < RUNS; r++) {
        ref.push(batchedBench(n));
        mine.push(await ours(n));
    }
    const row = {
        parallel: n,
        runs: RUNS,
        llamaVlmTgTps: median(mine.map((m) => m.tgTps)),
        llamaBatchedBenchTgTps: median(ref.map((m) => m.tgTps)),
        llamaVlmPpTps: median(mine.map((m) => m.ppTps)),
        llamaBatchedBenchPpTps: median(ref.map((m) => m.ppTps)),
    };
    row.ratio = row.llamaVlmTgTps / row.llamaBatchedBenchTgTps;
    text.push(row);
    log(
        `N=${n}: ${row.llamaVlmTgTps.toFixed(2)} t/s vs llama-batched-bench ${row.llamaBatchedBenchTgTps.toFixed(2)} t/s (×${row.ratio.toFixed(3)})`,
    );
}

// --- 2. image + prompt requests ---------------------------------------------------------------------------
async function makeImage(width, height, seed) {
    const sharp = (await import("sharp")).default;
    const px = Buffer.alloc(width * height * 3);
    let s = seed;
    for (let i = 0; i < px.length; i++) {
        s = (s * 1664525 + 1013904223) >>> 0;
        px[i] = (i % (width * 3) < width * 1.5 ? 230 : 40) ^ (s >>> 28);
    }
    return sharp(px, { raw: { width, height, channels: 3 } })
        .png()
        .toBuffer();
}

async function imageRun(n, { width, height, gen, requests }) {
    const ctx = await model.createContext({ contextSize: 4096, parallel: n, batchSize: 2048, threads });
    try {
        const imgs = await Promise.all(Array.from({ length: requests }, (_, i) => makeImage(width, height, 1000 + i)));
        const t0 = performance.now();
        const results = await Promise.all(
            imgs.map((img) =>
                ctx.complete({
                    messages: [
                        {
                            role: "user",
                            content: [
                                { image: img },
                                "Extract demographic, clinical disease and medication information",
                            ],
                        },
                    ],
                    temperature: 0,
                    maxTokens: gen,
                    logitBias: noEos,
                }),
            ),
        );
        const wall = (performance.now() - t0) / 1000;
        const sum = (k) => results.reduce((a, r) => a + r.timings[k], 0);
        return {
            parallel: n,
            requests,
            wallS: wall,
            imagesPerMinute: (requests / wall) * 60,
            aggregateTps: sum("generatedTokens") / wall,
            imageTokens: results[0].timings.imageTokens,
            encodeMsPerImage: sum("imageEncodeMs") / requests,
            promptMsPerRequest: sum("promptMs") / requests,
            generateMsPerRequest: sum("generateMs") / requests,
        };
    } finally {
        await ctx.dispose();
    }
}

const images = [];
if (!args["skip-images"]) {
    for (const n of NS) {
        const r = await imageRun(n, { width: 448, height: 448, gen: 256, requests: 2 * n });
        images.push(r);
        log(`images N=${n}: ${r.imagesPerMinute.toFixed(2)} images/min, ${r.aggregateTps.toFixed(2)} t/s aggregate`);
    }
    for (const r of images) r.ratioToN1 = r.imagesPerMinute / images[0].imagesPerMinute;
}
const documents = [];
if (args.document) {
    for (const n of NS) {
        const r = await imageRun(n, { width: 1000, height: 1400, gen: 64, requests: n });
        documents.push(r);
        log(`document N=${n}: ${r.imagesPerMinute.toFixed(2)} images/min`);
    }
    for (const r of documents) r.ratioToN1 = r.imagesPerMinute / documents[0].imagesPerMinute;
}
await model.dispose();

const result = { machine: lib.systemInfo(), threads, text, images, documents };
if (args.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} else {
    console.log(
        `\nText generation (prompt ${PP}, ${TG} generated per sequence, median of ${RUNS} runs, ${threads} threads)`,
    );
    console.log(
        "| N | llama-vlm t/s | llama-batched-bench t/s | ratio | llama-vlm prompt t/s | reference prompt t/s |",
    );
    console.log("|---|---|---|---|---|---|");
    for (const r of text) {
        console.log(
            `| ${r.parallel} | ${r.llamaVlmTgTps.toFixed(2)} | ${r.llamaBatchedBenchTgTps.toFixed(2)} | ${r.ratio.toFixed(3)} | ${r.llamaVlmPpTps.toFixed(1)} | ${r.llamaBatchedBenchPpTps.toFixed(1)} |`,
        );
    }
    for (const [title, rows] of [
        ["Image requests (448×448, 256 generated tokens, 2N requests, 1 run)", images],
        ["Document requests (1000×1400, 64 generated tokens, N requests, 1 run)", documents],
    ]) {
        if (rows.length === 0) continue;
        console.log(`\n${title}`);
        console.log(
            "| N | images/min | ratio to N=1 | aggregate t/s | image tokens | encode ms/image | prompt ms/request | generate ms/request | wall s |",
        );
        console.log("|---|---|---|---|---|---|---|---|---|");
        for (const r of rows) {
            console.log(
                `| ${r.parallel} | ${r.imagesPerMinute.toFixed(2)} | ${r.ratioToN1.toFixed(2)} | ${r.aggregateTps.toFixed(2)} | ${r.imageTokens} | ${r.encodeMsPerImage.toFixed(0)} | ${r.promptMsPerRequest.toFixed(0)} | ${r.generateMsPerRequest.toFixed(0)} | ${r.wallS.toFixed(1)} |`,
            );
        }
    }
}
