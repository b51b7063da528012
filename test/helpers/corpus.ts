/**
 * The bad-input corpus of docs/reliability.md: broken model files, hostile or odd images, and option values,
 * each generated deterministically from the tiny test models and seeded test images. Files go into a folder the
 * caller gives (a temporary one in the tests) and nothing is committed: the edited models are whole copies of the
 * tiny ones (about 90 MB in all), the images a few KB, and the decompression bomb a valid 30000×30000 1-bit PNG
 * of about 110 KB.
 */

import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { deflateSync, gzipSync } from "node:zlib";
import sharp from "sharp";
import { testImageRaw } from "./images.js";

// ---------------------------------------------------------------------------------------------------------------
// GGUF byte surgery

interface TensorEntry {
    name: string;
    /** File offset of ne[0]; ne[d] is 8 bytes further per dimension. */
    dimsAt: number;
    dims: bigint[];
}

interface GgufMap {
    /** Offset of the first metadata key, and of the first tensor info (the end of the metadata). */
    metadataAt: number;
    tensorsAt: number;
    /** Offset and byte length of each string value, by key. */
    strings: Map<string, { at: number; length: number }>;
    /** Offset and GGUF type of each scalar value, by key. */
    scalars: Map<string, { at: number; type: number }>;
    tensors: TensorEntry[];
    /** Offset of the data section. */
    dataAt: number;
}

const SCALAR_SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const STRING = 8;
const ARRAY = 9;

/** Where things are in a GGUF v3 file (a minimal walker: the tiny models are well formed). */
function mapGguf(bytes: Buffer): GgufMap {
    let at = 8;
    const u32 = () => {
        const v = bytes.readUInt32LE(at);
        at += 4;
        return v;
    };
    const u64 = () => {
        const v = bytes.readBigUInt64LE(at);
        at += 8;
        return v;
    };
    const string = () => {
        const length = Number(u64());
        const value = bytes.toString("utf8", at, at + length);
        at += length;
        return value;
    };
    const skipValue = (type: number): void => {
        if (type === STRING) {
            const length = Number(u64());
            at += length;
        } else if (type === ARRAY) {
            const elementType = u32();
            const n = Number(u64());
            for (let i = 0; i < n; i++) skipValue(elementType);
        } else at += SCALAR_SIZES[type]!;
    };
    const tensorCount = Number(u64());
    const kvCount = Number(u64());
    const metadataAt = at;
    const strings = new Map<string, { at: number; length: number }>();
    const scalars = new Map<string, { at: number; type: number }>();
    let alignment = 32;
    for (let i = 0; i < kvCount; i++) {
        const key = string();
        const type = u32();
        if (type === STRING) strings.set(key, { at: at + 8, length: Number(bytes.readBigUInt64LE(at)) });
        else if (type !== ARRAY) scalars.set(key, { at, type });
        if (key === "general.alignment") alignment = bytes.readUInt32LE(at);
        skipValue(type);
    }
    const tensorsAt = at;
    const tensors: TensorEntry[] = [];
    for (let i = 0; i < tensorCount; i++) {
        const name = string();
        const nDims = u32();
        const dimsAt = at;
        const dims = Array.from({ length: nDims }, () => u64());
        at += 4 + 8; // type, offset
        tensors.push({ name, dimsAt, dims });
    }
    return { metadataAt, tensorsAt, strings, scalars, tensors, dataAt: Math.ceil(at / alignment) * alignment };
}

