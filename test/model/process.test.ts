import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testImages, tinyPair } from "../helpers/fixtures.js";
import { REPO_ROOT } from "../helpers/models.js";

// What a process does with work in flight runs in a child process: the test process must survive it.
let script: string;
let isolatedScript: string;

beforeAll(async () => {
    execFileSync("npm", ["run", "compile"], { cwd: REPO_ROOT, stdio: "ignore" });
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
});

afterAll(() => {
    fs.rmSync(path.dirname(script), { recursive: true, force: true });
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
