#!/usr/bin/env node
// The batched-decoding benchmark on the shape-true Qwen2.5-VL-3B pair (synthetic weights: speed does not
// depend on weight values; written once into .cache/models). For parallel N = 1, 2, 4 it prints aggregate
// generation t/s next to the vendored llama-batched-bench at the same N measured in the same run (median of
// --runs), and images/minute for 448×448 image requests with 256 generated tokens each. --document adds
// the document-sized case (1000×1400 px ≈ 1,800 image tokens).
//
//   npm run bench:batch -- [--runs 3] [--parallel 1,2,4] [--text-only] [--document] [--json]
import path from "node:path";
import { parseArgs } from "node:util";
import { benchPair, root } from "./bench-pair.mjs";

const { values: args } = parseArgs({
    options: {
        runs: { type: "string", default: "3" },
        parallel: { type: "string", default: "1,2,4" },
        document: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        "text-only": { type: "boolean", default: false },
    },
});
const pair = await benchPair();
const { runBench, formatBench } = await import(path.join(root, "dist", "bench.js"));
const { setLogger } = await import(path.join(root, "dist", "index.js"));
setLogger(null);

const parallel = args.parallel.split(",").map(Number);
const log = (line) => process.stderr.write(`[bench] ${line}\n`);
const report = await runBench({
    model: pair.model,
    projector: pair.projector,
    parallel,
    runs: Number(args.runs),
    compareLlamaCpp: true,
    skipImages: args["text-only"],
    log,
});
let documents;
if (args.document) {
    documents = await runBench({
        model: pair.model,
        projector: pair.projector,
        parallel,
        runs: 1,
        imagesPerSlot: 1,
        imageSize: [1000, 1400],
        imageGenerate: 64,
        log,
        skipText: true,
    });
}
if (args.json) process.stdout.write(`${JSON.stringify({ report, documents }, null, 2)}\n`);
else {
    console.log(formatBench(report));
    if (documents)
        console.log(
            `\nDocument-sized images (1000×1400, 64 generated tokens, N requests)\n${formatBench({ ...documents, text: [] })}`,
        );
}
