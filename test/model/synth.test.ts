import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliIo } from "../../lib/cli/io.js";
import { runCli } from "../../lib/cli/main.js";
import { GgufType, getMetadata, readGguf } from "../../lib/gguf/index.js";
import { type ModelPair, type SynthFamily, writeModelPair } from "../../lib/synth/index.js";
import { STANDARD_IMAGES, testImageFile } from "../helpers/images.js";
import { cachedModel, TINY_FAMILIES } from "../helpers/models.js";
import { parsePerf, runTool, type ToolResult } from "../helpers/tools.js";

const VISION_FAMILIES: readonly SynthFamily[] = ["qwen2.5-vl", "smolvlm"];
const N_PREDICT = 16;
/** Synthetic models only ever generate their active tokens: a space and 3 to 9 lowercase letters. */
const WORD = /^[a-z]{3,9}$/;

let tmp: string;
const images: Record<keyof typeof STANDARD_IMAGES, string> = { gradient: "", blocks: "" };

beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-synth-"));
    images.gradient = await testImageFile("gradient", STANDARD_IMAGES.gradient);
    images.blocks = await testImageFile("blocks", STANDARD_IMAGES.blocks);
});

afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Greedy generation with llama-mtmd-cli; returns the generated words and the tool's report. */
async function mtmdGenerate(pair: ModelPair, image: string) {
    const result = await runTool("llama-mtmd-cli", [
        ...["-m", pair.model, "--mmproj", pair.projector!, "--image", image],
        ...["-p", "Describe the image.", "-n", String(N_PREDICT), "--temp", "0"],
        ...["-c", "4096", "--no-warmup", "-t", "1", "-lv", "4"],
    ]);
    // stdout is a newline, the generated pieces, then a blank line; timings and logs go to stderr.
    return { ...result, words: result.stdout.trim().split(/\s+/).filter(Boolean), perf: parsePerf(result.stderr) };
}

/** A tool run, for a failure message: how it ended, its output and the tail of its log. */
function report(run: ToolResult): string {
    return [
        `exit code ${run.code}, signal ${run.signal}`,
        `stdout: ${JSON.stringify(run.stdout.slice(-2000))}`,
        `stderr (tail): ${run.stderr.slice(-3000)}`,
    ].join("\n");
}