/** The model files of the corpus, by case. */
export interface ModelCorpus {
    zeroBytes: string;
    /** "GGML" instead of "GGUF". */
    wrongMagic: string;
    /** Cut inside the header's counts. */
    truncatedHeader: string;
    /** Cut halfway through the metadata. */
    truncatedMetadata: string;
    /** Cut halfway through the tensor directory. */
    truncatedTensorInfo: string;
    /** Cut halfway through the tensor data. */
    truncatedTensorData: string;
    /** token_embd.weight with a dimension of 2^40: it claims 75 TB of data. */
    absurdDimensions: string;
    /** token_embd.weight with its two dimensions swapped: same byte size, so only the shape is wrong. */
    swappedDimensions: string;
    /** general.architecture = "zzzzzzz" (as long as "qwen2vl"). */
    unknownArchitecture: string;
    /** <arch>.embedding_length stored as a float32 instead of a uint32 (same size). */
    wrongMetadataType: string;
    /** <arch>.block_count = 0. */
    zeroLayers: string;
    /** A directory named like a model. */
    directory: string;
    truncatedProjector: string;
    /** The projector with the first non-square weight's dimensions swapped (same byte size). */
    swappedProjectorDimensions: string;
    /** clip.vision.embedding_length halved: the tensors no longer match it. */
    projectorWrongWidth: string;
    /** clip.vision.attention.head_count = 3, which does not divide the width. */
    projectorBadHeadCount: string;
    /** clip.vision.patch_size halved: the patch embedding's kernel no longer matches it. */
    projectorBadPatchSize: string;
    /** clip.vision.image_size = 0. */
    projectorZeroImageSize: string;
    /** clip.vision.spatial_merge_size = 3 (the Qwen2.5-VL merger joins 2 × 2 patches). */
    projectorBadMerge: string;
    /** The SmolVLM projector with clip.vision.projector.scale_factor = 3 (its projection expects 4). */
    smolProjectorBadScale: string;
    /** The SmolVLM projector with clip.projector_type = "zzzzzzzz" (as long as "idefics3"). */
    smolProjectorUnknownType: string;
}

function setU32(copy: Buffer, map: GgufMap, key: string, value: number): void {
    const s = map.scalars.get(key);
    if (s === undefined || s.type !== 4) throw new Error(`${key} is not a uint32`);
    copy.writeUInt32LE(value, s.at);
}

