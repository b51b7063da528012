/**
 * Seeded test images, drawn as raw RGB and encoded with sharp. Two kinds that a vision encoder sees very
 * differently: a smooth colour gradient (a photo-like image) and a white page with dark, text-like blocks in
 * lines (a scanned-document-like image).
 */

import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { Xoshiro128 } from "../../lib/gguf/index.js";
import { REPO_ROOT } from "./models.js";

export type TestImageKind = "gradient" | "blocks";

export interface TestImageOptions {
    readonly width: number;
    readonly height: number;
    /** Default 0. */
    readonly seed?: number;
}

export interface RawTestImage {
    /** RGB, 3 bytes per pixel, rows top to bottom. */
    readonly data: Buffer;
    readonly width: number;
    readonly height: number;
}

/** The two standard images used across tests: a 320×240 gradient and a 256×384 page of text-like blocks. */
export const STANDARD_IMAGES = {
    gradient: { kind: "gradient", width: 320, height: 240 },
    blocks: { kind: "blocks", width: 256, height: 384 },
} as const satisfies Record<string, { kind: TestImageKind; width: number; height: number }>;

export const IMAGES_CACHE = path.join(REPO_ROOT, ".cache", "images");

/** Raw RGB pixels of a test image. */
export function testImageRaw(kind: TestImageKind, options: TestImageOptions): RawTestImage {
    const { width, height } = options;
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
        throw new RangeError(`Expected a positive integer width and height, got ${width}×${height}`);
    }
    const rng = new Xoshiro128(options.seed ?? 0);
    const data = Buffer.alloc(width * height * 3);
    if (kind === "gradient") drawGradient(data, width, height, rng);
    else drawBlocks(data, width, height, rng);
    return { data, width, height };
}

/** PNG bytes of a test image. */
export function testImagePng(kind: TestImageKind, options: TestImageOptions): Promise<Buffer> {
    const { data, width, height } = testImageRaw(kind, options);
    return sharp(data, { raw: { width, height, channels: 3 } })
        .png()
        .toBuffer();
}

/** Path of the PNG of a test image, written once into .cache/images/. */
export async function testImageFile(kind: TestImageKind, options: TestImageOptions): Promise<string> {
    const file = path.join(IMAGES_CACHE, `${kind}-${options.width}x${options.height}-seed${options.seed ?? 0}.png`);
    if (existsSync(file)) return file;
    await mkdir(IMAGES_CACHE, { recursive: true });
    const temp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
        await writeFile(temp, await testImagePng(kind, options));
        await rename(temp, file);
    } finally {
        await rm(temp, { force: true });
    }
    return file;
}

function unit(rng: Xoshiro128): number {
    return rng.nextU32() / 2 ** 32;
}

/** A linear gradient between two random colours along a random direction, plus a faint diagonal ripple. */
function drawGradient(data: Buffer, width: number, height: number, rng: Xoshiro128): void {
    const from = [unit(rng), unit(rng), unit(rng)].map((v) => 40 + v * 180);
    const to = [unit(rng), unit(rng), unit(rng)].map((v) => 40 + v * 180);
    const angle = unit(rng) * 2 * Math.PI;
    const dx = Math.cos(angle);
    const dy = Math.sin(angle);
    const span = Math.abs(dx) * width + Math.abs(dy) * height;
    const offset = Math.min(0, dx * width) + Math.min(0, dy * height);
    for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
            const t = (x * dx + y * dy - offset) / span;
            const ripple = 12 * Math.sin((x + y) / 9);
            const i = (y * width + x) * 3;
            for (let c = 0; c < 3; c++) {
                data[i + c] = Math.max(0, Math.min(255, Math.round(from[c]! + (to[c]! - from[c]!) * t + ripple)));
            }
        }
    }
}

/** A white page with lines of dark word-like blocks of random lengths, and a header bar. */
function drawBlocks(data: Buffer, width: number, height: number, rng: Xoshiro128): void {
    data.fill(250);
    const fill = (x0: number, y0: number, w: number, h: number, shade: number) => {
        for (let y = Math.max(0, y0); y < Math.min(height, y0 + h); y++) {
            for (let x = Math.max(0, x0); x < Math.min(width, x0 + w); x++) {
                const i = (y * width + x) * 3;
                data[i] = shade;
                data[i + 1] = shade;
                data[i + 2] = shade + 10;
            }
        }
    };
    const margin = Math.max(4, Math.round(width / 16));
    const lineHeight = Math.max(6, Math.round(height / 24));
    fill(margin, margin, Math.round((width - 2 * margin) * (0.4 + 0.4 * unit(rng))), lineHeight * 2, 30);
    for (let y = margin + lineHeight * 4; y + lineHeight < height - margin; y += lineHeight * 2) {
        let x = margin + (unit(rng) < 0.2 ? margin : 0);
        const end = width - margin - (unit(rng) < 0.3 ? Math.round(unit(rng) * width * 0.4) : 0);
        while (x < end) {
            const word = Math.round(lineHeight * (1 + unit(rng) * 4));
            fill(x, y, Math.min(word, end - x), lineHeight, 20 + Math.round(unit(rng) * 60));
            x += word + Math.round(lineHeight * 0.6);
        }
    }
}
