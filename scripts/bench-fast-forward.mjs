#!/usr/bin/env node
// Grammar fast-forward on the shape-true Qwen2.5-VL-3B pair (synthetic weights; written once into .cache/models):
// generated JSON tokens/s of llama-vlm without and with `fastForward`, and of the vendored llama-completion decoding
// under the same grammar, measured in the same run (interleaved, median of --runs), greedy, one sequence. Two
// schemas: the clinical preset's and one of mostly enums and numbers; each as llama.cpp's converter writes it
// ("flexible": the converter's optional white space between JSON tokens) and with that white space removed
// ("compact": `space ::= ""`, the output a model writes without the grammar's leave).
//
// Generation time: llama-vlm's generateMs (first token to the end-of-generation token, sampling and grammar
// included); llama-completion's eval + sampling time from its perf print. Two rates over it:
// - output tokens/s: the tokens each side's decoder produced. The conservative figure for fast-forward: it writes
//   forced text as the tokenizer splits it, in fewer and longer tokens than a model sampling one at a time often
//   takes, so the same JSON counts fewer of its tokens.
// - JSON tokens/s: the output text tokenised by the model's tokenizer, the same unit on every side (how fast JSON
//   text is written). With the synthetic model the plain sides write in short pieces, which favours fast-forward
//   more than a trained model would.
// "forced" is the share of llama-vlm's output tokens fast-forward wrote.
//
//   node scripts/bench-fast-forward.mjs [--runs 3] [--threads 2] [--gpu-layers 0] [--max-tokens 400] [--tools DIR]
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { benchPair, root } from "./bench-pair.mjs";

const { values: args } = parseArgs({
    options: {
        runs: { type: "string", default: "3" },
        threads: { type: "string", default: "2" },
        "gpu-layers": { type: "string", default: "0" },
        "max-tokens": { type: "string", default: "400" },
        tools: { type: "string", default: process.env.LLAMA_VLM_TEST_TOOLS_DIR ?? "" },
        json: { type: "boolean", default: false },
    },
});
const runs = Number(args.runs);
const threads = Number(args.threads);
const gpuLayers = Number(args["gpu-layers"]);
const maxTokens = Number(args["max-tokens"]);
const tools = args.tools || path.join(root, "build-native", process.env.LLAMA_VLM_GPU ?? "cpu", "bin");
const completion = path.join(tools, "llama-completion");
if (!fs.existsSync(completion)) throw new Error(`${completion} not found: npm run build:llama-tools, or --tools DIR`);

const pair = await benchPair();
const { loadModel, setLogger } = await import(path.join(root, "dist", "index.js"));
const { loadNative } = await import(path.join(root, "dist", "native.js"));
const { CLINICAL_SCHEMA } = await import(path.join(root, "dist", "clinical.js"));
setLogger(null);
const log = (line) => process.stderr.write(`[bench] ${line}\n`);

const ENUMS_SCHEMA = {
    type: "object",
    properties: {
        route: { type: "string", enum: ["oral", "intravenous", "intramuscular", "subcutaneous", "topical"] },
        frequency: { type: "string", enum: ["once daily", "twice daily", "three times daily", "as needed"] },
        form: { type: "string", enum: ["tablet", "capsule", "injection", "solution", "cream"] },
        doseMg: { type: "integer", minimum: 0, maximum: 2000 },
        days: { type: "integer", minimum: 1, maximum: 90 },
        refills: { type: "integer", minimum: 0, maximum: 12 },
        controlled: { type: "boolean" },
        status: { type: "string", enum: ["active", "completed", "discontinued", "on hold"] },
    },
    required: ["route", "frequency", "form", "doseMg", "days", "refills", "controlled", "status"],
    additionalProperties: false,
};
const PROMPT = "Extract the prescription as JSON.\n";

// What a real model would write for a typical prescription: the forced share of these (replayed through the grammar,
// tokenised as the tokenizer splits them) is what fast-forward would give on real output, where the synthetic model's
// own output (much white space where the grammar allows it, long free strings) gives less.
const EXPECTED = {
    "enums+numbers": {
        route: "oral",
        frequency: "twice daily",
        form: "tablet",
        doseMg: 500,
        days: 30,
        refills: 2,
        controlled: false,
        status: "active",
    },
    clinical: {
        patient: { name: "Maria Lopez", age: 67, sex: "female" },
        conditions: ["type 2 diabetes mellitus", "hypertension"],
        medications: [
            { name: "Metformin", dose: "500 mg", route: "oral", frequency: "twice daily", duration: "90 days" },
            { name: "Lisinopril", dose: "10 mg", route: "oral", frequency: "once daily", duration: "90 days" },
        ],
    },
};
/** JSON as models usually space it: `{"a": 1, "b": [2, 3]}`. */
const spaced = (v) =>
    Array.isArray(v)
        ? `[${v.map(spaced).join(", ")}]`
        : typeof v === "object" && v !== null
          ? `{${Object.entries(v)
                .map(([k, x]) => `${JSON.stringify(k)}: ${spaced(x)}`)
                .join(", ")}}`
          : JSON.stringify(v);

