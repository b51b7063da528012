/**
 * `llama-vlm extract`: one result per image, for a folder of scanned documents. Results are appended to
 * a JSONL file as each image finishes; a rerun with the same --out skips what is done (by path and
 * content hash). Ctrl-C cancels what is in flight without writing partial lines.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { type Command, Option } from "commander";
import { glob } from "tinyglobby";
import type { Context } from "../context.js";
import { LlamaVlmError } from "../errors.js";
import { type ExtractLine, type ExtractSettings, extractImage } from "../extraction.js";
import { loadModel, type Model } from "../model.js";
import { CONTEXT_OPTIONS } from "../options/context.js";
import { LOAD_OPTIONS } from "../options/load.js";
import { setLogger } from "../system.js";
import { addOptionFlags, readOptionFlags } from "./flags.js";
import { CliExit, type CliIo, formatCount, ProgressBar } from "./io.js";
import { resolveForCli } from "./pull.js";
import { addPromptFlags, addSamplerFlags, readSettingsFlags } from "./settings.js";

export type { ExtractLine };

/** Exit codes of `extract` (also in --help). */
export const EXIT = { ok: 0, failure: 1, partial: 2, interrupted: 130 } as const;

const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".gif", ".avif", ".svg"]);

/** The parsed flags: those below, and the option tables' flags (read with readOptionFlags). */
interface ExtractOptions extends Record<string, unknown> {
    out?: string;
    format: "jsonl" | "table" | "csv";
    quiet?: boolean;
    json?: boolean;
}

export function registerExtract(program: Command, io: CliIo): void {
    // The flags of API options come from the option tables (lib/options), placed here in --help by hand; the sampler
    // flags not placed come last, in table order.
    const cmd = program
        .command("extract")
        .summary("one result per image for files, folders or globs")
        .argument("<inputs...>", "image files, folders (searched recursively) or glob patterns");
    addOptionFlags(cmd, LOAD_OPTIONS, ["model", "projector"]);
    addPromptFlags(cmd);
    addOptionFlags(cmd, CONTEXT_OPTIONS, ["parallel"]);
    cmd.option("-o, --out <file>", "JSONL results, appended as images finish; a rerun skips what is done").addOption(
        new Option("--format <format>", "what to print on stdout").choices(["jsonl", "table", "csv"]).default("jsonl"),
    );
    addOptionFlags(cmd, CONTEXT_OPTIONS, ["contextSize"]);
    addOptionFlags(cmd, LOAD_OPTIONS, ["gpuLayers"]);
    addOptionFlags(cmd, CONTEXT_OPTIONS, ["threads"]);
    addSamplerFlags(cmd, (c) =>
        c.option("-q, --quiet", "no progress output").option("--json", "progress as plain lines (no bar)"),
    );
    cmd.addHelpText(
        "after",
        `
Exit codes: 0 all images done, 1 nothing could run (bad model, bad options), 2 some images failed (see their
"error" lines), 130 interrupted (Ctrl-C; finished images are kept, a rerun continues).

Examples:
  llama-vlm extract scans/ -m qwen2.5-vl-3b-q4_0.gguf --projector mmproj.gguf --out results.jsonl
  llama-vlm extract scans/ -m hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF --out results.jsonl
  llama-vlm extract 'scans/**/*.png' -m model.gguf --mmproj mmproj.gguf --preset clinical --n-probs 5 --out clinical.jsonl
  llama-vlm extract a.jpg b.jpg -m model.gguf --projector mmproj.gguf --chat-template vicuna --temp 0.05 \\
      --repeat-penalty 1.18 --repeat-last-n 256 --stop "</s>" --stop "User:" --format table`,
    );
    cmd.action(async (inputs: string[], raw: ExtractOptions) => {
        const code = await extract(inputs, raw, io);
        if (code !== 0) throw new CliExit(code);
    });
}

