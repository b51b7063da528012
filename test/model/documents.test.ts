import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../lib/cli/main.js";
import { validateClinical } from "../../lib/clinical.js";
import { stopRenderWorker } from "../../lib/documents/pdf.js";
import { writePdf } from "../../lib/documents/pdf-writer.js";
import { loadModel } from "../../lib/model.js";
import { capture, interruptAfterLines, parseLines } from "../helpers/cli.js";
import { cachedModel } from "../helpers/models.js";
import {
    encryptedPdf,
    hugePagePdf,
    hundredThousandPagePdf,
    letterPage,
    threePagePdf,
    threePageTiff,
    truncatedPdf,
} from "../helpers/pdf.js";

let tmp: string;
let model: string;
let projector: string;
let letter: string;
let tiff: string;

/**
 * Qwen2.5-VL's image tokens for a w × h image, as its projector preprocesses it (llama.cpp's smart resize): sides
 * rounded to multiples of patch size × merge size (14 × 2), the area kept between 8 and 4096 tokens of 28 × 28
 * pixels; one token per 28 × 28 block.
 */
function qwenImageTokens(w: number, h: number): number {
    const f = 28;
    let wb = Math.max(f, Math.round(w / f) * f);
    let hb = Math.max(f, Math.round(h / f) * f);
    if (wb * hb > 4096 * f * f) {
        const beta = Math.sqrt((w * h) / (4096 * f * f));
        wb = Math.max(f, Math.floor(w / beta / f) * f);
        hb = Math.max(f, Math.floor(h / beta / f) * f);
    } else if (wb * hb < 8 * f * f) {
        const beta = Math.sqrt((8 * f * f) / (w * h));
        wb = Math.ceil((w * beta) / f) * f;
        hb = Math.ceil((h * beta) / f) * f;
    }
    return (wb / f) * (hb / f);
}

const common = () => [
    "-m",
    model,
    "--projector",
    projector,
    "--n-predict",
    "4",
    "--temp",
    "0",
    "--max-pixels",
    "200000",
];

beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-documents-"));
    const pair = await cachedModel("qwen2.5-vl");
    model = pair.model;
    projector = pair.projector!;
    letter = path.join(tmp, "letter.pdf");
    fs.writeFileSync(letter, threePagePdf());
    tiff = path.join(tmp, "scan.tiff");
    fs.writeFileSync(tiff, await threePageTiff());
});
afterAll(async () => {
    await stopRenderWorker();
    fs.rmSync(tmp, { recursive: true, force: true });
});

