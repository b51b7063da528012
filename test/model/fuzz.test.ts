import { spawnSync } from "node:child_process";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type TestPair, tinyPair } from "../helpers/fixtures.js";
import { REPO_ROOT } from "../helpers/models.js";

// scripts/fuzz.mjs runs the cases in a child process of its own and reports a native crash with the seed and the
// cases in flight; this test runs the script (on the compiled library) and reads its summary.
const SEED = Number(process.env.LLAMA_VLM_FUZZ_SEED ?? 1);
const CASES = Number(process.env.LLAMA_VLM_FUZZ_CASES ?? 300);
/** The per-case deadline of the hang test: generous, since the other cases run under it too. */
const HANG_DEADLINE_MS = 30_000;

interface Summary {
    seed: number;
    cases: number;
    ran: number;
    completed: number;
    rejected: Record<string, number>;
    crashes: number;
    hangs: number;
    failed: number;
    features: Record<string, number>;
    /** Completed cases with text, by the grammar or JSON schema (scripts/fuzz-cases.mjs) their text was checked against. */
    grammarsChecked: Record<string, number>;
}

let pair: TestPair;

beforeAll(async () => {
    pair = await tinyPair("qwen2.5-vl");
});

function fuzz(...args: string[]) {
    const r = spawnSync(
        process.execPath,
        [path.join(REPO_ROOT, "scripts", "fuzz.mjs"), "--model", pair.model, "--projector", pair.projector, ...args],
        { cwd: REPO_ROOT, encoding: "utf8", timeout: 280_000 },
    );
    const summary = r.stdout.split("\n").find((l) => l.startsWith("fuzz-summary "));
    return {
        ...r,
        line: r.stdout.split("\n").find((l) => l.startsWith("fuzz: ")),
        summary: summary === undefined ? undefined : (JSON.parse(summary.slice("fuzz-summary ".length)) as Summary),
    };
}

describe("fuzzer", () => {
    it(`${CASES} seeded cases: each completes and passes its checks, or rejects with the typed error its fault calls for`, () => {
        const r = fuzz("--cases", String(CASES), "--seed", String(SEED));
        console.log(r.line);
        expect(r.summary, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`).toBeDefined();
        const s = r.summary!;
        expect(s.crashes, r.stdout).toBe(0);
        expect(s.hangs, r.stdout).toBe(0);
        expect(s.failed, r.stdout).toBe(0);
        expect(s.ran).toBe(CASES);
        expect(r.status, r.stdout.slice(-4000)).toBe(0);
        // The run reaches both outcomes and the main error classes, and the generator every shape.
        expect(s.completed).toBeGreaterThan(CASES / 4);
        for (const code of ["INVALID_OPTION", "ABORTED", "IMAGE_DECODE_FAILED", "FILE_NOT_FOUND", "OVER_CONTEXT"]) {
            expect(s.rejected[code], code).toBeGreaterThan(0);
        }
        for (const feature of [
            "prompt",
            "messages",
            "images",
            "threeImages",
            "badImage",
            "rawImage",
            "invalidOption",
            "stop",
            "nProbs",
            "grammar",
            "abort",
            "stream",
            "batch",
            "small",
            "concurrent",
        ]) {
            expect(s.features[feature], feature).toBeGreaterThan(0);
        }
        // Each grammar's check ran on at least one completion with text (so a grammar that stopped constraining the
        // output would fail it).
        for (const grammar of ["yes-no", "letters", "numbers", "enum", "integer", "object"]) {
            expect(s.grammarsChecked[grammar], `completions checked against the ${grammar} grammar`).toBeGreaterThan(0);
        }
    }, 300_000);

    it("reports a process that dies as a crash with the seed and the cases in flight, and runs the rest", () => {
        const r = fuzz("--cases", "12", "--seed", "7", "--crash-at", "4");
        expect(r.status).toBe(1);
        expect(r.summary!.crashes).toBe(1);
        expect(r.summary!.ran).toBe(12);
        expect(r.stdout).toMatch(/CRASH seed 7, cases in flight [\d, ]*\b4\b/);
        expect(r.stdout).toContain("FAIL seed 7 case 4 (crash)");
        expect(r.line).toContain("1 crashes, 0 hangs");
    });

    // The deadline applies to every case: it must be one that only a hang reaches (the cases take well under a
    // second, a few on a loaded machine), so this test waits it out once.
    it("reports a case that never settles as a hang after the deadline, and runs the rest", () => {
        const r = fuzz("--cases", "12", "--seed", "7", "--hang-at", "5", "--deadline-ms", String(HANG_DEADLINE_MS));
        expect(r.summary, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`).toBeDefined();
        expect(r.status).toBe(1);
        expect(r.summary!.hangs, r.stdout).toBe(1);
        expect(r.summary!.ran).toBe(12);
        expect(r.stdout).toContain(`FAIL seed 7 case 5 (hang): not settled after ${HANG_DEADLINE_MS} ms`);
        expect(r.line).toContain("0 crashes, 1 hangs");
    }, 200_000);
});