/** Files, folders (recursive) and globs → image files, sorted, without duplicates. */
export async function expandInputs(inputs: readonly string[]): Promise<string[]> {
    const files = new Set<string>();
    for (const input of inputs) {
        let stat: fs.Stats | undefined;
        try {
            stat = fs.statSync(input);
        } catch {
            stat = undefined;
        }
        if (stat?.isFile()) files.add(path.resolve(input));
        else if (stat?.isDirectory()) {
            for (const f of await glob("**/*", { cwd: input, absolute: true, onlyFiles: true })) {
                if (IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase())) files.add(path.resolve(f));
            }
        } else {
            const matches = await glob(input, { absolute: true, onlyFiles: true });
            if (matches.length === 0) throw new LlamaVlmError("FILE_NOT_FOUND", `No file matches ${input}`);
            for (const f of matches) files.add(path.resolve(f));
        }
    }
    return [...files].sort();
}

function sha256(file: string): string {
    return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Keys (path + content hash) of the images an earlier run already wrote. Torn last lines are ignored. */
export function doneKeys(outFile: string): Set<string> {
    const done = new Set<string>();
    if (!fs.existsSync(outFile)) return done;
    for (const line of fs.readFileSync(outFile, "utf8").split("\n")) {
        if (!line.trim()) continue;
        try {
            const row = JSON.parse(line) as ExtractLine;
            if (row.file && row.sha256) done.add(`${row.file}\n${row.sha256}`);
        } catch {
            // A line cut by a crash: the image is simply done again.
        }
    }
    return done;
}

async function extract(inputs: string[], o: ExtractOptions, io: CliIo): Promise<number> {
    // --model is required, and --parallel, --ctx-size and --gpu-layers have defaults: all four are always given.
    const { model: modelRef, projector: projectorRef, gpuLayers } = readOptionFlags(LOAD_OPTIONS, o);
    const { contextSize, parallel, threads } = readOptionFlags(CONTEXT_OPTIONS, o);
    const settings: ExtractSettings = readSettingsFlags(o);

    const files = await expandInputs(inputs);
    const outFile = o.out ? path.resolve(o.out) : undefined;
    const done = outFile ? doneKeys(outFile) : new Set<string>();
    const work: Array<{ file: string; sha256: string }> = [];
    let skipped = 0;
    const hashes = new Map<string, string>();
    for (const file of files) {
        let hash: string;
        try {
            hash = sha256(file);
        } catch {
            hash = "unreadable";
        }
        hashes.set(file, hash);
        if (done.has(`${file}\n${hash}`)) skipped++;
        else work.push({ file, sha256: hash });
    }

    const progressLines = !o.quiet;
    const bar =
        progressLines && !o.json && io.stderr.isTTY
            ? new ProgressBar(io.stderr, "images", { format: formatCount })
            : undefined;
    const say = (line: string) => {
        if (progressLines) io.stderr.write(`${line}\n`);
    };
    say(`extract: ${files.length} image(s), ${skipped} already in ${outFile ?? "the output"}, ${work.length} to do`);
    if (work.length === 0) {
        printSummary(io, o.format, outFile, []);
        return EXIT.ok;
    }

    setLogger((level, line) => {
        if (level === "error") say(`llama.cpp: ${line}`);
    }, "error");
    let model: Model;
    let context: Context;
    try {
        // hf: and URL references are fetched here, with their own progress display.
        const { model: modelPath, projector } = await resolveForCli(io, modelRef!, projectorRef, {
            prefix: "extract",
            ...(o.quiet ? { quiet: true } : {}),
        });
        model = await loadModel({
            model: modelPath,
            ...(projector ? { projector } : {}),
            gpuLayers,
            ...(threads ? { projectorOptions: { threads } } : {}),
        });
        context = await model.createContext({ contextSize, parallel, ...(threads ? { threads } : {}) });
    } catch (err) {
        io.stderr.write(`llama-vlm: ${(err as Error).message}\n`);
        return EXIT.failure;
    }

    const controller = new AbortController();
    let interrupted = false;
    const onSignal = () => {
        if (interrupted) return;
        interrupted = true;
        say("extract: interrupted; cancelling what is in flight (finished images are kept)");
        controller.abort();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);

    const fd = outFile ? fs.openSync(outFile, "a") : undefined;
    const lines: ExtractLine[] = [];
    const started = Date.now();
    let finished = 0;
    let failed = 0;
    let tokens = 0;
    const emit = (line: ExtractLine) => {
        lines.push(line);
        const text = `${JSON.stringify(line)}\n`;
        // One write per line: an interrupted run never leaves half a line.
        if (fd !== undefined) fs.writeSync(fd, text);
        else if (o.format === "jsonl") io.stdout.write(text);
    };
    const progress = () => {
        finished++;
        const elapsed = (Date.now() - started) / 1000;
        const eta = finished > 0 ? ((work.length - finished) * elapsed) / finished : 0;
        const tps = tokens / Math.max(elapsed, 1e-3);
        if (bar) bar.update(finished, work.length, `${tps.toFixed(1)} tokens/s, ETA ${eta.toFixed(0)} s`);
        else say(`extract: ${finished}/${work.length} images, ${tps.toFixed(1)} tokens/s, ETA ${eta.toFixed(0)} s`);
    };

    const runOne = async (item: { file: string; sha256: string }) => {
        try {
            const r = await extractImage(context, model, item.file, settings, { signal: controller.signal });
            if (r === undefined) return; // cancelled by Ctrl-C: not done, not written
            tokens += r.tokens;
            if (r.line.error) failed++;
            emit({ file: item.file, sha256: item.sha256, ...r.line });
        } catch (err) {
            const e = err instanceof LlamaVlmError ? err : new LlamaVlmError("NATIVE_ERROR", String(err));
            if (e.code === "ABORTED" && interrupted) return;
            failed++;
            emit({ file: item.file, sha256: item.sha256, error: { code: e.code, message: e.message } });
        } finally {
            if (!interrupted) progress();
        }
    };

    // Feed the context's slots from a bounded pool: `parallel` decoding and as many being prepared.
    let next = 0;
    const worker = async () => {
        while (!interrupted && next < work.length) await runOne(work[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(work.length, parallel! * 2) }, worker));

    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    bar?.clear();
    if (fd !== undefined) fs.closeSync(fd);
    await model.dispose();
    printSummary(io, o.format, outFile, lines);
    say(
        `extract: ${lines.length - failed} done, ${failed} failed, ${skipped} skipped` +
            (interrupted ? `, ${work.length - lines.length} left for a rerun` : "") +
            ` in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    if (interrupted) return EXIT.interrupted;
    return failed > 0 ? EXIT.partial : EXIT.ok;
}

function printSummary(io: CliIo, format: string, outFile: string | undefined, lines: ExtractLine[]): void {
    if (format === "jsonl") return; // already streamed (or in --out)
    const rows = [...lines]
        .sort((a, b) => a.file.localeCompare(b.file))
        .map((l) => ({
            file: path.basename(l.file),
            result: l.error
                ? `ERROR ${l.error.code}: ${l.error.message}`
                : (l.text ?? "").replace(/\s+/g, " ").slice(0, 80),
            stop: l.stopReason ?? "",
            tokens: String(l.timings?.generatedTokens ?? ""),
        }));
    if (format === "csv") {
        const esc = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
        io.stdout.write("file,stop_reason,tokens,result\n");
        for (const r of rows) io.stdout.write(`${[r.file, r.stop, r.tokens, r.result].map(esc).join(",")}\n`);
        return;
    }
    const w = Math.max(4, ...rows.map((r) => r.file.length));
    io.stdout.write(`${"file".padEnd(w)}  ${"stop".padEnd(7)}  ${"tok".padStart(4)}  result\n`);
    for (const r of rows)
        io.stdout.write(`${r.file.padEnd(w)}  ${r.stop.padEnd(7)}  ${r.tokens.padStart(4)}  ${r.result}\n`);
    if (outFile) io.stdout.write(`(all results in ${outFile})\n`);
}