/** Writes the broken model files, derived from the tiny qwen2.5-vl and smolvlm pairs, into `dir`. */
export async function writeModelCorpus(
    dir: string,
    pair: { model: string; projector: string },
    smol: { model: string; projector: string },
): Promise<ModelCorpus> {
    await mkdir(dir, { recursive: true });
    const model = readFileSync(pair.model);
    const projector = readFileSync(pair.projector);
    const smolProjector = readFileSync(smol.projector);
    const map = mapGguf(model);
    const projectorMap = mapGguf(projector);
    const smolMap = mapGguf(smolProjector);
    const file = async (name: string, bytes: Uint8Array) => {
        const target = path.join(dir, name);
        await writeFile(target, bytes);
        return target;
    };
    const edited = (source: Buffer, edit: (copy: Buffer) => void) => {
        const copy = Buffer.from(source);
        edit(copy);
        return copy;
    };
    const stringAt = (source: Buffer, where: GgufMap, key: string) => {
        const s = where.strings.get(key);
        if (s === undefined) throw new Error(`${key} is not a string`);
        return { ...s, value: source.toString("utf8", s.at, s.at + s.length) };
    };
    const swapDims = (copy: Buffer, tensor: TensorEntry) => {
        copy.writeBigUInt64LE(tensor.dims[1]!, tensor.dimsAt);
        copy.writeBigUInt64LE(tensor.dims[0]!, tensor.dimsAt + 8);
    };
    const architecture = stringAt(model, map, "general.architecture");
    const embd = map.scalars.get(`${architecture.value}.embedding_length`)!;
    const directory = path.join(dir, "a-directory.gguf");
    await mkdir(directory, { recursive: true });
    const tokenEmbd = map.tensors.find((t) => t.name === "token_embd.weight")!;
    const projectorMatrix = projectorMap.tensors.find((t) => t.dims.length === 2 && t.dims[0] !== t.dims[1])!;
    const smolType = stringAt(smolProjector, smolMap, "clip.projector_type");
    const vision = (key: string) => projector.readUInt32LE(projectorMap.scalars.get(`clip.vision.${key}`)!.at);
    return {
        zeroBytes: await file("zero-bytes.gguf", new Uint8Array(0)),
        wrongMagic: await file(
            "wrong-magic.gguf",
            edited(model.subarray(0, 4096), (c) => c.write("GGML", 0, "latin1")),
        ),
        truncatedHeader: await file("truncated-header.gguf", model.subarray(0, 20)),
        truncatedMetadata: await file(
            "truncated-metadata.gguf",
            model.subarray(0, Math.floor((map.metadataAt + map.tensorsAt) / 2)),
        ),
        truncatedTensorInfo: await file(
            "truncated-tensor-info.gguf",
            model.subarray(0, Math.floor((map.tensorsAt + map.dataAt) / 2)),
        ),
        truncatedTensorData: await file(
            "truncated-tensor-data.gguf",
            model.subarray(0, map.dataAt + Math.floor((model.length - map.dataAt) / 2)),
        ),
        absurdDimensions: await file(
            "absurd-dimensions.gguf",
            edited(model, (c) => c.writeBigUInt64LE(2n ** 40n, tokenEmbd.dimsAt + 8)),
        ),
        swappedDimensions: await file(
            "swapped-dimensions.gguf",
            edited(model, (c) => swapDims(c, tokenEmbd)),
        ),
        unknownArchitecture: await file(
            "unknown-architecture.gguf",
            edited(model, (c) => c.write("z".repeat(architecture.length), architecture.at, "utf8")),
        ),
        wrongMetadataType: await file(
            "wrong-metadata-type.gguf",
            // The value type sits just before the value: uint32 is type 4, float32 type 6.
            edited(model, (c) => c.writeUInt32LE(6, embd.at - 4)),
        ),
        zeroLayers: await file(
            "zero-layers.gguf",
            edited(model, (c) => setU32(c, map, `${architecture.value}.block_count`, 0)),
        ),
        directory,
        truncatedProjector: await file(
            "truncated-projector.gguf",
            projector.subarray(0, projectorMap.dataAt + Math.floor((projector.length - projectorMap.dataAt) / 3)),
        ),
        swappedProjectorDimensions: await file(
            "swapped-projector-dimensions.gguf",
            edited(projector, (c) => swapDims(c, projectorMatrix)),
        ),
        projectorWrongWidth: await file(
            "projector-wrong-width.gguf",
            edited(projector, (c) =>
                setU32(c, projectorMap, "clip.vision.embedding_length", vision("embedding_length") / 2),
            ),
        ),
        projectorBadHeadCount: await file(
            "projector-bad-head-count.gguf",
            edited(projector, (c) => setU32(c, projectorMap, "clip.vision.attention.head_count", 3)),
        ),
        projectorBadPatchSize: await file(
            "projector-bad-patch-size.gguf",
            edited(projector, (c) => setU32(c, projectorMap, "clip.vision.patch_size", vision("patch_size") / 2)),
        ),
        projectorZeroImageSize: await file(
            "projector-zero-image-size.gguf",
            edited(projector, (c) => setU32(c, projectorMap, "clip.vision.image_size", 0)),
        ),
        projectorBadMerge: await file(
            "projector-bad-merge.gguf",
            edited(projector, (c) => setU32(c, projectorMap, "clip.vision.spatial_merge_size", 3)),
        ),
        smolProjectorBadScale: await file(
            "smol-projector-bad-scale.gguf",
            edited(smolProjector, (c) => setU32(c, smolMap, "clip.vision.projector.scale_factor", 3)),
        ),
        smolProjectorUnknownType: await file(
            "smol-projector-unknown-type.gguf",
            edited(smolProjector, (c) => c.write("z".repeat(smolType.length), smolType.at, "utf8")),
        ),
    };
}

// ---------------------------------------------------------------------------------------------------------------
// Images

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
    let c = 0xffffffff;
    for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, "latin1");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
}

/** A PNG built by hand: any IHDR, even one sharp would not write (0×0), and idat holding the filtered rows. */
function handPng(width: number, height: number, bitDepth: number, colourType: number, idat: Uint8Array): Buffer {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width, 0);
    ihdr.writeUInt32BE(height, 4);
    ihdr[8] = bitDepth;
    ihdr[9] = colourType;
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        pngChunk("IHDR", ihdr),
        pngChunk("IDAT", idat),
        pngChunk("IEND", new Uint8Array(0)),
    ]);
}

/**
 * A decompression bomb: a valid 1-bit grayscale PNG of side × side pixels, all black. The rows compress about
 * 1000:1, so 30000×30000 (900 megapixels, 2.7 GB as RGB) is a file of about 110 KB.
 */
export function bombPng(side: number): Buffer {
    const row = 1 + Math.ceil(side / 8); // filter byte + packed bits
    return handPng(side, side, 1, 0, deflateSync(Buffer.alloc(row * side), { level: 9 }));
}

