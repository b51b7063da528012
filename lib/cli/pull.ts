/**
 * `llama-vlm pull <ref>`: downloads what a model reference means into the model cache (verified, resumable) and
 * prints the local paths. `resolveForCli` is the same resolution for the commands that load a model (extract,
 * bench): a reference's files are fetched with a progress display before the model loads.
 */
import type { Command } from "commander";
import { LlamaVlmError } from "../errors.js";
import type { DownloadProgress } from "../models/download.js";
import { type ResolvedModel, resolveModel } from "../models/resolve.js";
import { CliExit, type CliIo, formatBytes, ProgressBar } from "./io.js";

function duration(seconds: number): string {
    if (!Number.isFinite(seconds)) return "?";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/**
 * Shows download progress on `io.stderr`: a bar with bytes, rate and ETA on a terminal; otherwise a plain line per
 * 10 % (or per 5 s when the size is unknown) and one when a file is done.
 */
export function downloadReporter(
    io: CliIo,
    prefix = "pull",
): {
    onProgress: (p: DownloadProgress) => void;
    done: () => void;
} {
    let file: string | undefined;
    let bar: ProgressBar | undefined;
    let started = 0;
    let base = 0;
    let lastStep = -1;
    let lastLine = 0;
    const finish = (p?: DownloadProgress) => {
        bar?.clear();
        bar = undefined;
        if (file !== undefined && p !== undefined)
            io.stderr.write(`${prefix}: ${file} ${formatBytes(p.downloaded)} done\n`);
    };
    let last: DownloadProgress | undefined;
    return {
        onProgress(p) {
            if (p.file !== file) {
                if (file !== undefined) finish(last);
                file = p.file;
                started = Date.now();
                base = p.downloaded;
                lastStep = -1;
                lastLine = 0;
                if (p.resumedFrom > 0)
                    io.stderr.write(`${prefix}: ${p.file}: resuming at ${formatBytes(p.resumedFrom)}\n`);
                if (io.stderr.isTTY) bar = new ProgressBar(io.stderr, p.file);
            }
            last = p;
            const seconds = (Date.now() - started) / 1000;
            const rate = seconds > 0 ? (p.downloaded - base) / seconds : 0;
            const total = p.total ?? 0;
            const eta = rate > 0 && p.total !== undefined ? (p.total - p.downloaded) / rate : Number.NaN;
            const detail = `${formatBytes(rate)}/s  ETA ${duration(eta)}`;
            if (bar) {
                bar.update(p.downloaded, total, detail);
                return;
            }
            const now = Date.now();
            const step = p.total ? Math.floor((p.downloaded / p.total) * 10) : -1;
            const due = p.total ? step > lastStep : now - lastLine >= 5000;
            if (!due) return;
            lastStep = step;
            lastLine = now;
            const percent = p.total ? `${Math.floor((p.downloaded / p.total) * 100)}% ` : "";
            io.stderr.write(
                `${prefix}: ${p.file} ${percent}${formatBytes(p.downloaded)}${p.total ? ` / ${formatBytes(p.total)}` : ""}, ${detail}\n`,
            );
        },
        done() {
            finish(last);
            file = undefined;
        },
    };
}

/** Resolves a command's --model/--projector, downloading with progress on stderr unless `quiet`. */
export async function resolveForCli(
    io: CliIo,
    model: string,
    projector: string | undefined,
    options: { quiet?: boolean; offline?: boolean; refresh?: boolean; signal?: AbortSignal; prefix?: string } = {},
): Promise<ResolvedModel> {
    const reporter = options.quiet ? undefined : downloadReporter(io, options.prefix);
    try {
        return await resolveModel({
            model,
            projector,
            ...(options.offline !== undefined ? { offline: options.offline } : {}),
            ...(options.refresh ? { refresh: true } : {}),
            ...(options.signal ? { signal: options.signal } : {}),
            ...(reporter ? { onProgress: reporter.onProgress } : {}),
        });
    } finally {
        reporter?.done();
    }
}

export function registerPull(program: Command, io: CliIo): void {
    program
        .command("pull")
        .summary("download a model reference's files into the model cache and print their paths")
        .argument("<ref>", "hf:owner/repo[:quant|/file.gguf][@revision] or an https:// URL")
        .option("--projector <ref>", "projector to fetch instead of the repository's own (hf:…, a URL or a path)")
        .option("--offline", "use only the cache (also HF_HUB_OFFLINE=1)")
        .option("-q, --quiet", "no progress output")
        .option("--json", "print the resolved files as JSON")
        .addHelpText(
            "after",
            `
Without a quantisation an hf: reference takes Q4_K_M (else the next 4-bit file: Q4_K_S, Q4_0, IQ4_XS, IQ4_NL, Q4_1,
then Q5_K_M, Q8_0) and the repository's projector (mmproj*.gguf, F16 first). Files are checked against the sha256
the Hub publishes; an interrupted download resumes where it stopped. The cache is ~/.cache/llama-vlm/models
(LLAMA_VLM_MODELS overrides); HF_ENDPOINT sets the Hub's address, HF_TOKEN is sent for private or gated repositories.

Exit codes: 0 done, 1 failed (the message says why; a network failure keeps what arrived and a rerun resumes it),
130 interrupted (Ctrl-C; the partial download is kept and a rerun resumes it).

Examples:
  llama-vlm pull hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF
  llama-vlm pull hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q8_0
  llama-vlm pull hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF/Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf@main --json
  llama-vlm pull https://example.com/models/model.gguf`,
        )
        .action(async (ref: string, o: { projector?: string; offline?: boolean; quiet?: boolean; json?: boolean }) => {
            const controller = new AbortController();
            const onSignal = () => controller.abort();
            process.once("SIGINT", onSignal);
            try {
                const resolved = await resolveForCli(io, ref, o.projector, {
                    ...(o.quiet ? { quiet: true } : {}),
                    ...(o.offline ? { offline: true } : {}),
                    refresh: true,
                    signal: controller.signal,
                });
                if (o.json) {
                    io.stdout.write(`${JSON.stringify(resolved, null, 2)}\n`);
                } else {
                    for (const f of resolved.files) {
                        io.stdout.write(`${f.role}: ${f.path}\n`);
                        if (!o.quiet) {
                            io.stderr.write(
                                `pull: ${f.role} ${f.ref}${f.quant ? ` (${f.quant})` : ""}, ${f.bytes !== undefined ? formatBytes(f.bytes) : "size unknown"}, verified by ${f.verifiedBy}\n`,
                            );
                        }
                    }
                }
            } catch (error) {
                if (controller.signal.aborted && error instanceof LlamaVlmError && error.code === "ABORTED") {
                    io.stderr.write(`llama-vlm: ${error.message}\n`);
                    throw new CliExit(130);
                }
                throw error;
            } finally {
                process.off("SIGINT", onSignal);
            }
        });
}
