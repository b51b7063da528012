/**
 * `llama-vlm extract`: one result per image, and per page of a document (PDF, multi-page TIFF/GIF/WebP), for a
 * folder of scanned documents. Results are appended to a JSONL file as each request finishes; a rerun with the
 * same --out skips what is done (by path, content hash and page). Ctrl-C cancels what is in flight without
 * writing partial lines.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { glob } from "tinyglobby";
import { type ClinicalRecord, mergeClinical } from "../clinical.js";
import type { Context } from "../context.js";
import {
    DEFAULT_PAGE_PIXELS,
    type DocumentInfo,
    DPI_RANGE,
    documentInfo,
    parsePageRanges,
    selectPages,
} from "../documents/pages.js";
import { isPdf } from "../documents/pdf.js";
import { LlamaVlmError } from "../errors.js";
import { type ExtractLine, type ExtractSettings, extractImage } from "../extraction.js";
import type { ImageInput } from "../images.js";
import { loadModel, type Model } from "../model.js";
import { BUDGET_OPTIONS } from "../options/budget.js";
import { CONTEXT_OPTIONS } from "../options/context.js";
import { LOAD_OPTIONS } from "../options/load.js";
import { setLogger } from "../system.js";
import { addOptionFlags, int, readOptionFlags } from "./flags.js";
import { CliExit, type CliIo, formatCount, ProgressBar } from "./io.js";
import { resolveForCli } from "./pull.js";
import { addPromptFlags, addSamplerFlags, readSettingsFlags } from "./settings.js";

export type { ExtractLine };

/** Exit codes of `extract` (also in --help). */
export const EXIT = { ok: 0, failure: 1, partial: 2, interrupted: 130 } as const;

const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".gif", ".avif", ".svg", ".pdf"]);
/** The image budget's default (lib/options/budget.ts), for --help. */
const DEFAULT_MAX_PIXELS = BUDGET_OPTIONS.maxPixels.default;
/** Image formats that can hold several pages (frames): such a file with more than one is a document. */
const MULTIPAGE_EXTENSIONS = new Set([".tif", ".tiff", ".gif", ".webp"]);

/** The parsed flags: those below, and the option tables' flags (read with readOptionFlags). */
interface ExtractOptions extends Record<string, unknown> {
    out?: string;
    format: "jsonl" | "table" | "csv";
    quiet?: boolean;
    json?: boolean;
    pages?: string;
    dpi?: number;
    pagesPerRequest: number;
    maxPixels?: number;
    mergePages?: boolean;
}

