/**
 * Documents: PDFs and multi-page TIFF/GIF/WebP files, and their pages as image inputs. A page becomes pixels here
 * (a PDF page rendered at a resolution chosen for the image budget, an image page decoded by sharp) before it
 * reaches the request layer, where it is one more image.
 */
import fs from "node:fs";
import sharp from "sharp";
import { LlamaVlmError } from "../errors.js";
import { checkNumber, invalid } from "../validate.js";
import { isPdf, MAX_DOCUMENT_PAGES, openPdf } from "./pdf.js";

/** One page of a document, as an image input. */
export interface DocumentPage {
    /** A PDF, or a multi-page TIFF/GIF/WebP: a file path or its bytes. */
    document: string | Uint8Array;
    /** 1-based page number. */
    page: number;
    /**
     * PDF only: render at this resolution (dots per inch) instead of the one that fits the request's
     * `imageBudget.maxPixels`. The image budget then applies as to any image.
     */
    dpi?: number;
}

/** Which pages: `"all"` (default), page numbers (1-based), or a string of numbers and ranges such as `"1-3,5"`. */
export type PageSelection = "all" | readonly number[] | string;

/** What a document is and how many pages it has. */
export interface DocumentInfo {
    kind: "pdf" | "image";
    pageCount: number;
}

/** The size a page is rendered at, and the resolution that gives it (PDF pages; `dpi` is absent for image pages). */
export interface PageSize {
    width: number;
    height: number;
    dpi?: number;
}

/** Lowest and highest `dpi` accepted. */
export const DPI_RANGE = { min: 1, max: 2400 } as const;

/**
 * The page budget of `extract` and of queue jobs for document pages: a Letter page at 1 MP is 879 × 1137 (≈ 1,300
 * Qwen2.5-VL image tokens, 103 dpi), which fits the default 4096-token context with room for the answer; the images'
 * default 4 MP would not.
 */
export const DEFAULT_PAGE_PIXELS = 1_000_000;

/**
 * The render size of a page of `widthPt` × `heightPt` points for an image budget of `maxPixels`: the scale
 * `s = √(maxPixels / (widthPt × heightPt))` pixels per point, `width = ⌊widthPt × s⌋`, `height = ⌊heightPt × s⌋`
 * (at least 1), `dpi = 72 × s`. So width × height ≤ maxPixels and the page keeps its aspect ratio to within a pixel.
 * With `dpi` given, `s = dpi / 72` and width and height are rounded instead.
 */
export function pageRenderSize(widthPt: number, heightPt: number, maxPixels: number, dpi?: number): Required<PageSize> {
    if (dpi !== undefined) {
        const s = dpi / 72;
        return { width: Math.max(1, Math.round(widthPt * s)), height: Math.max(1, Math.round(heightPt * s)), dpi };
    }
    const s = Math.sqrt(maxPixels / (widthPt * heightPt));
    return { width: Math.max(1, Math.floor(widthPt * s)), height: Math.max(1, Math.floor(heightPt * s)), dpi: 72 * s };
}

/**
 * The ranges of a page selection string (`"2"`, `"1-3"`, `"1,3-4"`), checked for syntax only: page numbers are
 * integers >= 1 and ranges go up. Throws INVALID_OPTION naming `name`.
 */
export function parsePageRanges(selection: string, name = "pages"): Array<[number, number]> {
    const ranges: Array<[number, number]> = [];
    for (const part of selection.split(",").map((s) => s.trim())) {
        const m = /^(\d{1,9})(?:\s*-\s*(\d{1,9}))?$/.exec(part);
        if (!m) throw invalid(name, '"all", page numbers or ranges like "1-3,5"', selection);
        const a = Number(m[1]);
        const b = m[2] === undefined ? a : Number(m[2]);
        if (a < 1) throw invalid(name, "page numbers >= 1", selection);
        if (b < a) throw invalid(name, "ranges that go up (first-last)", selection);
        ranges.push([a, b]);
    }
    return ranges;
}

/**
 * Page numbers (1-based, in the order given, without duplicates) from a selection, checked against the page
 * count. `"2"`, `"1-3"`, `"1,3-4"`, `"all"`, `[1, 3]`.
 */
export function selectPages(selection: PageSelection, pageCount: number, name = "pages"): number[] {
    const tooFar = (n: number) =>
        new LlamaVlmError(
            "INVALID_OPTION",
            `Page ${n} was asked for in "${name}" but the document has ${pageCount} page${pageCount === 1 ? "" : "s"}`,
        );
    const out: number[] = [];
    const add = (n: number) => {
        if (!out.includes(n)) out.push(n);
    };
    if (selection === "all") {
        for (let i = 1; i <= pageCount; i++) out.push(i);
        return out;
    }
    if (Array.isArray(selection)) {
        if (selection.length === 0) throw invalid(name, "at least one page", selection);
        for (const n of selection) {
            if (!Number.isInteger(n) || n < 1) throw invalid(name, "page numbers >= 1", n);
            if (n > pageCount) throw tooFar(n);
            add(n);
        }
        return out;
    }
    if (typeof selection !== "string") {
        throw invalid(name, '"all", an array of page numbers or a string like "1-3"', selection);
    }
    for (const [a, b] of parsePageRanges(selection, name)) {
        if (b > pageCount) throw tooFar(b);
        for (let n = a; n <= b; n++) add(n);
    }
    return out;
}

