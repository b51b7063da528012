/**
 * `llama-vlm synth`: writes a synthetic model pair (see lib/synth) and prints the files and their sizes.
 */

import path from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import {
    describeModelPair,
    SYNTH_FAMILIES,
    SYNTH_QUANTS,
    SYNTH_SIZES,
    type SynthFamily,
    type SynthQuant,
    type SynthSize,
    synthModels,
    WEIGHT_DESIGN,
    writeModelPair,
} from "../synth/index.js";
import { type CliIo, formatBytes, ProgressBar } from "./io.js";

/** Files at least this big get a progress bar (on a terminal). */
const PROGRESS_BAR_MIN_BYTES = 32_000_000;

interface SynthOptions {
    family: SynthFamily;
    size: SynthSize;
    out: string;
    seed: number;
    quant?: SynthQuant;
    logitScale: number;
    dryRun?: boolean;
}

export function registerSynth(program: Command, io: CliIo): void {
    const available = synthModels()
        .map((m) => `  ${m.family.padEnd(12)} ${m.size.padEnd(6)} ${m.vision ? "text + projector" : "text only"}`)
        .join("\n");
    program
        .command("synth")
        .summary("write a synthetic (random-weight) model for tests and benchmarks")
        .description(
            "Writes a seeded synthetic GGUF model with the exact tensor layout llama.cpp expects, a real tokenizer " +
                "and chat template, and weights that make greedy decoding decisive and varied. The same options " +
                "always write byte-identical files.",
        )
        .addOption(new Option("--family <family>", "model family").choices(SYNTH_FAMILIES).makeOptionMandatory())
        .addOption(new Option("--size <size>", "model size").choices(SYNTH_SIZES).default("tiny"))
        .requiredOption("--out <dir>", "output folder (created when missing)")
        .option("--seed <n>", "seed of every random weight", parseSeed, 0)
        .addOption(
            new Option("--quant <type>", "text model matrices (default: q8_0 for tiny, q4_0 for 3b)").choices(
                SYNTH_QUANTS,
            ),
        )
        .option(
            "--logit-scale <nats>",
            "logit of the preferred next token",
            parsePositive,
            WEIGHT_DESIGN.defaultLogitScale,
        )
        .option("--dry-run", "print the files and sizes without writing them")
        .addHelpText("after", `\nAvailable models:\n${available}\n`)
        .action(async (options: SynthOptions) => {
            await runSynth(options, io);
        });
}

async function runSynth(options: SynthOptions, io: CliIo): Promise<void> {
    const request = {
        family: options.family,
        size: options.size,
        outDir: options.out,
        seed: options.seed,
        quant: options.quant,
        logitScale: options.logitScale,
    };
    const out = io.stdout;
    if (options.dryRun) {
        const pair = await describeModelPair(request);
        for (const f of pair.files) out.write(`${f.role.padEnd(9)} ${formatBytes(f.bytes).padStart(9)}  ${f.path}\n`);
        out.write(`total     ${formatBytes(pair.bytes).padStart(9)}  (dry run: nothing written)\n`);
        return;
    }
    const started = Date.now();
    let bar: ProgressBar | undefined;
    let current = "";
    const pair = await writeModelPair({
        ...request,
        onProgress: ({ role, path: file, bytesWritten, totalBytes }) => {
            if (file !== current) {
                current = file;
                bar?.clear();
                bar = undefined;
                if (out.isTTY && totalBytes >= PROGRESS_BAR_MIN_BYTES) {
                    bar = new ProgressBar(out, path.basename(file));
                } else if (!out.isTTY) {
                    out.write(`writing ${role} ${file} (${formatBytes(totalBytes)})\n`);
                }
            }
            bar?.update(bytesWritten, totalBytes);
        },
    });
    bar?.clear();
    for (const f of pair.files) out.write(`${f.role.padEnd(9)} ${formatBytes(f.bytes).padStart(9)}  ${f.path}\n`);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    out.write(`total     ${formatBytes(pair.bytes).padStart(9)}  written in ${seconds} s\n`);
}

function parseSeed(value: string): number {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
        throw new InvalidArgumentError("expected an integer from 0 to 2^53 - 1");
    }
    return n;
}

function parsePositive(value: string): number {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("expected a number > 0");
    return n;
}
