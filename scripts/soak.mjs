#!/usr/bin/env node
// Soak: N mixed requests (good image requests, text requests, corrupt images, over-context prompts, invalid
// options, streams aborted after a random 1-8 chunks) through one context, a bounded pool keeping 2 × parallel in
// flight. Prints a progress line every 200 requests (100 below 1,000) with the counts, RSS, heap and the process's
// active resources, then a summary. Greedy image requests must give the tokens they give alone; every error must be
// the one its kind calls for, and every aborted request must end with stopReason "abort" (only those count as
// aborted). Exit code 1 on an unexpected error, on RSS at N over 1.10 × RSS at 200 (at N/5 below 1,000), or
// when the process holds more resources after dispose than before loading.
//
//   npm run compile && node scripts/soak.mjs [--requests 2000] [--parallel 4] [--seed 1]
//       [--model m.gguf --projector mmproj.gguf]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import v8 from "node:v8";
import vm from "node:vm";
import { importLibrary, Rng, scriptImages, tinyPair } from "./script-fixtures.mjs";

const { values: args } = parseArgs({
    options: {
        requests: { type: "string", default: "2000" },
        parallel: { type: "string", default: "4" },
        seed: { type: "string", default: "1" },
        model: { type: "string" },
        projector: { type: "string" },
    },
});
const total = Number(args.requests);
const parallel = Number(args.parallel);
const every = total >= 1000 ? 200 : 100;
// The RSS baseline: request 200, or half of a shorter run. Before that the allocator is still warming up (on
// this machine RSS@40 → @100 grows 3-5% with no leak), which left CI's 200-request run little margin.
const baseAt = Math.min(200, Math.max(1, Math.floor(total / 2)));

// RSS is compared after a full collection, so that garbage not yet collected does not read as growth.
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc");

const resources = () => {
    const counts = {};
    for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] ?? 0) + 1;
    return counts;
};
const show = (counts) =>
    `{${Object.entries(counts)
        .sort()
        .map(([k, v]) => `${k}: ${v}`)
        .join(", ")}}`;
const mb = (bytes) => (bytes / 1e6).toFixed(1);

const lib = await importLibrary();
lib.setLogger(null);
const assetDir = path.join(os.tmpdir(), `llama-vlm-soak-${process.pid}`);
const assets = await scriptImages(assetDir);
const pair = await tinyPair({ model: args.model, projector: args.projector });
process.stdout.write(`[soak] ${total} requests, parallel ${parallel}, seed ${args.seed}, model ${pair.model}\n`);
// After the first write: stdout's own handle is not the library's.
const resourcesBefore = resources();
const model = await lib.loadModel(pair);
const ctx = await model.createContext({ contextSize: 1024, parallel });

// The greedy image requests, and the tokens each gives alone (a parallel=1 context).
const variants = [0, 1, 2, 3].map((v) => ({
    messages: [
        { role: "user", content: [{ image: v % 2 === 0 ? assets.pngFile : assets.jpeg }, `Variant ${v}: describe.`] },
    ],
    temperature: 0,
    maxTokens: 4 + v * 2,
}));
const solo = await model.createContext({ contextSize: 1024, parallel: 1 });
const expected = [];
for (const v of variants) expected.push((await solo.complete(v)).tokens.join());
await solo.dispose();

const KINDS = [
    { kind: "image", weight: 35 },
    { kind: "text", weight: 20 },
    { kind: "corrupt", weight: 10, code: "IMAGE_DECODE_FAILED" },
    { kind: "overContext", weight: 5, code: "OVER_CONTEXT" },
    { kind: "invalid", weight: 10, code: "INVALID_OPTION" },
    { kind: "abort", weight: 20 },
];
const pickKind = (rng) => {
    let roll = rng.int(0, 99);
    for (const k of KINDS) {
        if (roll < k.weight) return k;
        roll -= k.weight;
    }
    return KINDS[0];
};
const INVALID = [
    { temperature: -1 },
    { topP: Number.NaN },
    { temprature: 0.5 },
    { mirostat: 3 },
    { maxTokens: 1.5 },
    { logitBias: [[1e9, 1]] },
    { grammar: "root ::= (" },
    { stop: "x" },
];

const counts = { ok: 0, aborted: 0, expected: {}, unexpected: 0 };
const unexpected = [];
const rss = new Map();

