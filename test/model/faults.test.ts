import { spawnSync } from "node:child_process";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { testImages, tinyPair } from "../helpers/fixtures.js";
import { REPO_ROOT } from "../helpers/models.js";

// Each scenario runs in a child process (test/fixtures/faults.mjs, on the compiled library): a native crash or
// a hang there is an exit signal or a timeout here, not a dead test worker.
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
    const pair = await tinyPair("qwen2.5-vl");
    const [image] = await testImages();
    env = {
        ...process.env,
        FAULT_DIST: path.join(REPO_ROOT, "dist", "index.js"),
        FAULT_MODEL: pair.model,
        FAULT_PROJECTOR: pair.projector,
        FAULT_IMAGE: image,
        FAULT_WORKER: path.join(REPO_ROOT, "test", "fixtures", "worker-generate.mjs"),
    };
});

interface Run {
    status: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    ms: number;
}

function run(scenario: string, timeoutMs = 60_000): Run {
    const started = Date.now();
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "test", "fixtures", "faults.mjs"), scenario], {
        env,
        timeout: timeoutMs,
        encoding: "utf8",
    });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
}

/** The scenario's RESULT, after checking that its process ended by itself with code 0. */
function result<T>(scenario: string): T {
    const r = run(scenario);
    expect(r.signal, `${scenario}: killed (crash or hang)\n${r.stderr.slice(-2000)}`).toBeNull();
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    expect(line, r.stdout).toBeDefined();
    return JSON.parse(line!.slice("RESULT ".length)) as T;
}

describe("faults", () => {
    it("disposing a context rejects its running, queued and preparing requests with DISPOSED at once; the model goes on", () => {
        const r = result<{
            disposeMs: number;
            outcomes: string[];
            streamError: string;
            preparingAtDispose: boolean;
            preparingReachedEngine: boolean;
            after: string;
            secondDisposeMs: number;
            sameAfter: boolean;
        }>("dispose-context");
        // The last request was still preparing its images when dispose() started, and was rejected without ever
        // reaching the engine.
        expect(r.preparingAtDispose, "the preparing request had reached the engine before dispose()").toBe(true);
        expect(r.preparingReachedEngine, "the preparing request reached the engine after dispose()").toBe(false);
        expect(r.outcomes).toEqual(Array(6).fill("err:DISPOSED"));
        expect(r.streamError).toBe("DISPOSED");
        expect(r.disposeMs).toBeLessThan(5_000);
        expect(r.after).toBe("err:DISPOSED");
        expect(r.secondDisposeMs).toBeLessThan(1_000);
        expect(r.sameAfter).toBe(true);
    });

    it("disposing a model disposes its live contexts (requests reject with DISPOSED), then everything reports DISPOSED; it loads again", () => {
        const r = result<{
            disposeMs: number;
            outcomes: string[];
            afterwards: Record<string, string>;
            raced: string;
            sameAfterReload: boolean;
        }>("dispose-model");
        expect(r.outcomes).toEqual(Array(4).fill("err:DISPOSED"));
        expect(r.disposeMs).toBeLessThan(5_000);
        expect(r.afterwards).toEqual({
            complete: "err:DISPOSED",
            createContext: "err:DISPOSED",
            tokenize: "DISPOSED",
            applyChatTemplate: "DISPOSED",
        });
        // createContext still running when the model was disposed: rejected, not a live context on a dead model.
        expect(r.raced).toBe("err:DISPOSED");
        expect(r.sameAfterReload).toBe(true);
    });

    it("an abort storm (312 requests aborted before, during and after submission) settles every request; greedy output is unchanged", () => {
        const r = result<{
            stormMs: number;
            counts: Record<string, number>;
            total: number;
            sameAfter: boolean;
            disposeMs: number;
            lastCounts: Record<string, number>;
        }>("abort-storm");
        expect(r.total).toBe(312);
        // Aborted before the engine took them: ABORTED; after: a result with stopReason "abort". Nothing else.
        expect(Object.keys(r.counts).sort()).toEqual(["err:ABORTED", "ok:abort"]);
        expect(r.counts["err:ABORTED"]).toBeGreaterThanOrEqual(60); // the 3 × 20 aborted before the call
        expect(r.counts["ok:abort"]).toBeGreaterThan(0);
        expect(r.sameAfter).toBe(true);
        expect(r.disposeMs).toBeLessThan(5_000);
        for (const key of Object.keys(r.lastCounts)) expect(["ok:abort", "err:ABORTED", "err:DISPOSED"]).toContain(key);
        expect(Object.values(r.lastCounts).reduce((a, b) => a + b, 0)).toBe(20);
    });

    it("a process that never disposes exits on its own once its requests settle", () => {
        const r = run("no-dispose");
        expect(r.signal, r.stderr.slice(-2000)).toBeNull();
        expect(r.status).toBe(0);
        expect(r.stdout).toContain('RESULT {"outcomes":["ok:length:8","ok:length:8","ok:length:8"]}');
        expect(r.stdout).toContain("EXITED");
    });

    it("an uncaught exception with requests decoding ends the process with code 1 (no hang, no crash)", () => {
        const r = run("throw-in-flight");
        expect(r.signal, r.stderr.slice(-2000)).toBeNull();
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("uncaught while requests are decoding");
        expect(r.ms).toBeLessThan(30_000);
    });

    it("4 worker_threads each load the model and generate at the same time, equal to single-thread greedy output", () => {
        const r = result<{
            exitCodes: number[];
            equal: boolean[];
            overlapped: boolean;
            generateMs: number[];
            terminated: number[];
            sameAfter: boolean;
        }>("workers");
        expect(r.equal).toEqual([true, true, true, true]);
        expect(r.overlapped).toBe(true);
        // Each worker disposed its model and its thread ended by itself.
        expect(r.exitCodes).toEqual([0, 0, 0, 0]);
        // worker.terminate() while tokens are being delivered (12 times): each worker goes (exit code 1), this
        // thread keeps working.
        expect(r.terminated).toEqual(Array(12).fill(1));
        expect(r.sameAfter).toBe(true);
    });
});
