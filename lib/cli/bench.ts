/**
 * `llama-vlm bench`: like llama-bench, for vision-language models — generation and image throughput per
 * `--parallel` value, optionally next to llama.cpp's own llama-batched-bench measured in the same run.
 */
import { type Command, InvalidArgumentError } from "commander";
import { formatBench, runBench } from "../bench.js";
import { formatPhaseBench, runPhaseBench } from "../bench-phases.js";
import { setLogger } from "../system.js";
import type { CliIo } from "./io.js";
import { resolveForCli } from "./pull.js";

function list(value: string): number[] {
    const ns = value.split(",").map((v) => Number(v.trim()));
    if (ns.some((n) => !Number.isInteger(n) || n < 1))
        throw new InvalidArgumentError("a comma-separated list of integers >= 1");
    return ns;
}
function sizes(value: string): Array<[number, number]> {
    return value.split(",").map((v) => {
        const m = /^(\d+)x(\d+)$/.exec(v.trim());
        if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
            throw new InvalidArgumentError("a comma-separated list of sizes like 448x448,1000x1400");
        return [Number(m[1]), Number(m[2])] as [number, number];
    });
}
function int(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("an integer >= 1");
    return n;
}

export function registerBench(program: Command, io: CliIo): void {
    program
        .command("bench")
        .summary("generation and image throughput per --parallel value")
        .requiredOption("-m, --model <ref>", "text model GGUF: a path, hf:owner/repo[:quant] or an https:// URL")
        .option(
            "--projector <ref>",
            "vision projector (mmproj) GGUF; an hf: model finds its own; without one only text generation is measured",
        )
        .option("--parallel <list>", "parallel values", list, [1, 2, 4])
        .option("--images <n>", "image requests per slot (N × n requests per parallel value)", int, 2)
        .option("--image-size <w>x<h>", "image size", "448x448")
        .option("--n-gen <n>", "tokens generated per image request", int, 256)
        .option("--n-prompt <n>", "prompt tokens per sequence in the text benchmark", int, 128)
        .option("--n-gen-text <n>", "tokens generated per sequence in the text benchmark", int, 64)
        .option("--runs <n>", "runs per text measurement (median)", int, 3)
        .option("-t, --threads <n>", "threads (default: physical cores)", int)
        .option("--compare-llama-cpp", "also run the vendored llama-batched-bench and print ratios")
        .option(
            "--phases [sizes]",
            "instead: one request at a time, encode / image prefill / text prefill / generation against the vendored " +
                "llama-mtmd-cli, interleaved fresh processes, per image size (default 448x448,1000x1400; 64 tokens unless --n-gen)",
        )
        .option("--json", "print JSON")
        .addHelpText(
            "after",
            "\nExamples:\n  llama-vlm bench -m model.gguf --projector mmproj.gguf --parallel 1,2,4 --compare-llama-cpp\n" +
                "  llama-vlm bench -m hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF --parallel 1,4\n" +
                "  llama-vlm synth --family qwen2.5-vl --size 3b --out m3b && llama-vlm bench -m m3b/qwen2.5-vl-3b-q4_0-seed0.gguf --json\n" +
                "  llama-vlm bench -m model.gguf --projector mmproj.gguf --phases 448x448,1000x1400 --runs 3",
        )
        .action(async (o: Record<string, unknown>, cmd: Command) => {
            setLogger(null);
            const { model, projector } = await resolveForCli(io, o.model as string, o.projector as string | undefined, {
                prefix: "bench",
            });
            if (o.phases !== undefined) {
                if (!projector) throw new InvalidArgumentError("--phases needs --projector");
                const report = await runPhaseBench({
                    model,
                    projector,
                    imageSizes:
                        o.phases === true
                            ? [
                                  [448, 448],
                                  [1000, 1400],
                              ]
                            : sizes(String(o.phases)),
                    runs: o.runs as number,
                    generate: cmd.getOptionValueSource("nGen") === "cli" ? (o.nGen as number) : 64,
                    ...(o.threads ? { threads: o.threads as number } : {}),
                    log: (line) => io.stderr.write(`bench: ${line}\n`),
                });
                io.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatPhaseBench(report)}\n`);
                return;
            }
            const [w, h] = String(o.imageSize).split("x").map(Number);
            if (!w || !h) throw new InvalidArgumentError("--image-size must look like 448x448");
            const report = await runBench({
                model,
                ...(projector ? { projector } : {}),
                parallel: o.parallel as number[],
                imagesPerSlot: o.images as number,
                imageSize: [w, h],
                imageGenerate: o.nGen as number,
                promptTokens: o.nPrompt as number,
                textGenerate: o.nGenText as number,
                runs: o.runs as number,
                ...(o.threads ? { threads: o.threads as number } : {}),
                compareLlamaCpp: Boolean(o.compareLlamaCpp),
                log: (line) => io.stderr.write(`bench: ${line}\n`),
            });
            io.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatBench(report)}\n`);
        });
}
