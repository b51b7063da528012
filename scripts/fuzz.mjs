#!/usr/bin/env node
// Seeded fuzzer over request shapes and sampler options against the tiny model (see scripts/fuzz-cases.mjs).
// Every case must complete (and pass its checks) or reject with a LlamaVlmError of a known code — the one the
// case's fault calls for — within a per-case deadline. Cases run in a child process so that a native crash is
// reported with the seed and the cases in flight, and the run goes on in a fresh child.
//
//   npm run compile && node scripts/fuzz.mjs [--cases 300] [--seed 1] [--deadline-ms 30000]
//       [--model m.gguf --projector mmproj.gguf] [--only K] [--list]
//
// --crash-at K kills the child when case K starts and --hang-at K never settles case K: they check the crash
// and hang reporting itself (test/model/fuzz.test.ts).
//
// Prints one line per failed case and, last, `fuzz: N cases (seed S): … 0 crashes, 0 hangs` and a
// `fuzz-summary {json}` line. Exit code 1 when any case crashed, hung or failed its checks.
import { fork } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildRequest, checkError, checkResult, describeCase, makeCase, TARGETS } from "./fuzz-cases.mjs";
import { importLibrary, scriptImages, tinyPair } from "./script-fixtures.mjs";

const { values: args } = parseArgs({
    options: {
        cases: { type: "string", default: "300" },
        seed: { type: "string", default: "1" },
        from: { type: "string", default: "0" },
        only: { type: "string" },
        "deadline-ms": { type: "string", default: "30000" },
        model: { type: "string" },
        projector: { type: "string" },
        list: { type: "boolean", default: false },
        child: { type: "boolean", default: false },
        "crash-at": { type: "string" },
        "hang-at": { type: "string" },
    },
});
const seed = Number(args.seed);
const first = args.only !== undefined ? Number(args.only) : Number(args.from);
const end = args.only !== undefined ? first + 1 : first + Number(args.cases);
const deadlineMs = Number(args["deadline-ms"]);

if (args.list) {
    for (let i = first; i < end; i++) process.stdout.write(`${describeCase(makeCase(seed, i))}\n`);
} else if (args.child) {
    await child();
} else {
    process.exitCode = await supervise();
}