/** The image files of the corpus, by case. */
export interface ImageCorpus {
    /** The well-formed 64×48 gradient the variants below derive from (PNG). */
    base: string;
    truncatedPng: string;
    truncatedJpeg: string;
    randomBytes: string;
    textAsPng: string;
    pngNamedJpg: string;
    jpegNamedPng: string;
    zeroByZero: string;
    onePixel: string;
    /** 1×200 and 200×1: the most elongated images accepted. */
    oneByTwoHundred: string;
    twoHundredByOne: string;
    oneByTwentyThousand: string;
    twentyThousandByOne: string;
    bomb: string;
    /** `base` at 16 bits per channel (every value v × 257): it decodes to exactly base's pixels. */
    sixteenBit: string;
    cmykJpeg: string;
    /** A 4-colour palette PNG, and the same pixels as RGB. */
    palette: string;
    paletteAsRgb: string;
    /** RGBA: the left half fully transparent over random colours. */
    alpha: string;
    /** The same image with the transparent half painted white: what flattening should give. */
    alphaOnWhite: string;
    /** Two frames of different colours. */
    animatedGif: string;
    /** A 64×48 JPEG with EXIF orientation 6 (rotate 90° clockwise to display: 48×64). */
    exifRotated: string;
    /** An SVG with nothing outside itself: a rectangle, a gradient by #id and a data: URI image. */
    svgSelfContained: string;
}

const BASE = { width: 64, height: 48 };

/** Writes the image files into `dir`. */
export async function writeImageCorpus(dir: string): Promise<ImageCorpus> {
    await mkdir(dir, { recursive: true });
    const file = async (name: string, bytes: Uint8Array | Promise<Uint8Array>) => {
        const target = path.join(dir, name);
        await writeFile(target, await bytes);
        return target;
    };
    const { data, width, height } = testImageRaw("gradient", { ...BASE, seed: 3 });
    const raw = () => sharp(data, { raw: { width, height, channels: 3 } });
    const png = await raw().png().toBuffer();
    const jpeg = await raw().jpeg({ quality: 90 }).toBuffer();

    const wide = (w: number, h: number) =>
        sharp({ create: { width: w, height: h, channels: 3, background: { r: 200, g: 60, b: 30 } } })
            .png()
            .toBuffer();

    const sixteen = Uint16Array.from(data, (v) => v * 257);

    const alphaRgba = Buffer.alloc(width * height * 4);
    const alphaWhite = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
            const p = y * width + x;
            const transparent = x < width / 2;
            for (let c = 0; c < 3; c++) {
                alphaRgba[p * 4 + c] = transparent ? (p * 37 + c * 91) % 256 : data[p * 3 + c]!;
                alphaWhite[p * 3 + c] = transparent ? 255 : data[p * 3 + c]!;
            }
            alphaRgba[p * 4 + 3] = transparent ? 0 : 255;
        }
    }

    const frames = Buffer.alloc(width * height * 3 * 2);
    frames.fill(0x20, 0, width * height * 3);
    frames.fill(0xe0, width * height * 3);

    const palette = Buffer.alloc(width * height * 3);
    for (let p = 0; p < width * height; p++) {
        const colour = [
            [250, 250, 250],
            [20, 20, 120],
            [200, 30, 30],
            [30, 160, 60],
        ][(Math.floor(p / width / 12) + Math.floor((p % width) / 16)) % 4]!;
        palette.set(colour, p * 3);
    }

    const svgSelfContained =
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="48">' +
        '<defs><linearGradient id="g"><stop offset="0" stop-color="#c33"/><stop offset="1" stop-color="#33c"/></linearGradient></defs>' +
        '<rect width="64" height="48" fill="url(#g)"/>' +
        `<image x="8" y="8" width="16" height="16" xlink:href="data:image/png;base64,${(await wide(4, 4)).toString("base64")}"/>` +
        "</svg>";

    return {
        base: await file("base.png", png),
        truncatedPng: await file("truncated.png", png.subarray(0, Math.floor(png.length / 2))),
        truncatedJpeg: await file("truncated.jpg", jpeg.subarray(0, Math.floor(jpeg.length / 2))),
        randomBytes: await file(
            "random.png",
            Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24)),
        ),
        textAsPng: await file("text.png", Buffer.from("This is a text file with an image's name.\n".repeat(20))),
        pngNamedJpg: await file("png-named.jpg", png),
        jpegNamedPng: await file("jpeg-named.png", jpeg),
        zeroByZero: await file("zero-by-zero.png", handPng(0, 0, 8, 2, deflateSync(Buffer.alloc(0)))),
        onePixel: await file("one-pixel.png", wide(1, 1)),
        oneByTwoHundred: await file("1x200.png", wide(1, 200)),
        twoHundredByOne: await file("200x1.png", wide(200, 1)),
        oneByTwentyThousand: await file("1x20000.png", wide(1, 20000)),
        twentyThousandByOne: await file("20000x1.png", wide(20000, 1)),
        bomb: await file("bomb-30000x30000.png", bombPng(30000)),
        sixteenBit: await file(
            "sixteen-bit.png",
            sharp(sixteen, { raw: { width, height, channels: 3 } })
                .toColourspace("rgb16")
                .png()
                .toBuffer(),
        ),
        cmykJpeg: await file("cmyk.jpg", raw().toColourspace("cmyk").jpeg({ quality: 95 }).toBuffer()),
        palette: await file(
            "palette.png",
            sharp(palette, { raw: { width, height, channels: 3 } })
                .png({ palette: true, colours: 4 })
                .toBuffer(),
        ),
        paletteAsRgb: await file(
            "palette-as-rgb.png",
            sharp(palette, { raw: { width, height, channels: 3 } })
                .png()
                .toBuffer(),
        ),
        alpha: await file(
            "alpha.png",
            sharp(alphaRgba, { raw: { width, height, channels: 4 } })
                .png()
                .toBuffer(),
        ),
        alphaOnWhite: await file(
            "alpha-on-white.png",
            sharp(alphaWhite, { raw: { width, height, channels: 3 } })
                .png()
                .toBuffer(),
        ),
        animatedGif: await file(
            "animated.gif",
            sharp(frames, { raw: { width, height: height * 2, channels: 3, pageHeight: height } })
                .gif({ loop: 0, delay: [100, 100] })
                .toBuffer(),
        ),
        exifRotated: await file("exif-rotated.jpg", raw().jpeg().withMetadata({ orientation: 6 }).toBuffer()),
        svgSelfContained: await file("self-contained.svg", Buffer.from(svgSelfContained)),
    };
}

