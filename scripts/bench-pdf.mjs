#!/usr/bin/env node
// PDF pages: what rendering costs and what a page costs end to end, so that a user can choose an image budget.
//
// 1. Render time of one text-heavy Letter page (45 lines of 9 pt text and a ruled table) at the default page
//    budget (1,000,000 pixels: 879 × 1137, 103 dpi), median of --runs: llama-vlm's path (PDFium/WebAssembly in
//    the render worker, then sharp to RGB, as a request prepares it) against Debian's `pdftoppm` (poppler-utils)
//    rendering the same page at the same size, process start included (that is how a pipeline would call it).
//    Also the mean absolute difference between the two renders (grey levels 0..255), a fidelity check.
// 2. With --e2e: seconds per page end to end (render, vision encoder, prefill, --tokens generated tokens) on the
//    synthetic Qwen2.5-VL-3B pair (real shapes, Q4_0) at each of --budgets, --e2e-runs each.
//
//   node scripts/bench-pdf.mjs [--runs 9] [--e2e] [--budgets 500000,1000000,2000000] [--e2e-runs 1] [--tokens 4]
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
    options: {
        runs: { type: "string", default: "9" },
        e2e: { type: "boolean", default: false },
        budgets: { type: "string", default: "500000,1000000,2000000" },
        "e2e-runs": { type: "string", default: "1" },
        tokens: { type: "string", default: "4" },
    },
});
if (spawnSync("pdftoppm", ["-v"]).error) {
    console.error("bench-pdf: pdftoppm not found: install Debian's poppler-utils (apt-get install -y poppler-utils)");
    process.exit(1);
}
execFileSync("npm", ["run", "compile"], { cwd: root, stdio: "ignore" });
const { writePdf } = await import(path.join(root, "dist", "documents", "pdf-writer.js"));
const { pageRenderSize } = await import(path.join(root, "dist", "documents", "pages.js"));
const { prepareImage, resolveBudget } = await import(path.join(root, "dist", "images.js"));
const { DEFAULT_PAGE_PIXELS } = await import(path.join(root, "dist", "documents", "pages.js"));
const sharp = (await import("sharp")).default;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const runs = Number(args.runs);

