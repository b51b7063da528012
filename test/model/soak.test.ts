import { spawnSync } from "node:child_process";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type TestPair, tinyPair } from "../helpers/fixtures.js";
import { REPO_ROOT } from "../helpers/models.js";

// CI's run of scripts/soak.mjs (2,000 requests by hand, 200 here), on the compiled library in a child process.
interface Summary {
    requests: number;
    ok: number;
    aborted: number;
    expected: Record<string, number>;
    unexpected: number;
    ratio: number;
    leaked: Record<string, number>;
}

let pair: TestPair;

beforeAll(async () => {
    pair = await tinyPair("qwen2.5-vl");
});

describe("soak", () => {
    it("200 mixed requests through parallel=4: only the expected errors, RSS flat (≤ 1.10×), no resource left after dispose", () => {
        const r = spawnSync(
            process.execPath,
            [
                path.join(REPO_ROOT, "scripts", "soak.mjs"),
                "--requests",
                "200",
                "--parallel",
                "4",
                "--model",
                pair.model,
                "--projector",
                pair.projector,
            ],
            { cwd: REPO_ROOT, encoding: "utf8", timeout: 280_000 },
        );
        const lines = r.stdout.split("\n");
        console.log(lines.find((l) => l.startsWith("soak: ")));
        const summaryLine = lines.find((l) => l.startsWith("soak-summary "));
        expect(summaryLine, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`).toBeDefined();
        const s = JSON.parse(summaryLine!.slice("soak-summary ".length)) as Summary;
        expect(s.unexpected, r.stdout).toBe(0);
        expect(s.ratio).toBeLessThanOrEqual(1.1);
        expect(s.leaked).toEqual({});
        expect(s.ok + s.aborted + Object.values(s.expected).reduce((a, b) => a + b, 0)).toBe(200);
        // Every kind of request was in the mix.
        expect(s.ok).toBeGreaterThan(0);
        expect(s.aborted).toBeGreaterThan(0);
        expect(Object.keys(s.expected).sort()).toEqual(["IMAGE_DECODE_FAILED", "INVALID_OPTION", "OVER_CONTEXT"]);
        // Progress lines every 100 requests, with RSS, heap and the active resources.
        expect(
            lines.filter((l) => /^\[soak\] +\d+\/200 .* RSS [\d.]+ MB heap [\d.]+ MB \| resources \{/.test(l)),
        ).toHaveLength(2);
        expect(r.signal).toBeNull();
        expect(r.status).toBe(0);
    }, 300_000);
});
