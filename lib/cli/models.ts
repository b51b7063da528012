/** `llama-vlm models`: what the model cache holds; `llama-vlm models rm <ref>` deletes from it. */
import type { Command } from "commander";
import { cacheRoot } from "../models/cache.js";
import { listCachedModels, removeCachedModel } from "../models/resolve.js";
import { type CliIo, formatBytes } from "./io.js";

export function registerModels(program: Command, io: CliIo): void {
    const models = program
        .command("models")
        .summary("list the model cache with sizes; `models rm <ref>` deletes")
        .option("--json", "print JSON")
        .addHelpText(
            "after",
            `
The cache is ~/.cache/llama-vlm/models (LLAMA_VLM_MODELS overrides). Partial downloads are not listed.

Examples:
  llama-vlm models
  llama-vlm models rm hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q8_0
  llama-vlm models rm hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF`,
        )
        .action(async (o: { json?: boolean }) => {
            const entries = await listCachedModels();
            const total = entries.reduce((sum, e) => sum + e.bytes, 0);
            if (o.json) {
                io.stdout.write(`${JSON.stringify({ root: cacheRoot(), files: entries, bytes: total }, null, 2)}\n`);
                return;
            }
            if (entries.length === 0) {
                io.stdout.write(`${cacheRoot()}: empty\n`);
                return;
            }
            for (const e of entries) {
                const revisions = e.revisions.length ? `  (${e.revisions.join(", ")})` : "";
                io.stdout.write(`${formatBytes(e.bytes).padStart(9)}  ${e.ref}${revisions}\n`);
            }
            io.stdout.write(`${formatBytes(total).padStart(9)}  total in ${cacheRoot()}\n`);
        });
    models
        .command("rm")
        .summary("delete cached files")
        .argument("<ref>", "hf:owner/repo (all of it), hf:owner/repo:QUANT, hf:owner/repo/file.gguf[@commit] or a URL")
        .addHelpText(
            "after",
            "\nExamples:\n  llama-vlm models rm hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M\n  llama-vlm models rm hf:owner/repo/mmproj-f16.gguf",
        )
        .action(async (ref: string) => {
            for (const file of await removeCachedModel(ref)) io.stdout.write(`removed ${file}\n`);
        });
}