async function runOne(i) {
    const rng = new Rng(Number(args.seed), `soak request ${i}`);
    const k = pickKind(rng);
    const fail = (what) => {
        counts.unexpected++;
        if (unexpected.length < 20) unexpected.push(`request ${i} (${k.kind}): ${what}`);
    };
    const v = i % variants.length;
    let request;
    let controller;
    if (k.kind === "image") request = variants[v];
    else if (k.kind === "text") {
        request = {
            prompt: `Plain text request ${i}.`,
            temperature: rng.real(0, 1.5),
            topK: rng.int(0, 50),
            maxTokens: rng.int(1, 16),
            seed: i,
        };
    } else if (k.kind === "corrupt") {
        const bad = rng.pick([assets.randomBytes, assets.truncatedPng, assets.headerThenJunk]);
        request = { messages: [{ role: "user", content: [{ image: bad }, "What is this?"] }], maxTokens: 2 };
    } else if (k.kind === "overContext") request = { prompt: "dose ".repeat(3000), maxTokens: 2 };
    else if (k.kind === "invalid") request = { prompt: "x", maxTokens: 2, ...rng.pick(INVALID) };
    else {
        // Aborted while it decodes: streamed with no token limit (room for hundreds of tokens) and aborted after 1
        // to 8 chunks, so it can only end by its abort.
        controller = new AbortController();
        request = { ...variants[v], maxTokens: -1, signal: controller.signal };
    }
    try {
        let result;
        let abortAfter;
        if (k.kind === "abort") {
            abortAfter = rng.int(1, 8);
            const stream = ctx.stream(request);
            let chunks = 0;
            for await (const _ of stream) if (++chunks === abortAfter) controller.abort();
            result = await stream.result;
        } else result = await ctx.complete(request);
        if (k.code) return fail(`expected ${k.code}, completed`);
        if (k.kind === "abort") {
            // Only a request the abort ended counts as aborted.
            if (result.stopReason !== "abort") {
                return fail(`aborted after ${abortAfter} chunks, ended with stopReason ${result.stopReason}`);
            }
            counts.aborted++;
            return;
        }
        if (k.kind === "image" && result.tokens.join() !== expected[v]) return fail("greedy tokens differ from solo");
        if (result.tokens.length !== request.maxTokens || result.stopReason !== "length") {
            return fail(`${result.tokens.length} tokens, stopReason ${result.stopReason}`);
        }
        counts.ok++;
    } catch (error) {
        const code = error?.name === "LlamaVlmError" ? error.code : undefined;
        if (code === undefined || code !== k.code) return fail(`${error?.name} ${code ?? ""}: ${error?.message}`);
        counts.expected[code] = (counts.expected[code] ?? 0) + 1;
    }
}

function progress(done, elapsed) {
    gc();
    const mem = process.memoryUsage();
    rss.set(done, mem.rss);
    process.stdout.write(
        `[soak] ${String(done).padStart(String(total).length)}/${total} ok ${counts.ok} aborted ${counts.aborted} ` +
            `expected ${show(counts.expected)} unexpected ${counts.unexpected} | RSS ${mb(mem.rss)} MB heap ${mb(mem.heapUsed)} MB | ` +
            `resources ${show(resources())} | ${(elapsed / 1000).toFixed(1)} s\n`,
    );
}

const started = Date.now();
let next = 0;
let done = 0;
const worker = async () => {
    while (next < total) {
        await runOne(next++);
        done++;
        if (done === baseAt && done % every !== 0) {
            gc();
            rss.set(done, process.memoryUsage().rss);
        }
        if (done % every === 0 || done === total) progress(done, Date.now() - started);
    }
};
await Promise.all(Array.from({ length: 2 * parallel }, worker));
const elapsed = (Date.now() - started) / 1000;
await model.dispose();
fs.rmSync(assetDir, { recursive: true, force: true });
await new Promise((resolve) => setTimeout(resolve, 100));
const resourcesAfter = resources();
const leaked = Object.entries(resourcesAfter).filter(([k, n]) => n > (resourcesBefore[k] ?? 0));

const ratio = rss.get(total) / rss.get(baseAt);
// Growth over the second half tells a steady leak from warm-up (allocator arenas, caches) that levels off.
const mid = Math.max(...[...rss.keys()].filter((k) => k <= total / 2));
const secondHalf = rss.get(total) - rss.get(mid);
const ok =
    counts.unexpected === 0 &&
    ratio <= 1.1 &&
    leaked.length === 0 &&
    counts.ok + counts.aborted + Object.values(counts.expected).reduce((a, b) => a + b, 0) === total;
for (const line of unexpected) process.stdout.write(`UNEXPECTED ${line}\n`);
process.stdout.write(
    `soak: ${total} requests in ${elapsed.toFixed(1)} s (parallel ${parallel}): ok ${counts.ok}, aborted ${counts.aborted}, ` +
        `expected errors ${show(counts.expected)}, unexpected ${counts.unexpected}; RSS@${baseAt} ${mb(rss.get(baseAt))} MB, ` +
        `RSS@${total} ${mb(rss.get(total))} MB, ratio ${ratio.toFixed(3)} (RSS@${mid}→@${total}: ${secondHalf >= 0 ? "+" : ""}${mb(secondHalf)} MB); ` +
        `resources before load ${show(resourcesBefore)}, ` +
        `after dispose ${show(resourcesAfter)}${leaked.length > 0 ? " (LEAKED)" : ""} — ${ok ? "PASS" : "FAIL"}\n`,
);
process.stdout.write(
    `soak-summary ${JSON.stringify({ requests: total, parallel, ok: counts.ok, aborted: counts.aborted, expected: counts.expected, unexpected: counts.unexpected, rssBaseAt: baseAt, rssBase: rss.get(baseAt), rssEnd: rss.get(total), ratio, rssMidAt: mid, rssMid: rss.get(mid), leaked: Object.fromEntries(leaked), seconds: elapsed })}\n`,
);
process.exitCode = ok ? 0 : 1;
