/**
 * Synthetic models for tests, written once into .cache/models/<key>/ and reused by later runs and by other test
 * files. The key holds everything that determines the files' bytes: family, size, seed, quant, the factory's
 * version constant and a hash of the factory's sources (so an edit that forgets to bump the version still
 * regenerates). Safe when several processes ask at once: each writes into its own temporary folder and renames
 * it into place; the first rename wins and the others use its files.
 */

import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import {
    type ModelPair,
    SYNTH_VERSION,
    type SynthFamily,
    type SynthFile,
    type SynthQuant,
    type SynthSize,
    synthModels,
    writeModelPair,
} from "../../lib/synth/index.js";

export const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");
export const MODELS_CACHE = path.join(REPO_ROOT, ".cache", "models");

/**
 * A file of the vendored llama.cpp tree (`vendor/llama.cpp/<parts>`), such as one of its vocabulary-only GGUFs.
 * Throws, saying how to get it, when it is missing: a test that needs it fails rather than skips.
 */
export function vendoredLlamaFile(...parts: string[]): string {
    const file = path.join(REPO_ROOT, "vendor", "llama.cpp", ...parts);
    if (!existsSync(file)) {
        throw new Error(`${file} not found: vendor/llama.cpp is missing or incomplete: run npm ci (or npm run vendor)`);
    }
    return file;
}

export interface CachedModelOptions {
    /** Default `tiny`. */
    readonly size?: SynthSize;
    /** Default 0. */
    readonly seed?: number;
    /** Default: the factory's default for the size. */
    readonly quant?: SynthQuant;
}

interface Manifest {
    readonly model: string;
    readonly projector?: string;
    readonly bytes: number;
}

const pending = new Map<string, Promise<ModelPair>>();

/** The model pair for `family` and `options`, written into the cache on first use. */
export function cachedModel(family: SynthFamily, options: CachedModelOptions = {}): Promise<ModelPair> {
    const size = options.size ?? "tiny";
    const seed = options.seed ?? 0;
    const quant =
        options.quant ?? synthModels().find((m) => m.family === family && m.size === size)?.defaultQuant ?? "q8_0";
    const prefix = `${family}-${size}-seed${seed}-${quant}-`;
    const key = `${prefix}v${SYNTH_VERSION}-${factoryHash()}`;
    let result = pending.get(key);
    if (result === undefined) {
        result = loadOrWrite(key, prefix, family, size, seed, quant);
        pending.set(key, result);
        result.catch(() => pending.delete(key));
    }
    return result;
}

/** Every family that has a tiny size, for tests that loop over them. */
export const TINY_FAMILIES: readonly SynthFamily[] = synthModels()
    .filter((m) => m.size === "tiny")
    .map((m) => m.family);

async function loadOrWrite(
    key: string,
    prefix: string,
    family: SynthFamily,
    size: SynthSize,
    seed: number,
    quant: SynthQuant,
): Promise<ModelPair> {
    const dir = path.join(MODELS_CACHE, key);
    const existing = await readManifest(dir);
    if (existing !== undefined) return existing;
    await mkdir(MODELS_CACHE, { recursive: true });
    const temp = path.join(MODELS_CACHE, `.${key}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
    try {
        const pair = await writeModelPair({ family, size, seed, quant, outDir: temp });
        const manifest: Manifest = {
            model: path.basename(pair.model),
            ...(pair.projector ? { projector: path.basename(pair.projector) } : {}),
            bytes: pair.bytes,
        };
        await writeFile(path.join(temp, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
        try {
            await rename(temp, dir);
        } catch (error) {
            // Another process renamed its copy into place first (ENOTEMPTY / EEXIST): use that one.
            const code = (error as NodeJS.ErrnoException).code;
            if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error;
        }
    } finally {
        await rm(temp, { recursive: true, force: true });
    }
    const written = await readManifest(dir);
    if (written === undefined) throw new Error(`No manifest in ${dir} after writing it`);
    // Copies written by older factory sources are dead weight: remove them.
    for (const name of readdirSync(MODELS_CACHE)) {
        if (name.startsWith(prefix) && name !== key)
            await rm(path.join(MODELS_CACHE, name), { recursive: true, force: true });
    }
    return written;
}

async function readManifest(dir: string): Promise<ModelPair | undefined> {
    let manifest: Manifest;
    try {
        manifest = JSON.parse(await readFile(path.join(dir, "manifest.json"), "utf8")) as Manifest;
    } catch {
        return undefined;
    }
    const model = path.join(dir, manifest.model);
    const projector = manifest.projector ? path.join(dir, manifest.projector) : undefined;
    if (!existsSync(model) || (projector !== undefined && !existsSync(projector))) return undefined;
    const files: SynthFile[] = [{ role: "model", path: model, bytes: statSync(model).size }];
    if (projector !== undefined) files.push({ role: "projector", path: projector, bytes: statSync(projector).size });
    return { model, ...(projector ? { projector } : {}), bytes: manifest.bytes, files };
}

let hash: string | undefined;

/** Short hash of the sources that determine the bytes of a synthetic model. */
function factoryHash(): string {
    if (hash !== undefined) return hash;
    const h = createHash("sha256");
    for (const dir of ["lib/synth", "lib/gguf"]) {
        const abs = path.join(REPO_ROOT, dir);
        for (const name of readdirSync(abs).sort()) {
            if (!name.endsWith(".ts")) continue;
            h.update(name);
            h.update(readFileSync(path.join(abs, name)));
        }
    }
    hash = h.digest("hex").slice(0, 10);
    return hash;
}
