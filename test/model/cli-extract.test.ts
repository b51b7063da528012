import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../lib/cli/main.js";
import { validateClinical } from "../../lib/clinical.js";
import { capture, interruptAfterLines, readLines } from "../helpers/cli.js";
import { testImageFile } from "../helpers/images.js";
import { cachedModel } from "../helpers/models.js";

let tmp: string;
let model: string;
let projector: string;
let images: string[];

beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-extract-"));
    const pair = await cachedModel("qwen2.5-vl");
    model = pair.model;
    projector = pair.projector!;
    const dir = path.join(tmp, "scans");
    fs.mkdirSync(dir);
    images = [];
    for (let seed = 0; seed < 12; seed++) {
        const src = await testImageFile(seed % 2 ? "blocks" : "gradient", { width: 224 + 8 * seed, height: 224, seed });
        const dst = path.join(dir, `scan-${String(seed).padStart(2, "0")}.png`);
        fs.copyFileSync(src, dst);
        images.push(dst);
    }
    // The SIGINT test runs the installed command, dist/ (compiled from lib/ by the suite's global setup).
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("llama-vlm extract", () => {
    it("survives Ctrl-C midway: a rerun completes exactly the missing images, no duplicates", async () => {
        const out = path.join(tmp, "run.jsonl");
        const args = [
            "extract",
            path.join(tmp, "scans"),
            "-m",
            model,
            "--projector",
            projector,
            "--parallel",
            "4",
            "--n-predict",
            "48",
            "--temp",
            "0",
            "--out",
            out,
            "--quiet",
        ];
        // Interrupt once a few images are written.
        const { code: interrupted, stderr } = await interruptAfterLines(args, out, 3);
        expect(interrupted, stderr).toBe(130);
        const first = readLines(out);
        expect(first.length).toBeGreaterThanOrEqual(3);
        expect(first.length).toBeLessThan(12);
        for (const line of first) expect(line.text?.length).toBeGreaterThan(0);

        const io = capture();
        const code = await runCli(
            [
                "extract",
                path.join(tmp, "scans"),
                "-m",
                model,
                "--projector",
                projector,
                "--parallel",
                "4",
                "--n-predict",
                "48",
                "--temp",
                "0",
                "--out",
                out,
                "--json",
            ],
            io.io,
        );
        expect(code, io.err).toBe(0);
        expect(io.err).toContain(`${first.length} already in ${out}, ${12 - first.length} to do`);
        const all = readLines(out);
        expect(all).toHaveLength(12);
        expect(new Set(all.map((l) => l.file)).size).toBe(12);
        expect(all.map((l) => l.file).sort()).toEqual(images.map((f) => path.resolve(f)).sort());
        for (const line of all) {
            expect(line.error).toBeUndefined();
            expect(line.stopReason).toBe("length");
            expect(line.timings?.generatedTokens).toBe(48);
        }
    });

    it("--preset clinical: every output parses and validates against the schema", async () => {
        const out = path.join(tmp, "clinical.jsonl");
        const io = capture();
        const code = await runCli(
            [
                "extract",
                ...images.slice(0, 4),
                "-m",
                model,
                "--projector",
                projector,
                "--preset",
                "clinical",
                "--n-probs",
                "3",
                "--temp",
                "0",
                "--out",
                out,
                "--quiet",
            ],
            io.io,
        );
        expect(code, `${io.err}\n${fs.readFileSync(out, "utf8")}`).toBe(0);
        const lines = readLines(out);
        expect(lines).toHaveLength(4);
        for (const line of lines) {
            expect(line.error, JSON.stringify(line)).toBeUndefined();
            expect(validateClinical(JSON.parse(line.text!))).toEqual([]);
            expect(line.json).toEqual(JSON.parse(line.text!));
            expect(Object.keys(line.confidence ?? {})).toEqual(
                expect.arrayContaining(["patient.name", "patient.age", "patient.sex"]),
            );
            for (const c of Object.values(line.confidence ?? {})) expect(c).toBeGreaterThan(0);
        }
    });

    it("draws a progress bar on a terminal that counts images, with the rate and ETA", async () => {
        let err = "";
        const io = {
            stdout: { write: () => true },
            stderr: { write: (s: string) => (err += s), isTTY: true, columns: 120 },
        };
        const args = ["extract", ...images.slice(0, 3), "-m", model, "--projector", projector, "--n-predict", "4"];
        const code = await runCli([...args, "--out", path.join(tmp, "bar.jsonl")], io);
        expect(code, err).toBe(0);
        const frames = err.split("\r").filter((f) => f.includes("%"));
        expect(frames.length, err).toBeGreaterThan(0);
        expect(frames.at(-1)).toMatch(/100% {2}3 \/ 3 images {2}[\d.]+ tokens\/s, ETA 0 s/);
        for (const frame of frames) expect(frame).toMatch(/ \d \/ 3 images /);
    });

    it("one corrupt image among 5: 4 results, 1 error line, exit code 2", async () => {
        const corrupt = path.join(tmp, "torn.png");
        fs.writeFileSync(corrupt, fs.readFileSync(images[0]!).subarray(0, 100));
        const out = path.join(tmp, "partial.jsonl");
        const io = capture();
        const code = await runCli(
            [
                "extract",
                ...images.slice(0, 4),
                corrupt,
                "-m",
                model,
                "--projector",
                projector,
                "-n",
                "8",
                "--out",
                out,
                "--quiet",
            ],
            io.io,
        );
        expect(code).toBe(2);
        const lines = readLines(out);
        expect(lines).toHaveLength(5);
        const errors = lines.filter((l) => l.error);
        expect(errors).toHaveLength(1);
        expect(errors[0]!.file).toBe(corrupt);
        expect(errors[0]!.error!.code).toBe("IMAGE_DECODE_FAILED");
        expect(lines.filter((l) => !l.error && l.text)).toHaveLength(4);
    });

    it("prints a table and exits 1 with a clear message for a missing model", async () => {
        const io = capture();
        expect(await runCli(["extract", images[0]!, "-m", path.join(tmp, "none.gguf"), "--quiet"], io.io)).toBe(1);
        expect(io.err).toContain("not found");
        const table = capture();
        expect(
            await runCli(
                [
                    "extract",
                    images[0]!,
                    "-m",
                    model,
                    "--projector",
                    projector,
                    "-n",
                    "4",
                    "--format",
                    "table",
                    "--quiet",
                ],
                table.io,
            ),
        ).toBe(0);
        expect(table.out).toMatch(/^file\s+stop\s+tok\s+result/);
        expect(table.out).toContain("scan-00.png");
    });
});
