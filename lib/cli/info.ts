/**
 * `llama-vlm info`: what a GGUF file is — read from its header, nothing loaded — and, given a text model
 * and a projector, whether they are a pair.
 */
import path from "node:path";
import type { Command } from "commander";
import { LlamaVlmError } from "../errors.js";
import { type GgufFile, GgufType, ggmlTypeName, readGguf } from "../gguf/index.js";
import { isRemoteRef } from "../models/ref.js";
import { planModel, type ResolvedFile } from "../models/resolve.js";
import { checkPair, metaNumber, metaString } from "../preflight.js";
import { CliExit, type CliIo, formatBytes } from "./io.js";

export interface GgufSummary {
    file: string;
    kind: "text model" | "projector";
    architecture: string;
    name?: string;
    parameters: number;
    bytes: number;
    tensors: number;
    /** Tensor types by share of parameters, e.g. { q4_0: 0.93, f32: 0.01 }. */
    quantisation: Record<string, number>;
    contextLength?: number;
    embeddingLength?: number;
    layers?: number;
    vocabSize?: number;
    chatTemplate?: string;
    projectorType?: string;
    imageSize?: number;
    projectionDim?: number;
}

export function summarise(file: GgufFile): GgufSummary {
    const arch = metaString(file, "general.architecture") ?? "unknown";
    const byType = new Map<string, number>();
    let parameters = 0;
    for (const t of file.tensors) {
        parameters += t.elementCount;
        const name = ggmlTypeName(t.type);
        byType.set(name, (byType.get(name) ?? 0) + t.elementCount);
    }
    const quantisation = Object.fromEntries(
        [...byType]
            .sort((a, b) => b[1] - a[1])
            .map(([k, v]) => [k, Math.round((v / Math.max(parameters, 1)) * 1000) / 1000]),
    );
    const tokens = file.metadata.get("tokenizer.ggml.tokens");
    const summary: GgufSummary = {
        file: file.path,
        kind: arch === "clip" ? "projector" : "text model",
        architecture: arch,
        parameters,
        bytes: file.fileSize,
        tensors: file.tensors.length,
        quantisation,
    };
    const name = metaString(file, "general.name");
    if (name) summary.name = name;
    if (arch === "clip") {
        const type = metaString(file, "clip.projector_type") ?? metaString(file, "clip.vision.projector_type");
        if (type) summary.projectorType = type;
        const size = metaNumber(file, "clip.vision.image_size");
        if (size !== undefined) summary.imageSize = size;
        const dim = metaNumber(file, "clip.vision.projection_dim");
        if (dim !== undefined) summary.projectionDim = dim;
    } else {
        for (const [k, field] of [
            ["context_length", "contextLength"],
            ["embedding_length", "embeddingLength"],
            ["block_count", "layers"],
        ] as const) {
            const v = metaNumber(file, `${arch}.${k}`);
            if (v !== undefined) summary[field] = v;
        }
        if (tokens?.type === GgufType.ARRAY)
            summary.vocabSize = tokens.value === null ? tokens.length : tokens.value.values.length;
        const template = metaString(file, "tokenizer.chat_template");
        if (template) summary.chatTemplate = template;
    }
    return summary;
}

export function registerInfo(program: Command, io: CliIo): void {
    program
        .command("info")
        .summary("describe GGUF files and check a text model / projector pair")
        .argument(
            "<files...>",
            "GGUF files or references (hf:owner/repo[:quant], https://…); a text model and its projector are checked as a pair",
        )
        .option("--json", "print JSON")
        .option("--template", "print the whole chat template")
        .addHelpText(
            "after",
            "\nAn hf: reference shows the pair it resolves to (nothing is downloaded); files already in the model cache are described too.\n\n" +
                "Examples:\n  llama-vlm info model.gguf\n  llama-vlm info model.gguf mmproj.gguf --json\n  llama-vlm info hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF",
        )
        .action(async (args: string[], o: { json?: boolean; template?: boolean }) => {
            const read: GgufFile[] = [];
            const files: string[] = [];
            const references: { ref: string; files: ResolvedFile[] }[] = [];
            for (const arg of args) {
                if (!isRemoteRef(arg)) {
                    files.push(arg);
                    continue;
                }
                const planned = await planModel({ model: arg });
                references.push({ ref: arg, files: planned });
                if (!o.json) {
                    io.stdout.write(`${arg} resolves to:\n`);
                    for (const p of planned) {
                        io.stdout.write(
                            `  ${p.role}: ${p.ref}${p.quant ? ` (${p.quant})` : ""}, ${p.bytes !== undefined ? formatBytes(p.bytes) : "size unknown"}, ${p.cached ? `cached at ${p.path}` : `not downloaded (llama-vlm pull ${arg})`}\n`,
                        );
                    }
                }
                for (const p of planned) if (p.cached) files.push(p.path);
            }
            for (const f of files) {
                try {
                    read.push(await readGguf(f, { readArrays: 64 }));
                } catch (err) {
                    throw new LlamaVlmError("INVALID_MODEL", `${f}: ${(err as Error).message}`);
                }
            }
            const summaries = read.map(summarise);
            const texts = read.filter((_f, i) => summaries[i]!.kind === "text model");
            const projectors = read.filter((_f, i) => summaries[i]!.kind === "projector");
            let pair: { ok: boolean; message: string } | undefined;
            if (texts.length === 1 && projectors.length === 1) {
                try {
                    checkPair(texts[0]!, projectors[0]!);
                    pair = { ok: true, message: "the projector fits the text model" };
                } catch (err) {
                    pair = { ok: false, message: (err as Error).message };
                }
            }
            if (o.json) {
                io.stdout.write(
                    `${JSON.stringify({ files: summaries, ...(pair ? { pair } : {}), ...(references.length ? { references } : {}) }, null, 2)}\n`,
                );
            } else {
                for (const s of summaries) {
                    io.stdout.write(
                        `${path.basename(s.file)}: ${s.kind}, ${s.architecture}${s.name ? ` (${s.name})` : ""}\n`,
                    );
                    io.stdout.write(
                        `  parameters ${(s.parameters / 1e9).toFixed(3)} B, ${formatBytes(s.bytes)}, ${s.tensors} tensors\n`,
                    );
                    io.stdout.write(
                        `  types ${Object.entries(s.quantisation)
                            .map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`)
                            .join(", ")}\n`,
                    );
                    if (s.kind === "text model") {
                        io.stdout.write(
                            `  context ${s.contextLength ?? "?"}, embedding ${s.embeddingLength ?? "?"}, layers ${s.layers ?? "?"}, vocabulary ${s.vocabSize ?? "?"}\n`,
                        );
                        if (s.chatTemplate) {
                            io.stdout.write(
                                o.template
                                    ? `  chat template:\n${s.chatTemplate}\n`
                                    : `  chat template: ${s.chatTemplate.length} characters (--template prints it)\n`,
                            );
                        } else io.stdout.write("  chat template: none\n");
                    } else {
                        io.stdout.write(
                            `  projector ${s.projectorType ?? "?"}, image size ${s.imageSize ?? "?"}, projects to ${s.projectionDim ?? "?"}\n`,
                        );
                    }
                }
                if (pair) io.stdout.write(`pair: ${pair.ok ? "yes" : "NO"}: ${pair.message}\n`);
            }
            if (pair && !pair.ok) throw new CliExit(2);
        });
}
