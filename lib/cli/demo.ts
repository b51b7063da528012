/**
 * `llama-vlm demo`: the whole pipeline with nothing downloaded. Writes the tiny synthetic Qwen2.5-VL pair,
 * a few rendered prescriptions and a two-page PDF discharge letter, then runs `extract` on them with the
 * reference pipeline's settings (the PDF's pages rendered, one line each).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import sharp from "sharp";
import { type PdfPage, writePdf } from "../documents/pdf-writer.js";
import { Xoshiro128 } from "../gguf/index.js";
import { writeModelPair } from "../synth/index.js";
import { CliExit, type CliIo } from "./io.js";

const FIRST = ["Maria", "John", "Aisha", "Wei", "Carlos", "Fatima", "Peter", "Yuki", "Olga", "Samuel"];
const LAST = ["Garcia", "Smith", "Khan", "Chen", "Lopez", "Haddad", "Novak", "Sato", "Ivanova", "Okafor"];
const DIAGNOSES = [
    "Type 2 diabetes mellitus",
    "Essential hypertension",
    "Community-acquired pneumonia",
    "Asthma, moderate persistent",
    "Hypothyroidism",
    "Major depressive disorder",
    "Atrial fibrillation",
    "Urinary tract infection",
];
const MEDICATIONS = [
    ["Metformin", "500 mg", "oral", "twice daily", "90 days"],
    ["Lisinopril", "10 mg", "oral", "once daily", "30 days"],
    ["Amoxicillin", "875 mg", "oral", "every 12 hours", "7 days"],
    ["Salbutamol", "100 mcg", "inhaled", "as needed", "30 days"],
    ["Levothyroxine", "50 mcg", "oral", "once daily", "90 days"],
    ["Sertraline", "50 mg", "oral", "once daily", "60 days"],
    ["Apixaban", "5 mg", "oral", "twice daily", "30 days"],
    ["Nitrofurantoin", "100 mg", "oral", "twice daily", "5 days"],
    ["Insulin glargine", "10 units", "subcutaneous", "at bedtime", "30 days"],
    ["Atorvastatin", "20 mg", "oral", "once daily", "90 days"],
] as const;

function escapeXml(s: string): string {
    return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A prescription page as PNG: patient name, age, sex, diagnosis and 2–4 medications with doses. */
