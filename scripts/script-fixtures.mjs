// What scripts/fuzz.mjs and scripts/soak.mjs run against: the tiny synthetic Qwen2.5-VL pair (written once into
// .cache/models by the compiled factory in dist/, unless --model/--projector name one) and a few images, good and
// bad, made with sharp. Both scripts need `npm run compile` first.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { tensorSeed, Xoshiro128 } from "../dist/gguf/index.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const DIST = path.join(ROOT, "dist");

/** The library as compiled into dist/; says how to get it when it is missing. */
export async function importLibrary() {
    const entry = path.join(DIST, "index.js");
    if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run "npm run compile" first`);
    return import(entry);
}

/** { model, projector }: the given paths, or the tiny qwen2.5-vl pair written by dist/synth (cached by its bytes). */
export async function tinyPair(given = {}) {
    if (given.model !== undefined) return { model: given.model, projector: given.projector };
    const hash = createHash("sha256");
    for (const dir of ["synth", "gguf"]) {
        for (const name of fs.readdirSync(path.join(DIST, dir)).sort()) {
            if (name.endsWith(".js")) hash.update(name).update(fs.readFileSync(path.join(DIST, dir, name)));
        }
    }
    const dir = path.join(ROOT, ".cache", "models", `scripts-qwen2.5-vl-tiny-${hash.digest("hex").slice(0, 10)}`);
    const manifest = path.join(dir, "pair.json");
    if (!fs.existsSync(manifest)) {
        const { writeModelPair } = await import(path.join(DIST, "synth", "index.js"));
        const pair = await writeModelPair({ family: "qwen2.5-vl", size: "tiny", seed: 0, quant: "q8_0", outDir: dir });
        fs.writeFileSync(manifest, JSON.stringify({ model: pair.model, projector: pair.projector }));
    }
    return JSON.parse(fs.readFileSync(manifest, "utf8"));
}

/** Seeded random choices over lib/gguf's xoshiro128**; `(seed, name)` gives an independent stream per name. */
export class Rng {
    constructor(seed, name) {
        this.x = new Xoshiro128(tensorSeed(seed, name));
    }
    u32() {
        return this.x.nextU32();
    }
    float() {
        return this.u32() / 2 ** 32;
    }
    chance(p) {
        return this.float() < p;
    }
    int(lo, hi) {
        return lo + (this.u32() % (hi - lo + 1));
    }
    pick(items) {
        return items[this.u32() % items.length];
    }
    real(lo, hi) {
        return lo + this.float() * (hi - lo);
    }
}

/** Deterministic RGB pixels: a gradient with a seeded tint. */
export function rawPixels(width, height, channels, seed) {
    const data = new Uint8Array(width * height * channels);
    for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
            const at = (y * width + x) * channels;
            data[at] = (x * 255) / Math.max(1, width - 1);
            data[at + 1] = (y * 255) / Math.max(1, height - 1);
            data[at + 2] = (seed * 37 + x + y) & 0xff;
            if (channels === 4) data[at + 3] = (x + seed) & 1 ? 255 : 128;
        }
    }
    return data;
}

/**
 * Images for the scripts, written into `dir`: good ones (PNG file, PNG/JPEG/WebP bytes, a 1200×900 PNG for
 * the pixel budget) and bad ones (random bytes, a truncated PNG, a PNG header followed by junk).
 */
export async function scriptImages(dir) {
    fs.mkdirSync(dir, { recursive: true });
    const encode = (width, height, seed) =>
        sharp(Buffer.from(rawPixels(width, height, 3, seed)), { raw: { width, height, channels: 3 } });
    const png = await encode(320, 240, 1).png().toBuffer();
    const pngFile = path.join(dir, "gradient.png");
    fs.writeFileSync(pngFile, png);
    const junk = Buffer.alloc(512);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
    return {
        pngFile,
        png,
        jpeg: await encode(256, 384, 2).jpeg().toBuffer(),
        webp: await encode(200, 150, 3).webp().toBuffer(),
        large: await encode(1200, 900, 4).png().toBuffer(),
        randomBytes: junk,
        truncatedPng: png.subarray(0, Math.floor(png.length / 2)),
        headerThenJunk: Buffer.concat([png.subarray(0, 80), Buffer.alloc(64, 1)]),
        missingFile: path.join(dir, "no-such-image.png"),
        directory: dir,
    };
}