/**
 * SVGs that reference something outside themselves, each of which a renderer could fetch or read. `origin` is
 * an http origin (e.g. a local server that counts requests); `secret` a local file path.
 */
export function externalSvgs(origin: string, secret: string): Record<string, string> {
    const wrap = (inner: string, head = "") =>
        `${head}<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="48">${inner}</svg>`;
    const fileUrl = `file://${secret}`;
    return {
        "image href http": wrap(`<image width="64" height="48" href="${origin}/image.png"/>`),
        "image xlink:href file:": wrap(`<image width="64" height="48" xlink:href="${fileUrl}"/>`),
        "image href relative path": wrap(`<image width="64" height="48" href="${path.basename(secret)}"/>`),
        "use href http": wrap(`<use href="${origin}/sprite.svg#icon"/>`),
        "feImage href": wrap(
            `<filter id="f"><feImage href="${origin}/filter.png"/></filter><rect width="64" height="48" filter="url(#f)"/>`,
        ),
        "CSS url() in style attribute": wrap(
            `<rect width="64" height="48" style="fill: url('${origin}/paint.svg#p')"/>`,
        ),
        "CSS url() in a style element": wrap(
            `<style>rect { fill: url(${origin}/paint.svg#p) }</style><rect width="64" height="48"/>`,
        ),
        "CSS @import": wrap(`<style>@import "${origin}/style.css";</style><rect width="64" height="48"/>`),
        "xml-stylesheet": wrap(
            '<rect width="64" height="48"/>',
            `<?xml version="1.0"?><?xml-stylesheet type="text/css" href="${origin}/style.css"?>`,
        ),
        XInclude: wrap(
            `<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="${origin}/part.svg" parse="xml"/>`,
        ),
        "external entity": wrap(
            "<text>&ext;</text>",
            `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY ext SYSTEM "${origin}/entity.txt">]>`,
        ),
        "href hidden by character references": wrap(
            `<image width="64" height="48" href="&#104;ttp://${origin.replace(/^http:\/\//, "")}/image.png"/>`,
        ),
        "CSS url() hidden by an escape": wrap(
            `<style>rect { fill: u\\72l(${origin}/paint.svg#p) }</style><rect width="64" height="48"/>`,
        ),
    };
}

