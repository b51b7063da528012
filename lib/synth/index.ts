/**
 * Seeded synthetic model factory: GGUF text models and projectors with the exact tensor layout llama.cpp and its
 * mtmd library expect, random weights, and real tokenizers taken from llama.cpp's vocab-only GGUFs. The same
 * options always produce byte-identical files.
 *
 * ```ts
 * const pair = await writeModelPair({ family: "qwen2.5-vl", size: "tiny", outDir: ".cache/models", seed: 1 });
 * // pair.model, pair.projector: paths of the .gguf files
 * ```
 */

import { mkdir } from "node:fs/promises";
import path from "node:path";
import { LlamaVlmError } from "../errors.js";
import type { GgufWriter } from "../gguf/index.js";
import { rejectUnknownOptions } from "../gguf/options.js";
import {
    findSpec,
    type ModelSpec,
    SYNTH_FAMILIES,
    SYNTH_QUANTS,
    SYNTH_SIZES,
    type SynthFamily,
    type SynthQuant,
    type SynthSize,
    synthModels,
} from "./families.js";
import { buildTextModel, embeddingStd, type SynthMetadata, WEIGHT_DESIGN } from "./text.js";
import { defaultVocabDir, loadTokenizer } from "./tokenizer.js";
import { buildProjector } from "./vision.js";

export {
    SYNTH_FAMILIES,
    SYNTH_QUANTS,
    SYNTH_SIZES,
    type SynthFamily,
    type SynthQuant,
    type SynthSize,
    synthModels,
    WEIGHT_DESIGN,
};

/**
 * Version of the factory's output. Bump it whenever a change alters the bytes written for the same options, so
 * that caches keyed on it (test/helpers/models.ts) regenerate.
 */
export const SYNTH_VERSION = 1;

export interface WriteModelPairOptions {
    /** Model family; see `SynthFamily`. */
    readonly family: SynthFamily;
    /** `tiny` (a few MB, for tests) or `3b` (the real Qwen2.5-VL-3B shape, qwen2.5-vl only). Default `tiny`. */
    readonly size?: SynthSize;
    /** Folder for the files; created when missing. Existing files of the same name are replaced atomically. */
    readonly outDir: string;
    /** Seed of every random weight: a non-negative safe integer. Default 0. */
    readonly seed?: number;
    /**
     * Storage type of the text model's matrices, token embedding included (rows whose length is not a multiple
     * of 32 stay f16). The projector is always f16. Default `q8_0` for tiny models, `q4_0` for 3b.
     */
    readonly quant?: SynthQuant;
    /**
     * Logit, in nats, of the token the model prefers at each step; the runner-up sits a few to tens of nats
     * lower. Larger means sampling stays closer to greedy. Default 100 (see `WEIGHT_DESIGN`).
     */
    readonly logitScale?: number;
    /** Folder holding llama.cpp's `ggml-vocab-*.gguf` files. Default: this package's vendor/llama.cpp/models. */
    readonly vocabDir?: string;
    /** Called as each file is written. */
    readonly onProgress?: (progress: SynthProgress) => void;
    /** Aborts the write; the file being written is removed. */
    readonly signal?: AbortSignal;
}

export interface SynthProgress {
    readonly role: SynthFile["role"];
    readonly path: string;
    readonly bytesWritten: number;
    readonly totalBytes: number;
}

export interface SynthFile {
    readonly role: "model" | "projector";
    readonly path: string;
    /** File size in bytes. */
    readonly bytes: number;
}

export interface ModelPair {
    /** Path of the text model. */
    readonly model: string;
    /** Path of the projector (mmproj); absent for text-only families. */
    readonly projector?: string;
    /** Total size of the files, in bytes. */
    readonly bytes: number;
    /** The files in the order they were written. */
    readonly files: readonly SynthFile[];
}

const OPTION_NAMES = ["family", "size", "outDir", "seed", "quant", "logitScale", "vocabDir", "onProgress", "signal"];

interface Plan {
    readonly spec: ModelSpec;
    readonly files: readonly { readonly role: SynthFile["role"]; readonly path: string; readonly writer: GgufWriter }[];
}

/**
 * Writes a synthetic text model and, for vision families, its projector into `outDir`, named
 * `<family>-<size>-<quant>-seed<seed>.gguf` and `mmproj-<family>-<size>-f16-seed<seed>.gguf`. Memory stays
 * bounded whatever the model size (peak RSS ≈ 150 MB for the 3b pair; tensors are generated chunk by chunk).
 */