export function registerExtract(program: Command, io: CliIo): void {
    // The flags of API options come from the option tables (lib/options), placed here in --help by hand; the sampler
    // flags not placed come last, in table order.
    const cmd = program
        .command("extract")
        .summary("one result per image for files, folders or globs")
        .argument("<inputs...>", "image files, folders (searched recursively) or glob patterns");
    addOptionFlags(cmd, LOAD_OPTIONS, ["model", "projector"]);
    addPromptFlags(cmd);
    addOptionFlags(cmd, CONTEXT_OPTIONS, ["parallel"]);
    cmd.option("-o, --out <file>", "JSONL results, appended as images finish; a rerun skips what is done").addOption(
        new Option("--format <format>", "what to print on stdout").choices(["jsonl", "table", "csv"]).default("jsonl"),
    );
    cmd.option("--pages <list>", 'pages of each document: "all" (default), "2", "1-3", "1,3-5"')
        .option(
            "--pages-per-request <n>",
            "pages of a document in one request (several images in one prompt); 1 gives one line per page",
            int("--pages-per-request", 1),
            1,
        )
        .option(
            "--dpi <n>",
            `render PDF pages at this resolution (${DPI_RANGE.min}..${DPI_RANGE.max}); default: the one that fits --max-pixels`,
            (v) => {
                const n = Number(v);
                if (!Number.isFinite(n) || n < DPI_RANGE.min || n > DPI_RANGE.max) {
                    throw new InvalidArgumentError(`--dpi must be a number ${DPI_RANGE.min}..${DPI_RANGE.max}`);
                }
                return n;
            },
        )
        .option(
            "--max-pixels <n>",
            `image budget: largest image given to the encoder, in pixels; PDF pages are rendered to fit it (default ${DEFAULT_MAX_PIXELS} for images, ${DEFAULT_PAGE_PIXELS} for document pages)`,
            int("--max-pixels", 1),
        )
        .option("--merge-pages", "with --preset clinical: also one merged record per document (after its pages)");
    addOptionFlags(cmd, CONTEXT_OPTIONS, ["contextSize"]);
    addOptionFlags(cmd, LOAD_OPTIONS, ["gpuLayers"]);
    addOptionFlags(cmd, CONTEXT_OPTIONS, ["threads"]);
    addSamplerFlags(cmd, (c) =>
        c.option("-q, --quiet", "no progress output").option("--json", "progress as plain lines (no bar)"),
    );
    cmd.addHelpText(
        "after",
        `
Documents: a PDF, or a TIFF/GIF/WebP with several pages, gives one line per page ({file, page, pages, …}; with
--pages-per-request N, one per N pages). PDF pages are rendered at the resolution that fits --max-pixels
(default 1000000 for pages: dpi = 72 × √(maxPixels / (width × height in points)), reported in each line's
"images"), or at --dpi.
--merge-pages (with --preset clinical) adds one record per document: demographics from the first page that names
the patient, conditions and medications the union of the pages' (duplicates dropped).

Exit codes: 0 all images done, 1 nothing could run (bad model, bad options), 2 some images failed (see their
"error" lines), 130 interrupted (Ctrl-C; finished images are kept, a rerun continues).

Examples:
  llama-vlm extract scans/ -m qwen2.5-vl-3b-q4_0.gguf --projector mmproj.gguf --out results.jsonl
  llama-vlm extract scans/ -m hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF --out results.jsonl
  llama-vlm extract 'scans/**/*.png' -m model.gguf --mmproj mmproj.gguf --preset clinical --n-probs 5 --out clinical.jsonl
  llama-vlm extract a.jpg b.jpg -m model.gguf --projector mmproj.gguf --chat-template vicuna --temp 0.05 \\
      --repeat-penalty 1.18 --repeat-last-n 256 --stop "</s>" --stop "User:" --format table
  llama-vlm extract letters/*.pdf -m model.gguf --projector mmproj.gguf --pages 1-3 --max-pixels 1000000 --out pages.jsonl
  llama-vlm extract discharge.pdf -m model.gguf --projector mmproj.gguf --preset clinical --merge-pages --out record.jsonl
  llama-vlm extract fax.tiff -m model.gguf --projector mmproj.gguf --pages-per-request 4 --dpi 150`,
    );
    cmd.action(async (inputs: string[], raw: ExtractOptions) => {
        const code = await extract(inputs, raw, io);
        if (code !== 0) throw new CliExit(code);
    });
}

/** Files, folders (recursive) and globs → image files, sorted, without duplicates. */
export async function expandInputs(inputs: readonly string[]): Promise<string[]> {
    const files = new Set<string>();
    for (const input of inputs) {
        let stat: fs.Stats | undefined;
        try {
            stat = fs.statSync(input);
        } catch {
            stat = undefined;
        }
        if (stat?.isFile()) files.add(path.resolve(input));
        else if (stat?.isDirectory()) {
            for (const f of await glob("**/*", { cwd: input, absolute: true, onlyFiles: true })) {
                if (IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase())) files.add(path.resolve(f));
            }
        } else {
            const matches = await glob(input, { absolute: true, onlyFiles: true });
            if (matches.length === 0) throw new LlamaVlmError("FILE_NOT_FOUND", `No file matches ${input}`);
            for (const f of matches) files.add(path.resolve(f));
        }
    }
    return [...files].sort();
}