/** An SVG whose DOCTYPE names an external DTD: common in exported files, and never loaded by librsvg. */
export function svgWithExternalDtd(origin: string): string {
    return (
        `<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "${origin}/svg11.dtd">` +
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48" fill="#3a6"/></svg>'
    );
}

/** An SVG document gzip-compressed (.svgz), which libvips also loads. */
export function svgz(svg: string): Buffer {
    return gzipSync(Buffer.from(svg));
}

// ---------------------------------------------------------------------------------------------------------------
// Options

/** A value of the right type that the option refuses; `with` adds other options the case needs. */
export interface OutOfRange {
    readonly label: string;
    readonly value: unknown;
    readonly with?: Record<string, unknown>;
}

export interface OptionSpec {
    /** A value the option accepts: its type decides the wrong-type value (a string for everything but strings). */
    readonly valid: unknown;
    readonly outOfRange: readonly OutOfRange[];
}

export type OptionScope = "loadModel" | "projectorOptions" | "createContext" | "request";

const range = (...cases: [label: string, value: unknown, extra?: Record<string, unknown>][]): OutOfRange[] =>
    cases.map(([label, value, extra]) => ({ label, value, ...(extra ? { with: extra } : {}) }));
const numbers = (...values: number[]) => range(...values.map((v): [string, number] => [String(v), v]));
const NONE: OutOfRange[] = [];
const aSignal = { aborted: false, addEventListener() {}, removeEventListener() {} };

/**
 * Every option of every scope, with what it refuses besides the wrong type, NaN and ±Infinity (which every option
 * refuses). The corpus test checks that these keys are exactly the ones lib/ validates, so a new option cannot
 * be left out.
 */
