import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../lib/cli/main.js";
import { cachedModel } from "../helpers/models.js";

let tmp: string;
beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-cli-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function capture() {
    const io = { out: "", err: "" };
    return {
        io,
        streams: { stdout: { write: (s: string) => (io.out += s) }, stderr: { write: (s: string) => (io.err += s) } },
    };
}

describe("llama-vlm info", () => {
    it("describes a pair from the headers and says whether it fits", async () => {
        const qwen = await cachedModel("qwen2.5-vl");
        const smol = await cachedModel("smolvlm");
        const ok = capture();
        expect(await runCli(["info", qwen.model, qwen.projector!, "--json"], ok.streams)).toBe(0);
        const report = JSON.parse(ok.io.out) as {
            files: Array<{
                kind: string;
                architecture: string;
                vocabSize?: number;
                projectorType?: string;
                quantisation: Record<string, number>;
            }>;
            pair: { ok: boolean };
        };
        expect(report.files[0]).toMatchObject({ kind: "text model", architecture: "qwen2vl", vocabSize: 151936 });
        expect(report.files[0]!.quantisation.q8_0).toBeGreaterThan(0.9);
        expect(report.files[1]).toMatchObject({ kind: "projector", projectorType: "qwen2.5vl_merger" });
        expect(report.pair.ok).toBe(true);
        const bad = capture();
        expect(await runCli(["info", qwen.model, smol.projector!], bad.streams)).toBe(2);
        expect(bad.io.out).toContain("pair: NO");
    });
});

describe("llama-vlm demo", () => {
    it("runs the whole pipeline on generated prescriptions and a two-page PDF and exits 0", async () => {
        const run = capture();
        const code = await runCli(["demo", "--dir", tmp, "--images", "2"], run.streams);
        expect(code, run.io.err).toBe(0);
        const lines = fs.readFileSync(path.join(tmp, "results.jsonl"), "utf8").trim().split("\n");
        expect(lines).toHaveLength(4);
        const rows = lines.map(
            (l) => JSON.parse(l) as { file: string; page?: number; pages?: number; text: string; stopReason: string },
        );
        for (const row of rows) {
            expect(row.text.length).toBeGreaterThan(0);
            expect(["eos", "stop", "context"]).toContain(row.stopReason);
        }
        const pdfPages = rows.filter((r) => r.file.endsWith("discharge-letter.pdf")).map((r) => [r.page, r.pages]);
        expect(pdfPages.sort()).toEqual([
            [1, 2],
            [2, 2],
        ]);
        expect(run.io.out).toContain("synthetic");
        expect(run.io.out).toMatch(/prescription-01\.png/);
        expect(run.io.out).toMatch(/discharge-letter\.pdf p2/);
    }, 300_000);
});