/** Runs cases [from, end) and reports each start and end to the parent. */
async function child() {
    const send = (message) => process.send?.(message);
    const lib = await importLibrary();
    lib.setLogger(null);
    const assetDir = path.join(os.tmpdir(), `llama-vlm-fuzz-${process.pid}`);
    const assets = await scriptImages(assetDir);
    const model = await lib.loadModel(await tinyPair({ model: args.model, projector: args.projector }));
    const contexts = {
        main: await model.createContext(TARGETS.main),
        small: await model.createContext(TARGETS.small),
    };
    send({ type: "ready" });

    const runCase = async (c, submit, built = buildRequest(c, assets)) => {
        send({ type: "start", index: c.index });
        if (String(c.index) === args["crash-at"]) {
            await new Promise((resolve) => process.send({ type: "flush" }, resolve));
            process.kill(process.pid, "SIGKILL");
        }
        if (String(c.index) === args["hang-at"]) submit = () => new Promise(() => {});
        const { request, controller } = built;
        if (c.abort?.at === "delay") setTimeout(() => controller?.abort(), c.abort.ms);
        let chunks;
        const settled = (async () => {
            try {
                const result = await submit(request, (text) => {
                    chunks = (chunks ?? "") + text;
                    if (c.abort?.at === "firstChunk") controller?.abort();
                });
                const problems = checkResult(c, result, chunks);
                // Which grammar a completion with text was checked against: the run says that each one was.
                const grammar = c.grammar !== undefined && result?.text?.length > 0 ? c.grammar.name : undefined;
                return { status: "completed", problems, grammar };
            } catch (error) {
                return { status: "rejected", code: error?.code, problems: checkError(c, error) };
            }
        })();
        let timer;
        const outcome = await Promise.race([
            settled,
            new Promise((resolve) => {
                timer = setTimeout(
                    () => resolve({ status: "hang", problems: [`not settled after ${deadlineMs} ms`] }),
                    deadlineMs,
                );
            }),
        ]);
        clearTimeout(timer);
        send({ type: "end", index: c.index, ...outcome });
        return outcome;
    };

    const complete = (ctx) => (request) => ctx.complete(request);
    const stream = (ctx, c) => async (request, onText) => {
        const s = ctx.stream(request);
        for await (const chunk of s) {
            onText(chunk.text);
            if (c.breakLoop) break;
        }
        return s.result;
    };

    let i = first;
    while (i < end) {
        const group = [makeCase(seed, i++)];
        while (i < end && !makeCase(seed, i).newGroup) group.push(makeCase(seed, i++));
        const runs = [];
        for (const target of Object.keys(contexts)) {
            const ctx = contexts[target];
            const batch = group.filter((c) => c.target === target && c.mode === "batch");
            if (batch.length > 0) {
                // One completeBatch call for the group's batch cases; each case waits for its own entry.
                const built = batch.map((c) => buildRequest(c, assets));
                let call;
                const entry = (k) => async () => {
                    call ??= ctx.completeBatch(built.map((b) => b.request));
                    const out = (await call)[k];
                    if (out instanceof Error) throw out;
                    return out;
                };
                batch.forEach((c, k) => {
                    runs.push(runCase(c, entry(k), built[k]));
                });
            }
            for (const c of group.filter((x) => x.target === target && x.mode !== "batch")) {
                runs.push(
                    new Promise((resolve) => setTimeout(resolve, c.delayMs)).then(() =>
                        runCase(c, c.mode === "stream" ? stream(ctx, c) : complete(ctx)),
                    ),
                );
            }
        }
        const outcomes = await Promise.all(runs);
        // A hung request may hold a slot for good: start over in a fresh process.
        if (outcomes.some((o) => o.status === "hang")) process.exit(3);
    }
    await model.dispose();
    fs.rmSync(assetDir, { recursive: true, force: true });
    send({ type: "done" });
}