export async function writeModelPair(options: WriteModelPairOptions): Promise<ModelPair> {
    const plan = await planModelPair(options);
    await mkdir(path.resolve(options.outDir), { recursive: true });
    const files: SynthFile[] = [];
    for (const { role, path: file, writer } of plan.files) {
        const layout = await writer.write(file, {
            signal: options.signal,
            onProgress: options.onProgress
                ? (bytesWritten, totalBytes) => options.onProgress!({ role, path: file, bytesWritten, totalBytes })
                : undefined,
        });
        files.push({ role, path: file, bytes: layout.fileSize });
    }
    return toPair(files);
}

/** The files `writeModelPair` would write with these options and their sizes, without writing anything. */
export async function describeModelPair(options: WriteModelPairOptions): Promise<ModelPair> {
    const plan = await planModelPair(options);
    return toPair(
        plan.files.map(({ role, path: file, writer }) => ({ role, path: file, bytes: writer.layout().fileSize })),
    );
}

function toPair(files: SynthFile[]): ModelPair {
    return {
        model: files[0]!.path,
        ...(files[1] ? { projector: files[1].path } : {}),
        bytes: files.reduce((sum, f) => sum + f.bytes, 0),
        files,
    };
}

async function planModelPair(options: WriteModelPairOptions): Promise<Plan> {
    const o = validate(options);
    const spec = findSpec(o.family, o.size);
    if (spec === undefined) {
        const sizes = synthModels()
            .filter((m) => m.family === o.family)
            .map((m) => m.size);
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `Family "${o.family}" has no size "${o.size}"; available: ${sizes.join(", ")}`,
        );
    }
    const quant = o.quant ?? spec.defaultQuant;
    const meta: SynthMetadata = { family: o.family, size: o.size, seed: o.seed, version: SYNTH_VERSION };
    const tokenizer = await loadTokenizer(spec.tokenizer, o.vocabDir ?? defaultVocabDir());
    const base = path.resolve(o.outDir);
    const stem = `${o.family}-${o.size}`;
    const files: Plan["files"][number][] = [
        {
            role: "model",
            path: path.join(base, `${stem}-${quant}-seed${o.seed}.gguf`),
            writer: buildTextModel({ spec: spec.text, tokenizer, quant, seed: o.seed, logitScale: o.logitScale, meta }),
        },
    ];
    if (spec.vision !== undefined) {
        files.push({
            role: "projector",
            path: path.join(base, `mmproj-${stem}-f16-seed${o.seed}.gguf`),
            writer: buildProjector({
                spec: spec.vision,
                projectionDim: spec.text.nEmbd,
                embedStd: embeddingStd(spec.text.nEmbd, o.logitScale),
                seed: o.seed,
                meta,
            }),
        });
    }
    return { spec, files };
}

interface ValidOptions {
    family: SynthFamily;
    size: SynthSize;
    outDir: string;
    seed: number;
    quant: SynthQuant | undefined;
    logitScale: number;
    vocabDir: string | undefined;
}

function validate(options: WriteModelPairOptions): ValidOptions {
    try {
        rejectUnknownOptions(options, OPTION_NAMES, "writeModelPair options");
    } catch (error) {
        throw new LlamaVlmError("INVALID_OPTION", (error as Error).message);
    }
    const oneOf = <T extends string>(name: string, value: unknown, allowed: readonly T[]): T => {
        if (!allowed.includes(value as T)) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `Expected "${name}" to be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`,
            );
        }
        return value as T;
    };
    const family = oneOf("family", options.family, SYNTH_FAMILIES);
    const size = oneOf("size", options.size ?? "tiny", SYNTH_SIZES);
    const quant = options.quant === undefined ? undefined : oneOf("quant", options.quant, SYNTH_QUANTS);
    if (typeof options.outDir !== "string" || options.outDir.length === 0) {
        throw new LlamaVlmError("INVALID_OPTION", `Expected "outDir" to be a non-empty string, got ${options.outDir}`);
    }
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) {
        throw new LlamaVlmError("INVALID_OPTION", `Expected "seed" to be a safe integer >= 0, got ${seed}`);
    }
    const logitScale = options.logitScale ?? WEIGHT_DESIGN.defaultLogitScale;
    if (typeof logitScale !== "number" || !(logitScale > 0) || !Number.isFinite(logitScale)) {
        throw new LlamaVlmError("INVALID_OPTION", `Expected "logitScale" to be a finite number > 0, got ${logitScale}`);
    }
    if (options.vocabDir !== undefined && typeof options.vocabDir !== "string") {
        throw new LlamaVlmError("INVALID_OPTION", `Expected "vocabDir" to be a string, got ${typeof options.vocabDir}`);
    }
    if (options.onProgress !== undefined && typeof options.onProgress !== "function") {
        throw new LlamaVlmError("INVALID_OPTION", `Expected "onProgress" to be a function`);
    }
    return { family, size, outDir: options.outDir, seed, quant, logitScale, vocabDir: options.vocabDir };
}
