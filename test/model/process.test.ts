import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testImages, tinyPair } from "../helpers/fixtures.js";
import { REPO_ROOT } from "../helpers/models.js";

// What a process does with work in flight runs in a child process: the test process must survive it.
let script: string;
let isolatedScript: string;
let quietScript: string;

beforeAll(async () => {
    const pair = await tinyPair("qwen2.5-vl");
    const [image] = await testImages();
    script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-exit-")), "exit.mjs");
    fs.writeFileSync(
        script,
        `import { loadModel } from ${JSON.stringify(path.join(REPO_ROOT, "dist", "index.js"))};
const model = await loadModel({ model: ${JSON.stringify(pair.model)}, projector: ${JSON.stringify(pair.projector)} });
const ctx = await model.createContext({ contextSize: 4096, parallel: 2 });
for (let i = 0; i < 4; i++) {
    ctx.complete({ messages: [{ role: "user", content: [{ image: ${JSON.stringify(image)} }, "go " + i] }], maxTokens: -1 }).catch(() => {});
}
setTimeout(() => process.exit(7), 300);
`,
    );
    // The same with an isolated model; before exiting it prints the pids of its children (the engine process).
    isolatedScript = path.join(path.dirname(script), "exit-isolated.mjs");
    fs.writeFileSync(
        isolatedScript,
        fs
            .readFileSync(script, "utf8")
            .replace("projector: ", 'isolation: "process", projector: ')
            .replace(
                "setTimeout(() => process.exit(7), 300);",
                `import { execFileSync } from "node:child_process";
setTimeout(() => {
    console.log(execFileSync("ps", ["-o", "pid=", "--ppid", String(process.pid)], { encoding: "utf8" }).trim().split(/\\s+/).join(" "));
    process.exit(7);
}, 300);`,
            ),
    );
    // With setLogger(null), things that make llama.cpp log: a model load, a grammar that does not parse (its
    // parser printed to stderr itself) and a chat template that common's chat code warns about (common's own
    // logger printed from its own thread). It prints what reached it when a logger is set, for comparison.
    quietScript = path.join(path.dirname(script), "quiet.mjs");
    fs.writeFileSync(
        quietScript,
        `import { loadModel, setLogger } from ${JSON.stringify(path.join(REPO_ROOT, "dist", "index.js"))};
const seen = [];
if (process.argv[2] === "null") setLogger(null);
else setLogger((level, line) => seen.push(level + " " + line.trim()), "warn");
const model = await loadModel({ model: ${JSON.stringify(pair.model)} });
const ctx = await model.createContext({ contextSize: 512 });
const codes = [];
await ctx.complete({ prompt: "hi", grammar: "root ::= (", maxTokens: 2 }).catch((e) => codes.push(e.code));
try {
    model.applyChatTemplate([{ role: "user", content: "hi" }], { template: "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}" });
} catch (e) {
    codes.push(e.code);
}
await new Promise((done) => setTimeout(done, 200));
await model.dispose();
console.log(JSON.stringify({ codes, seen }));
`,
    );
});

afterAll(() => {
    fs.rmSync(path.dirname(script), { recursive: true, force: true });
});

describe("logging", () => {
    it("setLogger(null) silences llama.cpp entirely: nothing reaches stderr, also from common's logger and the grammar parser", () => {
        const quiet = spawnSync(process.execPath, [quietScript, "null"], { timeout: 60_000, encoding: "utf8" });
        expect(quiet.status, quiet.stderr).toBe(0);
        expect(JSON.parse(quiet.stdout).codes).toEqual(["INVALID_OPTION", "INVALID_OPTION"]);
        expect(quiet.stderr).toBe("");
        // The same lines reach a logger when one is set.
        const logged = spawnSync(process.execPath, [quietScript, "logger"], { timeout: 60_000, encoding: "utf8" });
        const { seen } = JSON.parse(logged.stdout) as { seen: string[] };
        expect(
            seen.some((l) => /^error .*error parsing grammar: expecting '\)'/.test(l)),
            seen.join("\n"),
        ).toBe(true);
        expect(
            seen.some((l) => /^warn .*render_message_to_json/.test(l)),
            seen.join("\n"),
        ).toBe(true);
        expect(logged.stderr).toBe("");
    });
});

describe("process lifetime", () => {
    it("process.exit with requests in flight exits at once with its code (no hang, no crash)", () => {
        const started = Date.now();
        const r = spawnSync(process.execPath, [script], { timeout: 60_000, encoding: "utf8" });
        expect(r.signal, r.stderr).toBeNull();
        expect(r.status, r.stderr).toBe(7);
        expect(Date.now() - started).toBeLessThan(30_000);
    });

    it("process.exit with an isolated model's requests in flight: exits with its code and the engine process ends too", async () => {
        const r = spawnSync(process.execPath, [isolatedScript], { timeout: 60_000, encoding: "utf8" });
        expect(r.signal, r.stderr).toBeNull();
        expect(r.status, r.stderr).toBe(7);
        const pids = r.stdout.trim().split(" ").filter(Boolean).map(Number);
        // The engine process, and ps itself.
        expect(pids.length, r.stdout).toBeGreaterThanOrEqual(2);
        const alive = (pid: number) => {
            try {
                process.kill(pid, 0);
                return true;
            } catch {
                return false;
            }
        };
        for (let i = 0; i < 100 && pids.some(alive); i++) await new Promise((done) => setTimeout(done, 100));
        expect(pids.filter(alive)).toEqual([]);
    });
});