function sha256(file: string): string {
    return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

describe.each(VISION_FAMILIES)("synthetic %s tiny pair", (family) => {
    it("runs in llama-mtmd-cli with an image and generates exactly 16 word tokens", async () => {
        const pair = await cachedModel(family);
        const run = await mtmdGenerate(pair, images.gradient);
        expect(run.code, report(run)).toBe(0);
        // 16 pieces, all active (word) tokens: no end-of-generation token cut the run short.
        expect(run.words, report(run)).toHaveLength(N_PREDICT);
        for (const word of run.words) expect(word).toMatch(WORD);
        // llama.cpp counts 15 decode runs for 16 generated tokens (see parsePerf).
        expect(run.perf?.decodeRuns).toBe(N_PREDICT - 1);
        // The image was encoded and decoded into the context.
        expect(run.stderr).toMatch(/image decoded \(batch 1\/1\)/);
        expect(run.perf!.promptTokens).toBeGreaterThan(20);
        // Varied output: the successor graph does not loop on a token.
        expect(new Set(run.words).size).toBeGreaterThanOrEqual(12);
    });

    it("continues differently for a different image", async () => {
        const pair = await cachedModel(family);
        const a = await mtmdGenerate(pair, images.gradient);
        const b = await mtmdGenerate(pair, images.blocks);
        expect(a.code, report(a)).toBe(0);
        expect(b.code, report(b)).toBe(0);
        expect(b.words, report(b)).toHaveLength(N_PREDICT);
        expect(b.words.join(" ")).not.toBe(a.words.join(" "));
    });
});

describe("synthetic llama tiny model (text only)", () => {
    it("runs in llama-completion and generates exactly 16 word tokens", async () => {
        const pair = await cachedModel("llama");
        expect(pair.projector).toBeUndefined();
        const args = [
            ...["-m", pair.model, "-p", "Tell me a story about a cat.", "-n", String(N_PREDICT), "--temp", "0"],
            ...["-c", "4096", "--no-warmup", "-t", "1", "-no-cnv", "--no-display-prompt"],
        ];
        // One run: llama-completion prints the generated text through common's logger, whose worker thread used
        // to lose the last lines at exit (once in CI: 11 of 16 words); patches/llama.cpp/0005 flushes it.
        const run = await runTool("llama-completion", args);
        expect(run.code, report(run)).toBe(0);
        expect(run.stdout).not.toContain("[end of text]");
        const words = run.stdout.trim().split(/\s+/);
        expect(words, report(run)).toHaveLength(N_PREDICT);
        for (const word of words) expect(word).toMatch(WORD);
        expect(parsePerf(run.stderr)?.decodeRuns).toBe(N_PREDICT - 1);
        expect(new Set(words).size).toBeGreaterThanOrEqual(12);
    });
});

describe("synthetic model factory", () => {
    it("writes byte-identical files for the same seed and different bytes for another seed", async () => {
        const write = (seed: number, dir: string) =>
            writeModelPair({ family: "qwen2.5-vl", seed, outDir: path.join(tmp, dir) });
        const first = await write(7, "a");
        const again = await write(7, "b");
        const other = await write(8, "c");
        for (const role of ["model", "projector"] as const) {
            const [f1, f2, f3] = [first, again, other].map((p) => p[role]!) as [string, string, string];
            expect(fs.statSync(f1).size).toBe(fs.statSync(f2).size);
            expect(sha256(f2)).toBe(sha256(f1));
            expect(sha256(f3)).not.toBe(sha256(f1));
        }
    });

    it("keeps every tiny pair under 32 MB", async () => {
        expect(TINY_FAMILIES).toEqual(["qwen2.5-vl", "smolvlm", "llama"]);
        for (const family of TINY_FAMILIES) {
            const pair = await cachedModel(family);
            const bytes = pair.files.reduce((sum, f) => sum + f.bytes, 0);
            expect(bytes).toBeLessThanOrEqual(32_000_000);
        }
    });

    it("gives qwen2.5-vl the M-RoPE sections, window attention pattern and Qwen2.5-VL special tokens", async () => {
        const pair = await cachedModel("qwen2.5-vl");
        const text = await readGguf(pair.model);
        expect(getMetadata(text, "general.architecture", GgufType.STRING)).toBe("qwen2vl");
        expect([
            ...(getMetadata(text, "qwen2vl.rope.dimension_sections", GgufType.ARRAY)!.values as Int32Array),
        ]).toEqual([2, 3, 3, 0]);
        const tokens = getMetadata(text, "tokenizer.ggml.tokens", GgufType.ARRAY)!.values as string[];
        expect(tokens[151652]).toBe("<|vision_start|>");
        expect(tokens[151655]).toBe("<|image_pad|>");
        expect(getMetadata(text, "tokenizer.ggml.eos_token_id", GgufType.UINT32)).toBe(151645);
        expect(getMetadata(text, "tokenizer.chat_template", GgufType.STRING)).toContain("<|vision_start|>");
        const projector = await readGguf(pair.projector!);
        expect(getMetadata(projector, "clip.projector_type", GgufType.STRING)).toBe("qwen2.5vl_merger");
        expect(getMetadata(projector, "clip.vision.n_wa_pattern", GgufType.UINT32)).toBe(2);
    });
});

describe("llama-vlm synth", () => {
    function capture(): CliIo & { out: () => string; err: () => string } {
        let out = "";
        let err = "";
        return {
            stdout: { write: (s: string) => (out += s), isTTY: false },
            stderr: { write: (s: string) => (err += s) },
            out: () => out,
            err: () => err,
        };
    }

    it("writes the requested model and prints its files and sizes", async () => {
        const io = capture();
        const dir = path.join(tmp, "cli");
        const code = await runCli(["synth", "--family", "llama", "--out", dir, "--seed", "3", "--quant", "q4_0"], io);
        expect(io.err()).toBe("");
        expect(code).toBe(0);
        const file = path.join(dir, "llama-tiny-q4_0-seed3.gguf");
        expect(fs.existsSync(file)).toBe(true);
        const size = fs.statSync(file).size;
        expect(io.out()).toMatch(new RegExp(`^model\\s+[\\d.]+ MB\\s+${file.replace(/[.\\]/g, "\\$&")}$`, "m"));
        expect(io.out()).toMatch(/^total\s+[\d.]+ MB\s+written in/m);
        const gguf = await readGguf(file, { readArrays: false });
        expect(gguf.fileSize).toBe(size);
        expect(gguf.tensors.find((t) => t.name === "blk.0.attn_q.weight")?.typeName).toBe("q4_0");
    });

    it("rejects an unknown family and a size the family does not have", async () => {
        const bad = capture();
        expect(await runCli(["synth", "--family", "gpt5", "--out", tmp], bad)).toBe(1);
        expect(bad.err()).toMatch(/Allowed choices are qwen2\.5-vl, smolvlm, llama/);
        const noSize = capture();
        expect(await runCli(["synth", "--family", "llama", "--size", "3b", "--out", tmp], noSize)).toBe(1);
        expect(noSize.err()).toMatch(/Family "llama" has no size "3b"/);
    });
});