function describe(input: string | Uint8Array): string {
    return typeof input === "string" ? input : "the document";
}

/** The document's bytes (a path is read; FILE_NOT_FOUND when it is not a file). @internal */
export async function readDocument(input: string | Uint8Array): Promise<Uint8Array> {
    if (input instanceof Uint8Array) return input;
    if (typeof input !== "string") throw invalid("document", "a file path or a Buffer/Uint8Array", input);
    let stat: fs.Stats;
    try {
        stat = await fs.promises.stat(input);
    } catch {
        throw new LlamaVlmError("FILE_NOT_FOUND", `Document not found: ${input}`);
    }
    if (!stat.isFile()) throw new LlamaVlmError("FILE_NOT_FOUND", `Document path is not a file: ${input}`);
    return fs.promises.readFile(input);
}

async function imagePageCount(bytes: Uint8Array, name: string): Promise<number> {
    let pages: number | undefined;
    try {
        pages = (await sharp(bytes, { failOn: "error" }).metadata()).pages;
    } catch (err) {
        throw new LlamaVlmError("IMAGE_DECODE_FAILED", `${name} could not be decoded: ${(err as Error).message}`, {
            cause: err,
        });
    }
    const count = pages ?? 1;
    if (count > MAX_DOCUMENT_PAGES) {
        throw new LlamaVlmError(
            "TOO_MANY_PAGES",
            `${name} has ${count} pages; at most ${MAX_DOCUMENT_PAGES} are read (split the file)`,
        );
    }
    return count;
}

/** Whether the input is a PDF or an image, and its page count (an image without pages has 1). */
export async function documentInfo(input: string | Uint8Array): Promise<DocumentInfo> {
    const name = describe(input);
    const bytes = await readDocument(input);
    if (bytes.byteLength === 0) throw new LlamaVlmError("DOCUMENT_CORRUPT", `${name} is empty`);
    if (isPdf(bytes)) {
        const pdf = await openPdf(bytes, name);
        await pdf.close();
        return { kind: "pdf", pageCount: pdf.pageCount };
    }
    return { kind: "image", pageCount: await imagePageCount(bytes, name) };
}

/**
 * A document's pages as image inputs, one per selected page, for requests (one page per request, or several in
 * one prompt) and for job queues that submit one job per page. Reads the document to count its pages; coded
 * errors for encrypted, corrupt and oversized documents.
 */
export async function documentPages(
    input: string | Uint8Array,
    options: { pages?: PageSelection; dpi?: number } = {},
): Promise<DocumentPage[]> {
    if (options.dpi !== undefined) checkNumber("dpi", options.dpi, DPI_RANGE);
    const { pageCount } = await documentInfo(input);
    return selectPages(options.pages ?? "all", pageCount).map((page) => ({
        document: input,
        page,
        ...(options.dpi !== undefined ? { dpi: options.dpi } : {}),
    }));
}

/** A page as pixels: RGBA for a rendered PDF page, or the image page's own encoded bytes with its page index. @internal */
export type PageSource =
    | { kind: "pixels"; data: Uint8Array; width: number; height: number; dpi: number }
    | { kind: "image"; bytes: Uint8Array; index: number };

/**
 * Resolves a page to what sharp decodes: a PDF page is rendered (at `dpi`, or to fit `maxPixels`); an image page
 * stays encoded (sharp decodes that page). Pages past `maxInputPixels` at the chosen resolution are OVER_BUDGET.
 * @internal
 */
export async function loadPage(
    input: DocumentPage,
    name: string,
    budget: { maxPixels: number; maxInputPixels: number },
): Promise<PageSource> {
    const page = checkNumber(`${name}.page`, input.page, { integer: true, min: 1 });
    if (input.dpi !== undefined) checkNumber(`${name}.dpi`, input.dpi, DPI_RANGE);
    const bytes = await readDocument(input.document);
    if (bytes.byteLength === 0) throw new LlamaVlmError("DOCUMENT_CORRUPT", `${name} is empty`);
    if (!isPdf(bytes)) {
        const count = await imagePageCount(bytes, name);
        if (page > count) {
            throw new LlamaVlmError("INVALID_OPTION", `${name}: page ${page} asked for, the file has ${count}`);
        }
        return { kind: "image", bytes, index: page - 1 };
    }
    const pdf = await openPdf(bytes, name);
    try {
        if (page > pdf.pageCount) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `${name}: page ${page} asked for, the document has ${pdf.pageCount}`,
            );
        }
        const pt = await pdf.pageSize(page - 1);
        const size = pageRenderSize(pt.width, pt.height, budget.maxPixels, input.dpi);
        if (size.width * size.height > budget.maxInputPixels) {
            throw new LlamaVlmError(
                "OVER_BUDGET",
                `${name} page ${page} at ${size.dpi} dpi would be ${size.width}×${size.height} pixels, over maxInputPixels ${budget.maxInputPixels} (use a lower dpi)`,
            );
        }
        const data = await pdf.render(page - 1, size.width, size.height);
        return { kind: "pixels", data, ...size };
    } finally {
        await pdf.close();
    }
}