export const OPTION_CORPUS: Record<OptionScope, Record<string, OptionSpec>> = {
    loadModel: {
        model: { valid: "m.gguf", outOfRange: range(["empty", ""]) },
        projector: { valid: "p.gguf", outOfRange: range(["empty", ""]) },
        gpuLayers: { valid: -1, outOfRange: numbers(-2, 1.5, 2 ** 31) },
        nGpuLayers: { valid: -1, outOfRange: range(["-2", -2], ["with gpuLayers too", 0, { gpuLayers: 0 }]) },
        useMmap: { valid: true, outOfRange: NONE },
        useMlock: { valid: false, outOfRange: NONE },
        vocabOnly: { valid: false, outOfRange: NONE },
        hugePages: { valid: true, outOfRange: NONE },
        fitFor: {
            valid: {},
            outOfRange: range(
                ["contextSize 8", { contextSize: 8 }],
                ["parallel 0", { parallel: 0 }],
                ["misspelled key context", { context: 4096 }],
            ),
        },
        onProgress: { valid: () => {}, outOfRange: NONE },
        offline: { valid: false, outOfRange: NONE },
        onDownloadProgress: { valid: () => {}, outOfRange: NONE },
        signal: { valid: new AbortController().signal, outOfRange: range(["an object shaped like a signal", aSignal]) },
        projectorOptions: { valid: {}, outOfRange: range(["misspelled key thread", { thread: 2 }]) },
        isolation: { valid: "none", outOfRange: range(['"thread"', "thread"]) },
    },
    projectorOptions: {
        useGpu: { valid: true, outOfRange: NONE },
        threads: { valid: 2, outOfRange: numbers(0, 1.5, 513) },
        imageMinTokens: { valid: -1, outOfRange: numbers(-2, 65537) },
        imageMaxTokens: {
            valid: -1,
            outOfRange: range(["-2", -2], ["65537", 65537], ["below imageMinTokens", 10, { imageMinTokens: 100 }]),
        },
        flashAttention: { valid: "auto", outOfRange: range(['"on"', "on"]) },
        imageCacheBytes: { valid: 0, outOfRange: numbers(-1, 0.5) },
    },
    createContext: {
        contextSize: {
            valid: 512,
            outOfRange: range(
                ["15", 15],
                ["1.5", 1.5],
                ["2^31", 2 ** 31],
                ["2^24 × parallel 256 (2^32 cells)", 2 ** 24, { parallel: 256 }],
            ),
        },
        nCtx: { valid: 512, outOfRange: range(["15", 15], ["with contextSize too", 512, { contextSize: 512 }]) },
        batchSize: { valid: 512, outOfRange: numbers(0, 2 ** 31) },
        ubatchSize: { valid: 512, outOfRange: numbers(0, 2 ** 31) },
        parallel: { valid: 1, outOfRange: numbers(0, 257) },
        threads: { valid: 2, outOfRange: numbers(0, 513) },
        threadsBatch: { valid: 2, outOfRange: numbers(0, 513) },
        flashAttention: { valid: "auto", outOfRange: range(['"on"', "on"]) },
        kvCacheType: { valid: "f16", outOfRange: range(['"q3_k"', "q3_k"]) },
        warmup: { valid: true, outOfRange: NONE },
    },
    request: {
        prompt: { valid: "x", outOfRange: range(['"" with no images', "", { images: [] }]) },
        messages: {
            valid: [],
            outOfRange: range(
                ["[]", []],
                ["[null]", [null]],
                ['role "tool"', [{ role: "tool", content: "x" }]],
                ["content 42", [{ role: "user", content: 42 }]],
                ["a content part 42", [{ role: "user", content: [42] }]],
            ),
        },
        images: {
            valid: [],
            outOfRange: range(
                ["[42]", [42]],
                ["raw pixels of the wrong length", [{ data: new Uint8Array(5), width: 2, height: 2 }]],
                ["raw 0×0", [{ data: new Uint8Array(0), width: 0, height: 0 }]],
            ),
        },
        chatTemplate: {
            valid: "vicuna",
            outOfRange: range(
                ['""', ""],
                ["not Jinja", "{% if %}"],
                ["drops the image", "{{ 'hi' }}"],
                ["brackets nested 4000 deep", `{{ ${"(".repeat(4000)}1${")".repeat(4000)} }}`],
                ["a macro that calls itself", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"],
                [
                    "loops nested to 10^12 steps",
                    "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}" +
                        "{{ a }}{% endfor %}{% endfor %}{% endfor %}",
                ],
                ['"x" * 10^12', "{{ 'x' * 1000000000000 }}"],
                ["range(10^12)", "{% for i in range(1000000000000) %}{% endfor %}"],
                [
                    "a string doubled 50 times",
                    "{% set ns = namespace(s='x') %}{% for i in range(50) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
                ],
            ),
        },
        maxTokens: { valid: 2, outOfRange: numbers(-2, 1.5) },
        nPredict: { valid: 2, outOfRange: range(["-2", -2], ["with maxTokens too", 2, { maxTokens: 2 }]) },
        stop: { valid: [], outOfRange: range(['[""]', [""]], ["[42]", [42]]) },
        stopStrings: { valid: [], outOfRange: range(['[""]', [""]], ["with stop too", ["a"], { stop: ["b"] }]) },
        nProbs: { valid: 0, outOfRange: numbers(-1, 1001) },
        fastForward: { valid: false, outOfRange: range(["without a grammar", true]) },
        imageBudget: {
            valid: {},
            outOfRange: range(
                ["maxPixels 0", { maxPixels: 0 }],
                ['overBudget "crop"', { overBudget: "crop" }],
                ["maxInputPixels 0", { maxInputPixels: 0 }],
                ["misspelled key maxPixel", { maxPixel: 100 }],
            ),
        },
        signal: { valid: new AbortController().signal, outOfRange: range(["an object shaped like a signal", aSignal]) },
        temperature: { valid: 0, outOfRange: range(["-1", -1], ["1e39 (+Infinity as float32)", 1e39]) },
        dynatempRange: { valid: 0, outOfRange: numbers(-1) },
        dynatempExponent: { valid: 1, outOfRange: numbers(-1) },
        topK: { valid: 40, outOfRange: numbers(-3, 1.5) },
        topP: { valid: 0.95, outOfRange: numbers(-0.1, 1.1) },
        minP: { valid: 0.05, outOfRange: numbers(-0.1, 1.1) },
        typicalP: { valid: 1, outOfRange: numbers(-0.1, 1.1) },
        tfsZ: { valid: 1, outOfRange: numbers(-0.1, 1.1) },
        minKeep: { valid: 0, outOfRange: numbers(-1, 1.5) },
        repeatPenalty: { valid: 1, outOfRange: numbers(-1, 0) },
        repeatLastN: { valid: 64, outOfRange: numbers(-2, 1.5) },
        frequencyPenalty: { valid: 0, outOfRange: numbers(1e39) },
        presencePenalty: { valid: 0, outOfRange: numbers(-1e39) },
        penalizeNewline: { valid: false, outOfRange: NONE },
        penalizeNl: {
            valid: false,
            outOfRange: range(["with penalizeNewline too", true, { penalizeNewline: true }]),
        },
        dryMultiplier: { valid: 0, outOfRange: numbers(-1) },
        dryBase: { valid: 1.75, outOfRange: numbers(0.5) },
        dryAllowedLength: { valid: 2, outOfRange: numbers(-1, 1.5) },
        dryPenaltyLastN: { valid: -1, outOfRange: numbers(-2, 1.5) },
        drySequenceBreakers: { valid: [], outOfRange: range(["[42]", [42]]) },
        xtcProbability: { valid: 0, outOfRange: numbers(-0.1, 1.5) },
        xtcThreshold: { valid: 0.1, outOfRange: numbers(-0.1, 1.5) },
        topNSigma: { valid: -1, outOfRange: numbers(1e39) },
        mirostat: { valid: 0, outOfRange: numbers(3, 1.5) },
        mirostatTau: { valid: 5, outOfRange: numbers(-1) },
        mirostatEta: { valid: 0.1, outOfRange: numbers(-1) },
        logitBias: {
            valid: {},
            outOfRange: range(
                ["bias 1e39 (+Infinity as float32)", { 0: 1e39 }],
                ["token -1", [[-1, 1]]],
                ["token past the vocabulary", [[10_000_000, 1]]],
                ["a pair of one", [[1]]],
                [
                    "every token of the tiny vocabulary banned",
                    Array.from({ length: 151_936 }, (_, i) => [i, -Infinity]),
                ],
            ),
        },
        grammar: {
            valid: 'root ::= "a"',
            outOfRange: range(
                ['""', ""],
                ["not GBNF", "root ::= ("],
                ["parentheses nested 100,000 deep", `root ::= ${"(".repeat(100_000)}"a"${")".repeat(100_000)}`],
                [
                    "100,001 chained rules",
                    `root ::= r1\n${Array.from({ length: 100_000 }, (_, i) => `r${i + 1} ::= r${i + 2}`).join("\n")}\nr100001 ::= "a"`,
                ],
            ),
        },
        jsonSchema: {
            valid: {},
            outOfRange: range(
                ["an unresolvable $ref", { type: "object", properties: { a: { $ref: "#/nope" } } }],
                ["with grammar too", { type: "string" }, { grammar: 'root ::= "a"' }],
            ),
        },
        seed: { valid: 7, outOfRange: range(["-1", -1], ["2^32", 2 ** 32], ["1.5", 1.5]) },
        samplerOrder: { valid: [], outOfRange: range(['["nope"]', ["nope"]], ["topK twice", ["topK", "topK"]]) },
    },
};

/** One bad value of one option. */
export interface BadOption {
    readonly key: string;
    readonly label: string;
    readonly value: unknown;
    readonly with?: Record<string, unknown>;
    /** Misspelled: `key` is the misspelling, `value` the valid value. */
    readonly misspelledFrom?: string;
}

/** The key with its letters' case flipped: close enough for a "did you mean" hint, and never a real key. */
export function misspell(key: string): string {
    return key === key.toLowerCase() ? key.toUpperCase() : key.toLowerCase();
}

/** Every bad value of an option: wrong type, NaN, ±Infinity, its out-of-range values, and its name misspelled. */
export function badOptions(key: string, spec: OptionSpec): BadOption[] {
    return [
        { key, label: "wrong type", value: typeof spec.valid === "string" ? 1 : "1" },
        { key, label: "NaN", value: Number.NaN },
        { key, label: "Infinity", value: Number.POSITIVE_INFINITY },
        { key, label: "-Infinity", value: Number.NEGATIVE_INFINITY },
        ...spec.outOfRange.map((o) => ({ key, ...o })),
        { key: misspell(key), label: "misspelled", value: spec.valid, misspelledFrom: key },
    ];
}
