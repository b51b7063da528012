#!/usr/bin/env node
/**
 * The `llama-vlm` command. Each command lives in its own module with a `register<Name>(program, io)` function;
 * `runCli` is the whole CLI as a function, so tests run it in-process.
 */

import { readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { registerBench } from "./bench.js";
import { registerDemo } from "./demo.js";
import { registerExtract } from "./extract.js";
import { registerInfo } from "./info.js";
import { CliExit, type CliIo, processIo } from "./io.js";
import { registerModels } from "./models.js";
import { registerPull } from "./pull.js";
import { registerQueue } from "./queue.js";
import { registerSynth } from "./synth.js";
import { registerWorker } from "./worker.js";

const COMMANDS: readonly ((program: Command, io: CliIo) => void)[] = [
    registerExtract,
    (program, io) => registerDemo(program, io, runCli),
    registerInfo,
    registerBench,
    registerSynth,
    registerPull,
    registerModels,
    registerQueue,
    registerWorker,
];

/**
 * Runs the CLI with `argv` (the arguments after the program name) and resolves with the exit code. Never calls
 * `process.exit`; errors are printed to `io.stderr`.
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
    const program = new Command("llama-vlm")
        .description("Batched image-plus-prompt decoding for vision-language models, on llama.cpp.")
        .version(packageVersion(), "-V, --version")
        .exitOverride()
        .configureOutput({
            writeOut: (text) => io.stdout.write(text),
            writeErr: (text) => io.stderr.write(text),
        })
        .showHelpAfterError("(add --help for usage)");
    for (const register of COMMANDS) register(program, io);
    try {
        await program.parseAsync([...argv], { from: "user" });
        return 0;
    } catch (error) {
        // Help, version and usage errors: commander has printed what there is to say.
        if (error instanceof CommanderError) return error.exitCode;
        if (error instanceof CliExit) return error.exitCode;
        const message = error instanceof Error ? error.message : String(error);
        io.stderr.write(`llama-vlm: ${message}\n`);
        return 1;
    }
}

function packageVersion(): string {
    // lib/cli/ in a checkout, dist/cli/ in a package: the root is two levels up either way.
    const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "package.json");
    return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

function isMainModule(): boolean {
    const script = process.argv[1];
    if (script === undefined) return false;
    try {
        // npm installs the bin as a symlink: compare real paths.
        return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
    } catch {
        return false;
    }
}

if (isMainModule()) {
    runCli(process.argv.slice(2)).then(
        (code) => {
            process.exitCode = code;
        },
        (error: unknown) => {
            process.stderr.write(`llama-vlm: ${String(error)}\n`);
            process.exitCode = 1;
        },
    );
}
