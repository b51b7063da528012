import { createHash } from "node:crypto";
import fs from "node:fs";
import { gunzipSync } from "node:zlib";
import sharp from "sharp";
import { type DocumentPage, loadPage } from "./documents/pages.js";
import { isPdf } from "./documents/pdf.js";
import { LlamaVlmError } from "./errors.js";
import { BUDGET_KEYS, BUDGET_OPTIONS, type ImageBudget } from "./options/budget.js";
import { resolveOptions } from "./options/table.js";
import { checkKnownKeys, checkNumber, checkObject, invalid } from "./validate.js";

/** Raw pixels: 8-bit RGB (3 channels) or RGBA (4 channels, alpha flattened on white), row-major. */
export interface RawImage {
    data: Uint8Array;
    width: number;
    height: number;
    channels?: 3 | 4;
}

/**
 * An image: a file path, encoded bytes (PNG, JPEG, WebP, TIFF, GIF, AVIF, SVG, or a PDF: its first page), raw
 * pixels, or one page of a document (PDF, multi-page TIFF/GIF/WebP).
 */
export type ImageInput = string | Uint8Array | RawImage | DocumentPage;

export type { ImageBudget };

/** An image ready for the encoder. @internal */
export interface PreparedImage {
    data: Uint8Array;
    width: number;
    height: number;
    /** sha256 of the pixels: the encoder cache key. */
    id: string;
    /** The resolution a PDF page was rendered at. */
    dpi?: number;
}

// libvips' operation cache keeps decoded pixels for reuse; llama-vlm decodes each image once per request and
// keeps encoded images in its own cache, so the libvips cache would only grow the process (tens of MB).
// This is a process-wide sharp setting: an application that wants it back can call sharp.cache(true).
sharp.cache(false);

/** Validates an image budget (lib/options/budget.ts) and fills its defaults. */
export function resolveBudget(budget: ImageBudget = {}): Required<ImageBudget> {
    checkKnownKeys("imageBudget", checkObject("imageBudget", budget), BUDGET_KEYS);
    // "present": a key given as undefined is checked, not defaulted (as `{ ...defaults, ...budget }` always did).
    return resolveOptions(BUDGET_OPTIONS, budget, { given: "present" });
}

/**
 * Longest side over shortest side. Encoders that scale the longest side to a fixed size (SmolVLM: 512) round a
 * side past that ratio down to 0 pixels and fail; 200:1 is also the limit of Qwen2.5-VL's own preprocessor.
 */
const MAX_ASPECT_RATIO = 200;

/** SVG references that stay inside the document: a fragment (#id) or a data: URI. */
function isLocalReference(value: string): boolean {
    const v = value.replace(/\s+/g, "").toLowerCase();
    return v.startsWith("#") || v.startsWith("data:");
}

const XML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function codePoint(n: number): string {
    return String.fromCodePoint(Number.isInteger(n) && n >= 0 && n < 0x110000 ? n : 0xfffd);
}

/**
 * Refuses an SVG (or gzip-compressed SVG) that references anything outside itself: librsvg would read files
 * next to it or beyond, and an image given as input must not make the process fetch or read anything. Looks at
 * the text with XML character references and CSS escapes decoded, so they cannot hide a reference.
 */