/** Runs the cases in child processes, restarting after a crash or hang; returns the exit code. */
async function supervise() {
    const started = Date.now();
    const outcomes = new Map();
    const crashes = [];
    let next = first;
    const self = fileURLToPath(import.meta.url);
    while (next < end) {
        const inFlight = new Set();
        const doneBefore = outcomes.size;
        let lastMessage = Date.now();
        let stderr = "";
        const passthrough = ["--seed", String(seed), "--deadline-ms", String(deadlineMs)];
        for (const name of ["crash-at", "hang-at"])
            if (args[name] !== undefined) passthrough.push(`--${name}`, args[name]);
        if (args.model) passthrough.push("--model", args.model, "--projector", args.projector ?? "");
        const proc = fork(self, ["--child", "--from", String(next), "--cases", String(end - next), ...passthrough], {
            stdio: ["ignore", "inherit", "pipe", "ipc"],
        });
        proc.stderr.on("data", (d) => {
            stderr = (stderr + d.toString()).slice(-4000);
        });
        let finished = false;
        proc.on("message", (m) => {
            lastMessage = Date.now();
            if (m.type === "start") inFlight.add(m.index);
            if (m.type === "end") {
                inFlight.delete(m.index);
                outcomes.set(m.index, m);
                next = Math.max(next, m.index + 1);
                if (outcomes.size % 500 === 0) process.stderr.write(`fuzz: ${outcomes.size} cases done\n`);
            }
            if (m.type === "done") finished = true;
        });
        // The child's own deadline reports hangs; this one catches a child whose event loop is stuck.
        const watchdog = setInterval(() => {
            if (Date.now() - lastMessage > deadlineMs + 30_000) proc.kill("SIGKILL");
        }, 1000);
        const [code, signal] = await new Promise((resolve) => proc.on("exit", (c, s) => resolve([c, s])));
        clearInterval(watchdog);
        if (finished && code === 0) break;
        const lost = [...inFlight].sort((a, b) => a - b);
        if (code === 3) {
            // The child reported its hung cases before exiting; the others in flight never settled either.
            for (const index of lost)
                outcomes.set(index, { index, status: "hang", problems: ["in flight when the child restarted"] });
        } else {
            crashes.push({ signal, code, cases: lost, stderr: stderr.trim().split("\n").slice(-8).join("\n") });
            for (const index of lost)
                outcomes.set(index, {
                    index,
                    status: "crash",
                    problems: [`process died (${signal ?? `exit ${code}`})`],
                });
            if (lost.length === 0 && outcomes.size === doneBefore) {
                // Died outside any case, before making progress: a fresh child would die the same way.
                process.stderr.write(
                    `fuzz: the child died outside any case (${signal ?? `exit ${code}`}):\n${stderr}\n`,
                );
                return 2;
            }
        }
        next = Math.max(next, ...lost.map((x) => x + 1));
    }

    const rejected = {};
    const failed = [];
    const grammarsChecked = {};
    let completed = 0;
    let hangs = 0;
    for (const o of outcomes.values()) {
        if (o.status === "completed") completed++;
        if (o.grammar !== undefined) grammarsChecked[o.grammar] = (grammarsChecked[o.grammar] ?? 0) + 1;
        if (o.status === "rejected") rejected[o.code] = (rejected[o.code] ?? 0) + 1;
        if (o.status === "hang") hangs++;
        if (o.problems.length > 0) failed.push(o);
    }
    failed.sort((a, b) => a.index - b.index);
    for (const o of failed) {
        process.stdout.write(`FAIL seed ${seed} case ${o.index} (${o.status}): ${o.problems.join("; ")}\n`);
        process.stdout.write(
            `  rerun: node scripts/fuzz.mjs --seed ${seed} --only ${o.index}\n  case: ${describeCase(makeCase(seed, o.index))}\n`,
        );
    }
    for (const c of crashes) {
        process.stdout.write(
            `CRASH seed ${seed}, cases in flight ${c.cases.join(", ")} (${c.signal ?? `exit ${c.code}`}):\n${c.stderr}\n`,
        );
    }
    const features = {};
    for (let i = first; i < end; i++) {
        const c = makeCase(seed, i);
        const r = c.request;
        const count = (name, yes) => {
            if (yes) features[name] = (features[name] ?? 0) + 1;
        };
        const images = [
            ...(Array.isArray(r.images) ? r.images : []),
            ...(Array.isArray(r.messages)
                ? r.messages.flatMap((m) =>
                      Array.isArray(m?.content) ? m.content.filter((p) => p?.image).map((p) => p.image) : [],
                  )
                : []),
        ];
        count("prompt", r.prompt !== undefined);
        count("messages", r.messages !== undefined);
        count("images", images.length > 0);
        count("threeImages", images.length === 3);
        count(
            "badImage",
            images.some((img) => img.code !== undefined),
        );
        count(
            "rawImage",
            images.some((img) => img.kind?.startsWith("raw")),
        );
        count(
            "invalidOption",
            c.faults.some((f) => f.code === "INVALID_OPTION"),
        );
        count("stop", (r.stop ?? r.stopStrings) !== undefined);
        count("nProbs", (r.nProbs ?? 0) > 0);
        count("grammar", c.grammar !== undefined);
        count("abort", c.abort !== undefined);
        count("stream", c.mode === "stream");
        count("batch", c.mode === "batch");
        count("small", c.target === "small");
        count("concurrent", !c.newGroup);
    }
    const codes = Object.entries(rejected)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k}: ${v}`)
        .join(", ");
    const total = end - first;
    const crashed = [...outcomes.values()].filter((o) => o.status === "crash").length;
    process.stdout.write(
        `fuzz: ${total} cases (seed ${seed}): ${completed} completed, ${total - completed - hangs - crashed} rejected {${codes}}, ` +
            `${crashes.length} crashes, ${hangs} hangs, ${failed.length - hangs - crashed} failed checks, ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
    process.stdout.write(
        `fuzz-summary ${JSON.stringify({ seed, cases: total, ran: outcomes.size, completed, rejected, crashes: crashes.length, hangs, failed: failed.length, features, grammarsChecked })}\n`,
    );
    return crashes.length > 0 || failed.length > 0 || outcomes.size !== total ? 1 : 0;
}
