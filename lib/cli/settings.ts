/**
 * The request flags of `extract` and `queue submit` (prompt, preset, sampler flags from the option tables) and their
 * reading into `ExtractSettings`, so that both commands take the same flags and ask the same of every image.
 */
import fs from "node:fs";
import { type Command, Option } from "commander";
import { DEFAULT_EXTRACT_PROMPT } from "../clinical.js";
import { type ExtractSettings, extractSettings } from "../extraction.js";
import { SAMPLING_OPTIONS } from "../options/sampling.js";
import { SAMPLER_NAMES, type SamplingOptions } from "../sampling.js";
import { addOptionFlags, int, readOptionFlags } from "./flags.js";

function collect(value: string, previous: string[] = []): string[] {
    return [...previous, value];
}

/** --prompt and --preset. */
export function addPromptFlags(cmd: Command): void {
    cmd.option("--prompt <text>", `instruction for every image (default: "${DEFAULT_EXTRACT_PROMPT}")`).addOption(
        new Option(
            "--preset <name>",
            "clinical: JSON of patient, conditions, medications, enforced by grammar",
        ).choices(["clinical"]),
    );
}

/**
 * The request's sampler flags: chat template, token limit, probabilities, stop strings, sampler order, grammar and
 * schema files, then every sampling option of the table (those not placed yet, in table order) and the reference
 * pipeline's names for them (hidden). `before` adds a command's own flags after the placed ones in --help.
 */
export function addSamplerFlags(cmd: Command, before?: (cmd: Command) => void): void {
    cmd.option("--chat-template <name>", "the model's own (default), a llama.cpp name such as vicuna, or Jinja source")
        .option(
            "-n, --n-predict <n>",
            "most tokens per image, -1 = until the context is full (alias --max-tokens)",
            int("--n-predict", -1),
            -1,
        )
        .option(
            "--n-probs <n>",
            "top-N probabilities per token; with --preset clinical gives a confidence per field",
            int("--n-probs", 0),
            0,
        )
        .option("--stop <text>", "stop string, matched exactly (repeatable; alias --stop-strings)", collect)
        .option("--fast-forward", "grammar fast-forward: decode the text the grammar forces without sampling it")
        .option("--no-fast-forward", "sample every token (fast-forward is on with --preset clinical)");
    addOptionFlags(cmd, SAMPLING_OPTIONS, ["penalizeNewline"]);
    cmd.option("--sampler-order <names>", `comma-separated: ${SAMPLER_NAMES.join(",")}`)
        .option("--grammar-file <file>", "GBNF grammar the output must follow")
        .option("--json-schema-file <file>", "JSON schema the output must follow");
    before?.(cmd);
    addOptionFlags(cmd, SAMPLING_OPTIONS);
    cmd.addOption(new Option("--max-tokens <n>").argParser(int("--max-tokens", -1)).hideHelp());
    cmd.addOption(new Option("--stop-strings <text>").argParser(collect).hideHelp());
}

/** The settings the flags of addPromptFlags and addSamplerFlags ask for. */
export function readSettingsFlags(o: Record<string, unknown>): ExtractSettings {
    const sampling: SamplingOptions = readOptionFlags(SAMPLING_OPTIONS, o);
    const samplerOrder = o.samplerOrder as string | undefined;
    if (samplerOrder)
        sampling.samplerOrder = samplerOrder.split(",").map((s) => s.trim()) as SamplingOptions["samplerOrder"];
    if (o.grammarFile) sampling.grammar = fs.readFileSync(o.grammarFile as string, "utf8");
    if (o.jsonSchemaFile)
        sampling.jsonSchema = JSON.parse(fs.readFileSync(o.jsonSchemaFile as string, "utf8")) as object;
    return extractSettings({
        ...(o.prompt !== undefined ? { prompt: o.prompt as string } : {}),
        ...(o.preset !== undefined ? { preset: o.preset as "clinical" } : {}),
        ...(o.chatTemplate !== undefined ? { chatTemplate: o.chatTemplate as string } : {}),
        maxTokens: (o.maxTokens as number | undefined) ?? (o.nPredict as number),
        stop: [...((o.stop as string[] | undefined) ?? []), ...((o.stopStrings as string[] | undefined) ?? [])],
        nProbs: o.nProbs as number,
        ...(o.fastForward !== undefined ? { fastForward: o.fastForward as boolean } : {}),
        sampling,
    });
}
