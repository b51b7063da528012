#!/usr/bin/env node
// What process isolation costs: aggregate generation tokens/s of the same greedy text requests with the engine
// in this process and with `isolation: "process"`, alternating the two (so both see the same machine load),
// median of --runs, and the ratio isolated / in-process. Also the time to load each way.
//
//   node scripts/bench-isolation.mjs [--size tiny|3b] [--runs 5] [--parallel 1,4] [--tokens 128]
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
    options: {
        size: { type: "string", default: "tiny" },
        runs: { type: "string", default: "5" },
        parallel: { type: "string", default: "1,4" },
        tokens: { type: "string", default: "128" },
    },
});
execFileSync("npm", ["run", "compile"], { cwd: root, stdio: "ignore" });
const { writeModelPair } = await import(path.join(root, "dist", "synth", "index.js"));
const { loadModel, setLogger } = await import(path.join(root, "dist", "index.js"));
setLogger(null);

const dir = path.join(root, ".cache", "models", `qwen2.5-vl-${args.size}-seed0-bench`);
const manifest = path.join(dir, "pair.json");
let pair;
if (fs.existsSync(manifest)) pair = JSON.parse(fs.readFileSync(manifest, "utf8"));
else {
    const quant = args.size === "tiny" ? "q8_0" : "q4_0";
    pair = await writeModelPair({ family: "qwen2.5-vl", size: args.size, seed: 0, quant, outDir: dir });
    fs.writeFileSync(manifest, JSON.stringify({ model: pair.model, projector: pair.projector }));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const tokens = Number(args.tokens);
const runs = Number(args.runs);
console.log(`qwen2.5-vl ${args.size}, ${tokens} generated tokens per request, median of ${runs} runs`);
console.log("| N | in-process t/s | isolated t/s | ratio | load in-process s | load isolated s |");
console.log("|---|---|---|---|---|---|");
for (const parallel of args.parallel.split(",").map(Number)) {
    const rates = { none: [], process: [] };
    const loads = { none: [], process: [] };
    for (let run = 0; run < runs; run++) {
        for (const isolation of ["none", "process"]) {
            const t0 = performance.now();
            const model = await loadModel({ model: pair.model, projector: pair.projector, isolation });
            loads[isolation].push((performance.now() - t0) / 1000);
            const context = await model.createContext({ contextSize: 1024, parallel });
            const requests = Array.from({ length: parallel }, (_, i) => ({
                prompt: `Request ${i}: write a long note about the patient.`,
                temperature: 0,
                maxTokens: tokens,
            }));
            await context.complete({ ...requests[0], maxTokens: 4 }); // warm-up
            const t1 = performance.now();
            const results = await context.completeBatch(requests);
            const seconds = (performance.now() - t1) / 1000;
            const generated = results.reduce((n, r) => n + r.tokens.length, 0);
            rates[isolation].push(generated / seconds);
            await model.dispose();
        }
    }
    const a = median(rates.none);
    const b = median(rates.process);
    console.log(
        `| ${parallel} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b / a).toFixed(3)} | ${median(loads.none).toFixed(2)} | ${median(loads.process).toFixed(2)} |`,
    );
}