/** A text-heavy Letter page: a title, 45 lines of 9 pt text, a ruled 4 × 8 table. */
function textHeavyPage() {
    const words = (
        "the patient was admitted with community acquired pneumonia and treated with amoxicillin clavulanate " +
        "875 mg twice daily; metformin 500 mg continued; blood pressure 128/84 at discharge"
    ).split(" ");
    const texts = [
        { x: 40, y: 760, size: 14, text: "Discharge letter - Patient: Jane Doe, born 1956-03-14", bold: true },
    ];
    let y = 736;
    for (let i = 0; i < 45; i++, y -= 11) {
        const line = Array.from({ length: 16 }, (_, j) => words[(i * 7 + j) % words.length]).join(" ");
        texts.push({ x: 40, y, size: 9, text: line });
    }
    y -= 10;
    const lines = [];
    for (let r = 0; r <= 8; r++) lines.push({ x1: 40, y1: y - r * 20, x2: 572, y2: y - r * 20, width: 0.7 });
    for (const x of [40, 220, 360, 470, 572]) lines.push({ x1: x, y1: y, x2: x, y2: y - 160, width: 0.7 });
    const cols = [44, 224, 364, 474];
    for (let r = 0; r < 8; r++) {
        for (const [c, t] of ["Medication", "Dose", "Route", "Frequency"].entries()) {
            texts.push({ x: cols[c], y: y - r * 20 - 14, size: 9, text: r === 0 ? t : `${t} ${r}`, bold: r === 0 });
        }
    }
    return { width: 612, height: 792, texts, lines };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-bench-pdf-"));
const pdfFile = path.join(tmp, "page.pdf");
const pdf = writePdf([textHeavyPage()]);
fs.writeFileSync(pdfFile, pdf);
const size = pageRenderSize(612, 792, DEFAULT_PAGE_PIXELS);
const budget = resolveBudget({ maxPixels: DEFAULT_PAGE_PIXELS });

// Warm-up: the render worker starts and instantiates PDFium once per process (reported separately).
let t0 = performance.now();
await prepareImage({ document: pdf, page: 1 }, 0, budget);
const firstMs = performance.now() - t0;

const ours = [];
let image;
for (let i = 0; i < runs; i++) {
    t0 = performance.now();
    image = await prepareImage({ document: pdf, page: 1 }, 0, budget);
    ours.push(performance.now() - t0);
}
const poppler = [];
let ppm;
for (let i = 0; i < runs; i++) {
    t0 = performance.now();
    // Raw PPM on stdout: no PNG encoding on poppler's side either.
    ppm = execFileSync(
        "pdftoppm",
        ["-f", "1", "-l", "1", "-scale-to-x", String(size.width), "-scale-to-y", String(size.height), pdfFile],
        { maxBuffer: 64 * 1024 * 1024 },
    );
    poppler.push(performance.now() - t0);
}
/** Binary PPM (P6, 8-bit): header "P6 w h 255" and RGB rows. */
function readPpm(bytes) {
    const m = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(bytes.subarray(0, 64).toString("latin1"));
    if (!m) throw new Error("pdftoppm did not write an 8-bit PPM");
    return { info: { width: Number(m[1]), height: Number(m[2]) }, data: bytes.subarray(m[0].length) };
}
const popplerImage = readPpm(ppm);
if (popplerImage.info.width !== image.width || popplerImage.info.height !== image.height) {
    throw new Error(
        `sizes differ: ${image.width}×${image.height} vs ${popplerImage.info.width}×${popplerImage.info.height}`,
    );
}
const grey = (d, i) => (d[i] + d[i + 1] + d[i + 2]) / 3;
const meanDiff = (a, b) => {
    let sum = 0;
    for (let i = 0; i < a.length; i += 3) sum += Math.abs(grey(a, i) - grey(b, i));
    return sum / (a.length / 3);
};
const diff = meanDiff(image.data, popplerImage.data);
// Blurred (sigma 2 px): what is left when glyph shapes (poppler substitutes a font for Helvetica here) are smoothed.
const blur = (img) =>
    sharp(img.data, { raw: { width: image.width, height: image.height, channels: 3 } })
        .blur(2)
        .raw()
        .toBuffer();
const blurredDiff = meanDiff(await blur(image), await blur(popplerImage));
await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .png()
    .toFile(path.join(tmp, "llama-vlm.png"));
await sharp(popplerImage.data, { raw: { ...popplerImage.info, channels: 3 } })
    .png()
    .toFile(path.join(tmp, "pdftoppm.png"));

console.log(
    `Render: one text-heavy Letter page at the default page budget (${DEFAULT_PAGE_PIXELS} px: ${size.width}×${size.height}, ${size.dpi.toFixed(1)} dpi), median of ${runs} runs`,
);
console.log("| renderer | median ms | ratio to pdftoppm |");
console.log("|---|---|---|");
console.log(
    `| llama-vlm (PDFium/WASM in the render worker + sharp → RGB) | ${median(ours).toFixed(1)} | ${(median(ours) / median(poppler)).toFixed(2)} |`,
);
console.log(`| pdftoppm (poppler-utils, process start included, PPM) | ${median(poppler).toFixed(1)} | 1.00 |`);
console.log(
    `First render in a process (worker start, PDFium instantiation): ${firstMs.toFixed(0)} ms. Mean |grey difference| llama-vlm vs pdftoppm: ${diff.toFixed(2)} of 255 (${blurredDiff.toFixed(2)} blurred at sigma 2 px). PNGs: ${tmp}`,
);

if (args.e2e) {
    const { loadModel, setLogger } = await import(path.join(root, "dist", "index.js"));
    setLogger(null);
    const pair = JSON.parse(
        fs.readFileSync(path.join(root, ".cache", "models", "qwen2.5-vl-3b-seed0-q4_0", "pair.json"), "utf8"),
    );
    const model = await loadModel({ model: pair.model, projector: pair.projector });
    const context = await model.createContext({ contextSize: 4096 });
    const e2eRuns = Number(args["e2e-runs"]);
    const tokens = Number(args.tokens);
    console.log("");
    console.log(
        `End to end on the synthetic Qwen2.5-VL-3B pair (Q4_0), ${tokens} generated tokens, ${e2eRuns} run(s) per budget (n=${e2eRuns}), ${os.cpus().length} CPUs`,
    );
    console.log("| budget px | page px | dpi | image tokens | encode s | s per page |");
    console.log("|---|---|---|---|---|---|");
    for (const maxPixels of args.budgets.split(",").map(Number)) {
        const times = [];
        let r;
        for (let i = 0; i < e2eRuns; i++) {
            // A different page each run (the page number in the title), so the encoder cache never answers.
            const page = textHeavyPage();
            page.texts[0] = { ...page.texts[0], text: `${page.texts[0].text} run ${maxPixels}-${i}` };
            const doc = writePdf([page]);
            t0 = performance.now();
            r = await context.complete({
                messages: [{ role: "user", content: [{ image: { document: doc, page: 1 } }, "Read this page."] }],
                imageBudget: { maxPixels },
                maxTokens: tokens,
                temperature: 0,
            });
            times.push((performance.now() - t0) / 1000);
        }
        const [img] = r.images;
        console.log(
            `| ${maxPixels} | ${img.width}×${img.height} | ${img.dpi.toFixed(0)} | ${r.timings.imageTokens} | ${(r.timings.imageEncodeMs / 1000).toFixed(1)} | ${median(times).toFixed(1)} |`,
        );
    }
    await model.dispose();
}