const native = loadNative();
const cases = [];
for (const [name, schema] of [
    ["enums+numbers", ENUMS_SCHEMA],
    ["clinical", CLINICAL_SCHEMA],
]) {
    const flexible = native.jsonSchemaToGrammar(JSON.stringify(schema));
    const compact = flexible.replace(/^space ::= .*$/m, 'space ::= ""');
    if (compact === flexible) throw new Error("the converter's grammar has no space rule to replace");
    cases.push(
        { name: `${name}, flexible`, grammar: flexible, expected: spaced(EXPECTED[name]) },
        { name: `${name}, compact`, grammar: compact, expected: JSON.stringify(EXPECTED[name]) },
    );
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-ff-"));
function llamaCpp(grammar) {
    const file = path.join(tmp, "grammar.gbnf");
    fs.writeFileSync(file, grammar);
    const r = spawnSync(
        completion,
        [
            ...["-m", pair.model, "-p", PROMPT, "-n", String(maxTokens), "--temp", "0", "-t", String(threads)],
            ...["-c", "4096", "-ngl", String(gpuLayers), "--grammar-file", file, "-no-cnv", "--no-display-prompt"],
        ],
        { encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "pipe"] },
    );
    if (r.status !== 0) throw new Error(`llama-completion failed (${r.status}): ${r.stderr.slice(-2000)}`);
    const grab = (re) => {
        const m = r.stderr.match(re);
        if (!m) throw new Error(`no ${re} in llama-completion's output:\n${r.stderr.slice(-2000)}`);
        return m;
    };
    const evalTime = grab(/ eval time =\s*([0-9.]+) ms \/\s*([0-9]+) runs/);
    const sampling = grab(/sampling time =\s*([0-9.]+) ms/);
    const text = r.stdout.replace(/\s*\[end of text\]\s*$/, "");
    return { tokens: Number(evalTime[2]), ms: Number(evalTime[1]) + Number(sampling[1]), text };
}

const model = await loadModel({ model: pair.model, gpuLayers });
const context = await model.createContext({ contextSize: 4096, parallel: 1, threads, threadsBatch: threads });
async function ours(grammar, fastForward) {
    const r = await context.complete({ prompt: PROMPT, grammar, fastForward, temperature: 0, maxTokens });
    return {
        tokens: r.timings.generatedTokens,
        forced: r.timings.forcedTokens,
        ms: r.timings.generateMs,
        text: r.text,
    };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const c of cases) {
    const samples = { llamaCpp: [], plain: [], fast: [] };
    for (let i = 0; i < runs; i++) {
        samples.llamaCpp.push(llamaCpp(c.grammar));
        samples.plain.push(await ours(c.grammar, false));
        samples.fast.push(await ours(c.grammar, true));
        log(`${c.name} run ${i + 1}/${runs}`);
    }
    const replay = native.replayFastForward(model.loaded.vocab, c.grammar, c.expected);
    const tps = (s) => median(s.map((x) => (x.tokens / x.ms) * 1000));
    const jsonTokens = (text) => model.tokenize(text, { addSpecial: false }).length;
    const jsonTps = (s) => median(s.map((x) => (jsonTokens(x.text) / x.ms) * 1000));
    const fast = samples.fast.at(-1);
    rows.push({
        schema: c.name,
        llamaCppJsonTps: jsonTps(samples.llamaCpp),
        plainJsonTps: jsonTps(samples.plain),
        fastJsonTps: jsonTps(samples.fast),
        llamaCppTps: tps(samples.llamaCpp),
        plainTps: tps(samples.plain),
        fastTps: tps(samples.fast),
        jsonTokens: {
            llamaCpp: jsonTokens(samples.llamaCpp.at(-1).text),
            plain: jsonTokens(samples.plain.at(-1).text),
            fast: jsonTokens(fast.text),
        },
        tokens: { llamaCpp: samples.llamaCpp.at(-1).tokens, plain: samples.plain.at(-1).tokens, fast: fast.tokens },
        forcedShare: fast.forced / fast.tokens,
        expectedForcedShare: replay.forced / replay.tokens,
        sameTextAsPlain: fast.text === samples.plain.at(-1).text,
        validJson: (() => {
            try {
                JSON.parse(fast.text);
                return true;
            } catch {
                return false;
            }
        })(),
    });
}
await context.dispose();
await model.dispose();
fs.rmSync(tmp, { recursive: true, force: true });

if (args.json) {
    console.log(JSON.stringify({ runs, threads, gpuLayers, rows }, null, 2));
} else {
    const f = (x) => x.toFixed(2);
    console.log(`Grammar fast-forward, 3B synthetic, ${threads} threads, gpuLayers ${gpuLayers}, median of ${runs}`);
    console.log(
        "| schema (grammar) | llama-completion t/s | llama-vlm t/s | fast-forward t/s | forced | vs llama.cpp | vs plain | JSON tokens/s (llama.cpp / plain / ff) | JSON tokens/s vs llama.cpp | output tokens (llama.cpp / plain / ff) | forced in a real output |",
    );
    console.log("|---|---|---|---|---|---|---|---|---|---|---|");
    for (const r of rows) {
        console.log(
            `| ${r.schema} | ${f(r.llamaCppTps)} | ${f(r.plainTps)} | ${f(r.fastTps)} | ${(r.forcedShare * 100).toFixed(0)} % | ` +
                `${f(r.fastTps / r.llamaCppTps)}× | ${f(r.fastTps / r.plainTps)}× | ` +
                `${f(r.llamaCppJsonTps)} / ${f(r.plainJsonTps)} / ${f(r.fastJsonTps)} | ${f(r.fastJsonTps / r.llamaCppJsonTps)}× | ` +
                `${r.tokens.llamaCpp} / ${r.tokens.plain} / ${r.tokens.fast} | ${(r.expectedForcedShare * 100).toFixed(0)} % |`,
        );
    }
}