function sha256(file: string): string {
    return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** What identifies a line's work: path + content hash, and the request's pages for a document. */
export function lineKey(row: Pick<ExtractLine, "file" | "sha256" | "page" | "requestPages" | "mergedPages">): string {
    const base = `${row.file}\n${row.sha256}`;
    if (row.mergedPages) return `${base}\nmerged`;
    if (row.page === undefined) return base;
    return `${base}\n${(row.requestPages ?? [row.page]).join(",")}`;
}

/** The lines of an earlier run's JSONL file. Torn lines (a crash mid-write) are ignored. */
function readLines(outFile: string): ExtractLine[] {
    const rows: ExtractLine[] = [];
    if (!fs.existsSync(outFile)) return rows;
    for (const line of fs.readFileSync(outFile, "utf8").split("\n")) {
        if (!line.trim()) continue;
        try {
            const row = JSON.parse(line) as ExtractLine;
            if (row.file && row.sha256) rows.push(row);
        } catch {
            // A line cut by a crash: the image is simply done again.
        }
    }
    return rows;
}

/** Keys (lineKey) of the images and pages an earlier run already wrote. */
export function doneKeys(outFile: string): Set<string> {
    return new Set(readLines(outFile).map(lineKey));
}

/** One request: an image, or some pages of a document. */
interface WorkItem {
    file: string;
    sha256: string;
    /** Documents: the page count and this request's pages. */
    pages?: number;
    requestPages?: number[];
}

/**
 * A file's requests: one for an image; for a document (a PDF, or an image file with several pages), one per
 * `perRequest` selected pages. Throws a coded error for a document that cannot be read (encrypted, corrupt, …).
 */
async function planFile(file: string, hash: string, pages: string, perRequest: number): Promise<WorkItem[]> {
    const single = [{ file, sha256: hash }];
    let info: DocumentInfo;
    let bytes: Buffer;
    try {
        bytes = fs.readFileSync(file);
    } catch {
        return single; // the request reports it
    }
    if (isPdf(bytes)) info = await documentInfo(file);
    else if (MULTIPAGE_EXTENSIONS.has(path.extname(file).toLowerCase())) {
        try {
            info = await documentInfo(file);
        } catch {
            return single; // not decodable: the request reports it as for any image
        }
        if (info.pageCount <= 1) return single;
    } else return single;
    const selected = selectPages(pages, info.pageCount, "--pages");
    const items: WorkItem[] = [];
    for (let i = 0; i < selected.length; i += perRequest) {
        items.push({ file, sha256: hash, pages: info.pageCount, requestPages: selected.slice(i, i + perRequest) });
    }
    return items;
}

/** The line fields that say which pages a line is about. */
function pageFields(item: WorkItem): Pick<ExtractLine, "page" | "pages" | "requestPages"> {
    if (!item.requestPages) return {};
    return {
        page: item.requestPages[0]!,
        pages: item.pages!,
        ...(item.requestPages.length > 1 ? { requestPages: item.requestPages } : {}),
    };
}

async function extract(inputs: string[], o: ExtractOptions, io: CliIo): Promise<number> {
    // --model is required, and --parallel, --ctx-size and --gpu-layers have defaults: all four are always given.
    const { model: modelRef, projector: projectorRef, gpuLayers } = readOptionFlags(LOAD_OPTIONS, o);
    const { contextSize, parallel, threads } = readOptionFlags(CONTEXT_OPTIONS, o);
    const settings: ExtractSettings = readSettingsFlags(o);

    const pageSpec = o.pages ?? "all";
    if (pageSpec !== "all") parsePageRanges(pageSpec, "--pages"); // the syntax, before any work
    if (o.mergePages && settings.preset !== "clinical")
        throw new LlamaVlmError("INVALID_OPTION", "--merge-pages needs --preset clinical");
    const imageBudget = o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : undefined;
    const pageBudget = { maxPixels: o.maxPixels ?? DEFAULT_PAGE_PIXELS };

    const files = await expandInputs(inputs);
    const outFile = o.out ? path.resolve(o.out) : undefined;
    const done = outFile ? doneKeys(outFile) : new Set<string>();
    const work: WorkItem[] = [];
    const documents: WorkItem[][] = [];
    const unreadable: ExtractLine[] = [];
    let skipped = 0;
    for (const file of files) {
        let hash: string;
        try {
            hash = sha256(file);
        } catch {
            hash = "unreadable";
        }
        let items: WorkItem[];
        try {
            items = await planFile(file, hash, pageSpec, o.pagesPerRequest);
        } catch (err) {
            const e = err instanceof LlamaVlmError ? err : new LlamaVlmError("DOCUMENT_CORRUPT", String(err));
            if (done.has(`${file}\n${hash}`)) skipped++;
            else unreadable.push({ file, sha256: hash, error: { code: e.code, message: e.message } });
            continue;
        }
        if (items[0]?.requestPages) documents.push(items);
        for (const item of items) {
            if (done.has(lineKey({ ...item, ...pageFields(item) }))) skipped++;
            else work.push(item);
        }
    }

    const progressLines = !o.quiet;
    const bar =
        progressLines && !o.json && io.stderr.isTTY
            ? new ProgressBar(io.stderr, "images", { format: formatCount })
            : undefined;
    const say = (line: string) => {
        if (progressLines) io.stderr.write(`${line}\n`);
    };
    const requests = work.length + unreadable.length + skipped;
    say(
        `extract: ${files.length} file(s) (${documents.length} document(s)), ${requests} request(s): ` +
            `${skipped} already in ${outFile ?? "the output"}, ${work.length + unreadable.length} to do`,
    );
    if (work.length === 0 && unreadable.length === 0) {
        // Nothing to run: only documents whose pages an earlier run finished may still want their merged record.
        const merged = o.mergePages && outFile ? mergeDocuments(documents, readLines(outFile)) : [];
        if (outFile) for (const line of merged) fs.appendFileSync(outFile, `${JSON.stringify(line)}\n`);
        printSummary(io, o.format, outFile, merged);
        return EXIT.ok;
    }

    setLogger((level, line) => {
        if (level === "error") say(`llama.cpp: ${line}`);
    }, "error");
    let model: Model;
    let context: Context;
    try {
        // hf: and URL references are fetched here, with their own progress display.
        const { model: modelPath, projector } = await resolveForCli(io, modelRef!, projectorRef, {
            prefix: "extract",
            ...(o.quiet ? { quiet: true } : {}),
        });
        model = await loadModel({
            model: modelPath,
            ...(projector ? { projector } : {}),
            gpuLayers,
            ...(threads ? { projectorOptions: { threads } } : {}),
        });
        context = await model.createContext({ contextSize, parallel, ...(threads ? { threads } : {}) });
    } catch (err) {
        io.stderr.write(`llama-vlm: ${(err as Error).message}\n`);
        return EXIT.failure;
    }

    const controller = new AbortController();
    let interrupted = false;
    const onSignal = () => {
        if (interrupted) return;
        interrupted = true;
        say("extract: interrupted; cancelling what is in flight (finished images are kept)");
        controller.abort();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);

    const fd = outFile ? fs.openSync(outFile, "a") : undefined;
    const lines: ExtractLine[] = [];
    const started = Date.now();
    let finished = 0;
    let failed = 0;
    let tokens = 0;
    const emit = (line: ExtractLine) => {
        lines.push(line);
        const text = `${JSON.stringify(line)}\n`;
        // One write per line: an interrupted run never leaves half a line.
        if (fd !== undefined) fs.writeSync(fd, text);
        else if (o.format === "jsonl") io.stdout.write(text);
    };
    for (const line of unreadable) {
        failed++;
        emit(line);
    }
    const progress = () => {
        finished++;
        const elapsed = (Date.now() - started) / 1000;
        const eta = finished > 0 ? ((work.length - finished) * elapsed) / finished : 0;
        const tps = tokens / Math.max(elapsed, 1e-3);
        if (bar) bar.update(finished, work.length, `${tps.toFixed(1)} tokens/s, ETA ${eta.toFixed(0)} s`);
        else say(`extract: ${finished}/${work.length} images, ${tps.toFixed(1)} tokens/s, ETA ${eta.toFixed(0)} s`);
    };

    const runOne = async (item: WorkItem) => {
        const images: ImageInput[] = item.requestPages
            ? item.requestPages.map((page) => ({
                  document: item.file,
                  page,
                  ...(o.dpi !== undefined ? { dpi: o.dpi } : {}),
              }))
            : [item.file];
        const budget = item.requestPages ? pageBudget : imageBudget;
        try {
            const r = await extractImage(context, model, images, settings, {
                signal: controller.signal,
                ...(budget ? { imageBudget: budget } : {}),
            });
            if (r === undefined) return; // cancelled by Ctrl-C: not done, not written
            tokens += r.tokens;
            if (r.line.error) failed++;
            emit({ file: item.file, sha256: item.sha256, ...pageFields(item), ...r.line });
        } catch (err) {
            const e = err instanceof LlamaVlmError ? err : new LlamaVlmError("NATIVE_ERROR", String(err));
            if (e.code === "ABORTED" && interrupted) return;
            failed++;
            emit({
                file: item.file,
                sha256: item.sha256,
                ...pageFields(item),
                error: { code: e.code, message: e.message },
            });
        } finally {
            if (!interrupted) progress();
        }
    };

    // Feed the context's slots from a bounded pool: `parallel` decoding and as many being prepared.
    let next = 0;
    const worker = async () => {
        while (!interrupted && next < work.length) await runOne(work[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(work.length, parallel! * 2) }, worker));
    if (o.mergePages && !interrupted) {
        for (const line of mergeDocuments(documents, outFile ? readLines(outFile) : lines)) emit(line);
    }

    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    bar?.clear();
    if (fd !== undefined) fs.closeSync(fd);
    await model.dispose();
    printSummary(io, o.format, outFile, lines);
    say(
        `extract: ${lines.length - failed} done, ${failed} failed, ${skipped} skipped` +
            (interrupted ? `, ${work.length - lines.length} left for a rerun` : "") +
            ` in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    if (interrupted) return EXIT.interrupted;
    return failed > 0 ? EXIT.partial : EXIT.ok;
}

/**
 * The merged record of each document whose requests all have a line (this run's or an earlier one's) and that has
 * no merged line yet (mergeClinical, lib/clinical.ts, says how records merge).
 */
function mergeDocuments(documents: readonly WorkItem[][], rows: readonly ExtractLine[]): ExtractLine[] {
    const byKey = new Map(rows.map((r) => [lineKey(r), r]));
    const merged: ExtractLine[] = [];
    for (const items of documents) {
        const first = items[0]!;
        if (byKey.has(lineKey({ file: first.file, sha256: first.sha256, mergedPages: [] }))) continue;
        const pageRows = items.map((item) => byKey.get(lineKey({ ...item, ...pageFields(item) })));
        if (pageRows.some((r) => r === undefined)) continue; // not finished: a later run merges it
        const good = pageRows.filter((r) => r!.json !== undefined && !r!.error) as ExtractLine[];
        const pagesOf = (r: ExtractLine) => r.requestPages ?? [r.page!];
        const failedPages = pageRows.filter((r) => !good.includes(r!)).flatMap((r) => pagesOf(r!));
        merged.push({
            file: first.file,
            sha256: first.sha256,
            pages: first.pages!,
            mergedPages: good.flatMap(pagesOf),
            ...(failedPages.length > 0 ? { failedPages } : {}),
            json: mergeClinical(good.map((r) => r.json as ClinicalRecord)),
        });
    }
    return merged;
}

function printSummary(io: CliIo, format: string, outFile: string | undefined, lines: ExtractLine[]): void {
    if (format === "jsonl") return; // already streamed (or in --out)
    const rows = [...lines]
        .sort((a, b) => a.file.localeCompare(b.file))
        .map((l) => ({
            file:
                path.basename(l.file) +
                (l.mergedPages
                    ? " (merged)"
                    : l.page !== undefined
                      ? ` p${(l.requestPages ?? [l.page]).join(",")}`
                      : ""),
            result: l.error
                ? `ERROR ${l.error.code}: ${l.error.message}`
                : (l.text ?? JSON.stringify(l.json ?? "")).replace(/\s+/g, " ").slice(0, 80),
            stop: l.stopReason ?? "",
            tokens: String(l.timings?.generatedTokens ?? ""),
        }));
    if (format === "csv") {
        const esc = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
        io.stdout.write("file,stop_reason,tokens,result\n");
        for (const r of rows) io.stdout.write(`${[r.file, r.stop, r.tokens, r.result].map(esc).join(",")}\n`);
        return;
    }
    const w = Math.max(4, ...rows.map((r) => r.file.length));
    io.stdout.write(`${"file".padEnd(w)}  ${"stop".padEnd(7)}  ${"tok".padStart(4)}  result\n`);
    for (const r of rows)
        io.stdout.write(`${r.file.padEnd(w)}  ${r.stop.padEnd(7)}  ${r.tokens.padStart(4)}  ${r.result}\n`);
    if (outFile) io.stdout.write(`(all results in ${outFile})\n`);
}