export async function renderPrescription(seed: number): Promise<{ png: Buffer; facts: Record<string, unknown> }> {
    const rng = new Xoshiro128(seed + 1);
    const pick = <T>(list: readonly T[]) => list[rng.nextU32() % list.length]!;
    const name = `${pick(FIRST)} ${pick(LAST)}`;
    const age = 18 + (rng.nextU32() % 70);
    const sex = rng.nextU32() % 2 ? "Female" : "Male";
    const diagnosis = pick(DIAGNOSES);
    const count = 2 + (rng.nextU32() % 3);
    const meds: (typeof MEDICATIONS)[number][] = [];
    while (meds.length < count) {
        const m = pick(MEDICATIONS);
        if (!meds.includes(m)) meds.push(m);
    }
    const lines = [
        { text: "CITY GENERAL HOSPITAL — OUTPATIENT PRESCRIPTION", size: 22, bold: true },
        { text: `Patient: ${name}`, size: 20 },
        { text: `Age: ${age}    Sex: ${sex}`, size: 20 },
        { text: `Diagnosis: ${diagnosis}`, size: 20 },
        { text: "Rx:", size: 22, bold: true },
        ...meds.map(([n, dose, route, freq, dur], i) => ({
            text: `${i + 1}. ${n} ${dose}, ${route}, ${freq}, for ${dur}`,
            size: 18,
        })),
        {
            text: `Dr. ${pick(LAST)}, MD        Date: 2026-11-${String(1 + (rng.nextU32() % 28)).padStart(2, "0")}`,
            size: 16,
        },
    ];
    const width = 760;
    const height = 80 + lines.length * 44;
    const body = lines
        .map(
            (l, i) =>
                `<text x="36" y="${64 + i * 44}" font-family="DejaVu Sans, sans-serif" font-size="${l.size}"` +
                `${l.bold ? ' font-weight="bold"' : ""} fill="#1a1a1a">${escapeXml(l.text)}</text>`,
        )
        .join("");
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="#fdfcf7"/><rect x="14" y="14" width="${width - 28}" height="${height - 28}" fill="none" stroke="#777" stroke-width="2"/>${body}</svg>`;
    const png = await sharp(Buffer.from(svg)).png().toBuffer();
    return { png, facts: { name, age, sex, diagnosis, medications: meds.map((m) => `${m[0]} ${m[1]}`) } };
}

/**
 * A two-page discharge letter as PDF: page 1 the patient and diagnoses, page 2 a ruled table of medications.
 * Text drawn in Helvetica, so the PDF renderer draws real glyphs.
 */
export function dischargeLetterPdf(seed: number): Buffer {
    const rng = new Xoshiro128(seed + 101);
    const pick = <T>(list: readonly T[]) => list[rng.nextU32() % list.length]!;
    const name = `${pick(FIRST)} ${pick(LAST)}`;
    const header = (n: number) => [
        { x: 50, y: 740, size: 16, text: "CITY GENERAL HOSPITAL - DISCHARGE LETTER", bold: true },
        { x: 50, y: 60, size: 9, text: `Page ${n} of 2` },
    ];
    const first: PdfPage = {
        width: 612,
        height: 792,
        texts: [
            ...header(1),
            { x: 50, y: 700, size: 12, text: `Patient: ${name}` },
            {
                x: 50,
                y: 682,
                size: 12,
                text: `Age: ${30 + (rng.nextU32() % 60)}    Sex: ${rng.nextU32() % 2 ? "Female" : "Male"}`,
            },
            { x: 50, y: 650, size: 12, text: `Diagnoses: ${pick(DIAGNOSES)}; ${pick(DIAGNOSES)}.`, bold: true },
            {
                x: 50,
                y: 620,
                size: 11,
                text: "The patient was admitted, treated and discharged home in a stable condition.",
            },
            { x: 50, y: 604, size: 11, text: "Medications to continue are listed on page 2." },
        ],
        lines: [{ x1: 50, y1: 730, x2: 562, y2: 730 }],
    };
    const cols = [50, 200, 290, 390, 490, 562];
    const meds = [pick(MEDICATIONS), pick(MEDICATIONS), pick(MEDICATIONS)];
    const rows = [["Medication", "Dose", "Route", "Frequency", "Duration"], ...meds.map((m) => [...m])];
    const top = 700;
    const second: PdfPage = {
        width: 612,
        height: 792,
        texts: [
            ...header(2),
            ...rows.flatMap((row, r) =>
                row.map((text, c) => ({ x: cols[c]! + 5, y: top - r * 22 - 15, size: 10, text, bold: r === 0 })),
            ),
        ],
        lines: [
            ...rows.map((_, r) => ({ x1: 50, y1: top - r * 22, x2: 562, y2: top - r * 22 })),
            { x1: 50, y1: top - rows.length * 22, x2: 562, y2: top - rows.length * 22 },
            ...cols.map((x) => ({ x1: x, y1: top, x2: x, y2: top - rows.length * 22 })),
        ],
    };
    return writePdf([first, second]);
}

export function registerDemo(program: Command, io: CliIo, run: (argv: string[], io: CliIo) => Promise<number>): void {
    program
        .command("demo")
        .summary("run the whole pipeline on a generated model and generated prescriptions")
        .description(
            "Writes the tiny synthetic Qwen2.5-VL model pair and a few rendered prescriptions, then runs `extract` " +
                "on them with the reference pipeline's settings. A synthetic model has random weights: its text is " +
                "meaningless, but every stage (image decoding, vision encoder, batched decoding, sampling, output) runs.",
        )
        .option(
            "--dir <folder>",
            "where the model and images go",
            path.join(os.homedir(), ".cache", "llama-vlm", "demo"),
        )
        .option(
            "--images <n>",
            "how many prescriptions",
            (v) => {
                const n = Number(v);
                if (!Number.isInteger(n) || n < 1 || n > 100) throw new InvalidArgumentError("1..100");
                return n;
            },
            4,
        )
        .action(async (o: { dir: string; images: number }) => {
            const say = (s: string) => io.stderr.write(`${s}\n`);
            const modelDir = path.join(o.dir, "model");
            const scans = path.join(o.dir, "prescriptions");
            fs.mkdirSync(scans, { recursive: true });
            say("demo: writing the tiny synthetic Qwen2.5-VL pair (seeded; once)");
            const pair = await writeModelPair({ family: "qwen2.5-vl", size: "tiny", seed: 0, outDir: modelDir });
            say(`demo: rendering ${o.images} prescription(s) into ${scans}`);
            for (const f of fs.readdirSync(scans)) {
                if (f.endsWith(".png") || f.endsWith(".pdf")) fs.rmSync(path.join(scans, f));
            }
            for (let i = 0; i < o.images; i++) {
                const { png } = await renderPrescription(i);
                fs.writeFileSync(path.join(scans, `prescription-${String(i + 1).padStart(2, "0")}.png`), png);
            }
            say("demo: writing a two-page PDF discharge letter (its pages are rendered and read one by one)");
            fs.writeFileSync(path.join(scans, "discharge-letter.pdf"), dischargeLetterPdf(0));
            const out = path.join(o.dir, "results.jsonl");
            fs.rmSync(out, { force: true });
            say(
                "demo: llama-vlm extract with the reference settings (vicuna template, 4 in parallel, temperature 0.05, …)",
            );
            const code = await run(
                [
                    "extract",
                    scans,
                    "-m",
                    pair.model,
                    "--projector",
                    pair.projector!,
                    "--chat-template",
                    "vicuna",
                    "--batch-size",
                    "4",
                    "--n-gpu-layers",
                    "99",
                    "--n-ctx",
                    "4096",
                    "--min-keep",
                    "0",
                    "--min-p",
                    "0.05",
                    "--n-predict",
                    "-1",
                    "--n-probs",
                    "0",
                    "--repeat-last-n",
                    "256",
                    "--repeat-penalty",
                    "1.18",
                    "--stop",
                    "</s>",
                    "--stop",
                    "User:",
                    "--temperature",
                    "0.05",
                    "--tfs-z",
                    "1",
                    "--typical-p",
                    "1",
                    "--top-k",
                    "40",
                    "--top-p",
                    "0.95",
                    "--seed",
                    "42",
                    "--out",
                    out,
                    "--format",
                    "table",
                    "--json",
                ],
                io,
            );
            io.stdout.write(
                [
                    "",
                    `Results: ${out} (one JSON line per image and per PDF page: text, stop reason, timings; a page's line has page, pages and its rendered size).`,
                    "The model is synthetic (random weights), so its text is meaningless — the demo shows that every stage runs.",
                    'With llama.cpp\'s vicuna template the model sees USER:/ASSISTANT:, so the stop string "User:" never matches.',
                    "To read real prescriptions, use a real vision-language model, e.g. Qwen2.5-VL-3B (Q4_K_M and its F16 projector, downloaded once):",
                    `  llama-vlm extract ${scans} -m hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF \\`,
                    "      --preset clinical --parallel 4 --out results.jsonl",
                    "",
                ].join("\n"),
            );
            if (code !== 0) throw new CliExit(code);
        });
}