describe("extract on documents", () => {
    it("a 3-page PDF and a 3-page TIFF give one line per page; --pages 2 gives one each", async () => {
        const io = capture();
        expect(await runCli(["extract", letter, tiff, ...common(), "--quiet"], io.io), io.err).toBe(0);
        const lines = parseLines(io.out);
        expect(lines).toHaveLength(6);
        for (const file of [letter, tiff]) {
            const mine = lines.filter((l) => l.file === file).sort((a, b) => a.page! - b.page!);
            expect(mine.map((l) => [l.page, l.pages])).toEqual([
                [1, 3],
                [2, 3],
                [3, 3],
            ]);
            for (const l of mine) {
                expect(l.error, JSON.stringify(l.error)).toBeUndefined();
                expect(l.timings?.generatedTokens).toBe(4);
                expect(l.images).toHaveLength(1);
            }
        }
        // The PDF pages are rendered to fit the budget; the TIFF pages are their own 300 × 200 pixels.
        const s = Math.sqrt(200_000 / (612 * 792));
        const pdfLine = lines.find((l) => l.file === letter)!;
        expect(pdfLine.images![0]).toEqual({ width: Math.floor(612 * s), height: Math.floor(792 * s), dpi: 72 * s });
        expect(lines.find((l) => l.file === tiff)!.images![0]).toEqual({ width: 300, height: 200 });

        const two = capture();
        expect(await runCli(["extract", letter, tiff, ...common(), "--pages", "2", "--quiet"], two.io), two.err).toBe(
            0,
        );
        const only = parseLines(two.out);
        expect(only.map((l) => [path.basename(l.file), l.page, l.pages]).sort()).toEqual([
            ["letter.pdf", 2, 3],
            ["scan.tiff", 2, 3],
        ]);
    });

    it("--pages-per-request 3 puts the pages in one prompt: one line, three images' tokens", async () => {
        const io = capture();
        const code = await runCli(["extract", letter, ...common(), "--pages-per-request", "3", "--quiet"], io.io);
        expect(code, io.err).toBe(0);
        const [line, ...rest] = parseLines(io.out);
        expect(rest).toEqual([]);
        expect([line!.page, line!.pages, line!.requestPages]).toEqual([1, 3, [1, 2, 3]]);
        expect(line!.images).toHaveLength(3);
        const { width, height } = line!.images![0]!;
        expect(line!.timings!.imageTokens).toBe(3 * qwenImageTokens(width, height));
    });

    it("encrypted, truncated, 100,000-page and 20,000 pt PDFs give coded error lines; the run goes on", async () => {
        const bad = path.join(tmp, "bad");
        fs.mkdirSync(bad);
        const files = {
            "encrypted.pdf": encryptedPdf(),
            "truncated.pdf": truncatedPdf(),
            "many-pages.pdf": hundredThousandPagePdf(),
            "huge-page.pdf": hugePagePdf(),
        };
        for (const [name, bytes] of Object.entries(files)) fs.writeFileSync(path.join(bad, name), bytes);
        const io = capture();
        const code = await runCli(["extract", bad, letter, ...common(), "--pages", "1", "--quiet"], io.io);
        expect(code, io.err).toBe(2);
        const lines = parseLines(io.out);
        const codes = Object.fromEntries(lines.map((l) => [path.basename(l.file), l.error?.code ?? "ok"]));
        expect(codes).toEqual({
            "encrypted.pdf": "DOCUMENT_ENCRYPTED",
            "truncated.pdf": "DOCUMENT_CORRUPT",
            "many-pages.pdf": "TOO_MANY_PAGES",
            "huge-page.pdf": "PAGE_TOO_LARGE",
            "letter.pdf": "ok",
        });
        for (const l of lines.filter((x) => x.error)) expect(l.error!.message.length).toBeGreaterThan(20);
        // The same process renders and runs the next document.
        const after = capture();
        expect(await runCli(["extract", letter, ...common(), "--pages", "3", "--quiet"], after.io)).toBe(0);
        expect(parseLines(after.out).map((l) => l.page)).toEqual([3]);
    });

    it("a rerun of an interrupted extract --out does only the pages not yet written", async () => {
        const pdf = path.join(tmp, "twelve.pdf");
        fs.writeFileSync(pdf, writePdf(Array.from({ length: 12 }, (_, i) => letterPage(i + 1))));
        const out = path.join(tmp, "pages.jsonl");
        const args = ["extract", pdf, ...common(), "--n-predict", "96", "--parallel", "2", "--out", out];
        const { code, stderr } = await interruptAfterLines([...args, "--quiet"], out, 3);
        const first = parseLines(fs.readFileSync(out, "utf8"));
        expect(code, stderr).toBe(130);
        expect(first.length).toBeGreaterThanOrEqual(3);
        expect(first.length).toBeLessThan(12);

        const io = capture();
        expect(await runCli([...args, "--json"], io.io), io.err).toBe(0);
        expect(io.err).toContain(`${first.length} already in ${out}, ${12 - first.length} to do`);
        const all = parseLines(fs.readFileSync(out, "utf8"));
        expect(all.map((l) => l.page).sort((a, b) => a! - b!)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
        for (const l of all) expect(l.error).toBeUndefined();
    });

    it("--preset clinical --merge-pages adds one record per document after its pages", async () => {
        const out = path.join(tmp, "clinical.jsonl");
        const args = ["extract", letter, "-m", model, "--projector", projector, "--preset", "clinical"];
        const io = capture();
        const code = await runCli([...args, "--temp", "0", "--merge-pages", "--out", out, "--quiet"], io.io);
        expect(code, io.err).toBe(0);
        const lines = parseLines(fs.readFileSync(out, "utf8"));
        expect(lines).toHaveLength(4);
        const pages = lines.filter((l) => !l.mergedPages).sort((a, b) => a.page! - b.page!);
        const merged = lines.find((l) => l.mergedPages)!;
        expect(pages.map((l) => l.page)).toEqual([1, 2, 3]);
        expect(merged.mergedPages).toEqual([1, 2, 3]);
        type Rec = { patient: { name: string }; conditions: string[]; medications: object[] };
        const records = pages.map((l) => l.json as Rec);
        const m = merged.json as Rec;
        expect(m.patient).toEqual((records.find((r) => r.patient.name.trim() !== "") ?? records[0]!).patient);
        const lower = m.conditions.map((c) => c.trim().replace(/\s+/g, " ").toLowerCase());
        expect(new Set(lower).size).toBe(lower.length);
        for (const r of records) {
            for (const c of r.conditions) {
                const key = c.trim().replace(/\s+/g, " ").toLowerCase();
                if (key !== "") expect(lower).toContain(key); // empty conditions are dropped
            }
        }
        expect(m.medications.length).toBeLessThanOrEqual(records.reduce((n, r) => n + r.medications.length, 0));
        for (const r of records) expect(validateClinical(r)).toEqual([]);
        // A rerun finds everything done, the merged record included.
        const again = capture();
        expect(await runCli([...args, "--merge-pages", "--out", out], again.io)).toBe(0);
        expect(parseLines(fs.readFileSync(out, "utf8"))).toHaveLength(4);
    });
});

describe("document pages through the API", () => {
    it("the image token count in timings matches the projector's formula for the rendered size", async () => {
        const m = await loadModel({ model, projector });
        try {
            const context = await m.createContext({ contextSize: 4096 });
            for (const maxPixels of [60_000, 200_000, 500_000]) {
                const r = await context.complete({
                    messages: [{ role: "user", content: [{ image: { document: letter, page: 1 } }, "Describe."] }],
                    imageBudget: { maxPixels },
                    maxTokens: 1,
                });
                const s = Math.sqrt(maxPixels / (612 * 792));
                const [size] = r.images!;
                expect(Math.abs(size!.width - Math.floor(612 * s))).toBeLessThanOrEqual(1);
                expect(Math.abs(size!.height - Math.floor(792 * s))).toBeLessThanOrEqual(1);
                expect(r.timings.imageTokens).toBe(qwenImageTokens(size!.width, size!.height));
            }
        } finally {
            await m.dispose();
        }
    });
});
