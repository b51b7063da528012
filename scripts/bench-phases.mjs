#!/usr/bin/env node
// The phase benchmark on the shape-true Qwen2.5-VL-3B pair: one image request at a time, image encode / image
// prefill / text prefill / generation for llama-vlm and for the vendored llama-mtmd-cli (same threads, context,
// prompt and image), interleaved fresh processes, medians of --runs and ratios (lib/bench-phases.ts says what each
// side counts).
//
//   npm run bench:phases -- [--runs 3] [--sizes 448x448,1000x1400] [--n-gen 64] [--threads N] [--json]
import path from "node:path";
import { parseArgs } from "node:util";
import { benchPair, root } from "./bench-pair.mjs";

const { values: args } = parseArgs({
    options: {
        runs: { type: "string", default: "3" },
        sizes: { type: "string", default: "448x448,1000x1400" },
        "n-gen": { type: "string", default: "64" },
        threads: { type: "string" },
        json: { type: "boolean", default: false },
    },
});
const pair = await benchPair();
const { runPhaseBench, formatPhaseBench } = await import(path.join(root, "dist", "bench-phases.js"));
const report = await runPhaseBench({
    model: pair.model,
    projector: pair.projector,
    imageSizes: args.sizes.split(",").map((s) => s.split("x").map(Number)),
    runs: Number(args.runs),
    generate: Number(args["n-gen"]),
    ...(args.threads ? { threads: Number(args.threads) } : {}),
    log: (line) => process.stderr.write(`[bench] ${line}\n`),
});
console.log(args.json ? JSON.stringify(report, null, 2) : formatPhaseBench(report));