function checkSvgReferences(bytes: Uint8Array, name: string): void {
    let data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (data[0] === 0x1f && data[1] === 0x8b) {
        try {
            data = gunzipSync(data, { maxOutputLength: 64 * 1024 * 1024 });
        } catch {
            return; // not gzip that unpacks within the limit: libvips cannot load it as an SVG either
        }
    }
    // SVG is XML: after a byte order mark and white space it starts with "<", which no binary format does.
    let start = data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf ? 3 : 0;
    while (start < data.length && (data[start] === 0x20 || (data[start]! >= 0x09 && data[start]! <= 0x0d))) start++;
    if (data[start] !== 0x3c || !/<svg/i.test(data.toString("latin1"))) return;
    const refuse = (what: string): never => {
        throw new LlamaVlmError(
            "IMAGE_DECODE_FAILED",
            `${name} is an SVG that references ${what}; SVGs may only reference their own elements and data: URIs`,
        );
    };
    const text = data
        .toString("utf8")
        .replace(/&#x([0-9a-f]+);?/gi, (_, hex: string) => codePoint(Number.parseInt(hex, 16)))
        .replace(/&#([0-9]+);?/g, (_, dec: string) => codePoint(Number(dec)))
        .replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => XML_ENTITIES[e]!)
        .replace(/\\([0-9a-f]{1,6})\s?/gi, (_, hex: string) => codePoint(Number.parseInt(hex, 16)))
        .replace(/\\(.)/g, "$1");
    if (/<!ENTITY/i.test(text)) refuse("entities it declares (<!ENTITY>)");
    if (/@import/i.test(text)) refuse("a style sheet (@import)");
    for (const m of text.matchAll(/\bhref\s*=\s*(["'])(.*?)\1/gis)) {
        if (!isLocalReference(m[2]!)) refuse(`"${m[2]!.slice(0, 200)}" (href)`);
    }
    for (const m of text.matchAll(/\burl\s*\(\s*(["']?)(.*?)\1\s*\)/gis)) {
        if (!isLocalReference(m[2]!)) refuse(`"${m[2]!.slice(0, 200)}" (url())`);
    }
}

function describe(input: ImageInput, index: number): string {
    if (typeof input === "string") return input;
    if (isDocumentPage(input)) {
        return `${typeof input.document === "string" ? input.document : `images[${index}]`} page ${input.page}`;
    }
    return `images[${index}]`;
}

function isDocumentPage(input: unknown): input is DocumentPage {
    return typeof input === "object" && input !== null && !(input instanceof Uint8Array) && "document" in input;
}

function encodedSource(bytes: Uint8Array, budget: Required<ImageBudget>, page = 0): ReturnType<typeof sharp> {
    return sharp(bytes, { limitInputPixels: budget.maxInputPixels, failOn: "error", animated: false, page });
}

/** Decodes, orients (EXIF), flattens alpha on white, converts to sRGB 8-bit RGB and applies the budget. @internal */
export async function prepareImage(
    input: ImageInput,
    index: number,
    budget: Required<ImageBudget>,
): Promise<PreparedImage> {
    const name = describe(input, index);
    let source: ReturnType<typeof sharp>;
    let dpi: number | undefined;
    let page: DocumentPage | undefined;
    if (typeof input === "string") {
        let stat: fs.Stats;
        try {
            stat = await fs.promises.stat(input);
        } catch {
            throw new LlamaVlmError("FILE_NOT_FOUND", `Image file not found: ${input}`);
        }
        if (!stat.isFile()) throw new LlamaVlmError("FILE_NOT_FOUND", `Image path is not a file: ${input}`);
        // Read here rather than by path: the bytes checked for SVG references are the bytes decoded, and an SVG
        // decoded from memory has no base directory to resolve relative file references against.
        const bytes = await fs.promises.readFile(input);
        if (bytes.byteLength === 0) throw new LlamaVlmError("IMAGE_DECODE_FAILED", `${name} is empty`);
        if (isPdf(bytes)) page = { document: bytes, page: 1 };
        else {
            checkSvgReferences(bytes, name);
            source = encodedSource(bytes, budget);
        }
    } else if (input instanceof Uint8Array) {
        if (input.byteLength === 0) throw new LlamaVlmError("IMAGE_DECODE_FAILED", `${name} is empty`);
        if (isPdf(input)) page = { document: input, page: 1 };
        else {
            checkSvgReferences(input, name);
            source = encodedSource(input, budget);
        }
    } else if (isDocumentPage(input)) {
        page = input;
    } else if (typeof input === "object" && input !== null && input.data instanceof Uint8Array) {
        const width = checkNumber(`${name}.width`, input.width, { integer: true, min: 1 });
        const height = checkNumber(`${name}.height`, input.height, { integer: true, min: 1 });
        const channels = input.channels ?? (input.data.byteLength === width * height * 4 ? 4 : 3);
        if (channels !== 3 && channels !== 4) throw invalid(`${name}.channels`, "3 or 4", channels);
        if (input.data.byteLength !== width * height * channels) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `${name}: raw data has ${input.data.byteLength} bytes, expected width × height × channels = ${width * height * channels}`,
            );
        }
        if (width * height > budget.maxInputPixels) {
            throw new LlamaVlmError(
                "OVER_BUDGET",
                `${name} has ${width * height} pixels, over maxInputPixels ${budget.maxInputPixels}`,
            );
        }
        source = sharp(input.data, { raw: { width, height, channels } });
    } else {
        throw invalid(
            name,
            "a file path, a Buffer/Uint8Array of encoded image bytes, { data, width, height } or { document, page }",
            input,
        );
    }
    if (page !== undefined) {
        const loaded = await loadPage(page, name, budget);
        if (loaded.kind === "pixels") {
            dpi = loaded.dpi;
            source = sharp(loaded.data, { raw: { width: loaded.width, height: loaded.height, channels: 4 } });
        } else {
            checkSvgReferences(loaded.bytes, name);
            source = encodedSource(loaded.bytes, budget, loaded.index);
        }
    }

    try {
        const meta = await source!.metadata();
        const width = meta.autoOrient?.width ?? meta.width ?? 0;
        const height = meta.autoOrient?.height ?? meta.height ?? 0;
        if (width < 1 || height < 1)
            throw new LlamaVlmError("IMAGE_DECODE_FAILED", `${name} has no pixels (${width}×${height})`);
        if (Math.max(width / height, height / width) > MAX_ASPECT_RATIO) {
            throw new LlamaVlmError(
                "IMAGE_DECODE_FAILED",
                `${name} is ${width}×${height}, more elongated than the ${MAX_ASPECT_RATIO}:1 the vision encoders take (crop or pad it)`,
            );
        }
        let pipeline = source!.rotate().flatten({ background: "#ffffff" }).toColourspace("srgb");
        if (width * height > budget.maxPixels) {
            if (budget.overBudget === "error") {
                throw new LlamaVlmError(
                    "OVER_BUDGET",
                    `${name} is ${width}×${height} = ${width * height} pixels, over maxPixels ${budget.maxPixels} (set overBudget: "downscale" to shrink it instead)`,
                );
            }
            const scale = Math.sqrt(budget.maxPixels / (width * height));
            pipeline = pipeline.resize({
                width: Math.max(1, Math.floor(width * scale)),
                height: Math.max(1, Math.floor(height * scale)),
                fit: "inside",
            });
        }
        const { data, info } = await pipeline
            .removeAlpha()
            .raw({ depth: "uchar" })
            .toBuffer({ resolveWithObject: true });
        if (info.channels !== 3)
            throw new LlamaVlmError("IMAGE_DECODE_FAILED", `${name} decoded to ${info.channels} channels`);
        const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        return {
            data: pixels,
            width: info.width,
            height: info.height,
            id: createHash("sha256").update(pixels).update(`${info.width}x${info.height}`).digest("hex"),
            ...(dpi !== undefined ? { dpi } : {}),
        };
    } catch (err) {
        if (err instanceof LlamaVlmError) throw err;
        const message = (err as Error).message;
        if (/pixel limit/i.test(message)) {
            throw new LlamaVlmError(
                "OVER_BUDGET",
                `${name} is larger than maxInputPixels ${budget.maxInputPixels}: ${message}`,
                {
                    cause: err,
                },
            );
        }
        throw new LlamaVlmError("IMAGE_DECODE_FAILED", `${name} could not be decoded as an image: ${message}`, {
            cause: err,
        });
    }
}
