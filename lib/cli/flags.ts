/**
 * Command-line flags from the option tables (lib/options): an entry with a `cli` spec becomes a commander option whose
 * parser follows the entry's kind, and the parsed flags are read back as API options by key.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { type Entry, entriesOf, type OptionsOf, type Table } from "../options/table.js";

export function int(name: string, min?: number) {
    return (value: string): number => {
        const n = Number(value);
        if (!Number.isInteger(n) || (min !== undefined && n < min)) {
            throw new InvalidArgumentError(`${name} must be an integer${min === undefined ? "" : ` >= ${min}`}`);
        }
        return n;
    };
}

export function num(value: string): number {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError("must be a number");
    return n;
}

/** The flag's value parser, by the entry's kind (none: the flag's text, or true for a switch). */
function parserOf(entry: Entry, option: Option): ((value: string) => unknown) | undefined {
    const min = entry.cli?.min ?? entry.min;
    switch (entry.kind) {
        case "integer":
            return int(option.long!, min);
        case "number":
        case "float32":
            return num;
        case "one-of": {
            const values = entry.values ?? [];
            if (values.every((v) => typeof v === "number")) return int(option.long!, Math.min(...values));
            return undefined;
        }
        default:
            return undefined;
    }
}

function optionOf(entry: Entry, flag: string, help?: string): Option {
    const option = new Option(flag, help);
    const parse = parserOf(entry, option);
    if (parse) option.argParser(parse);
    if (entry.kind === "one-of" && !entry.values?.every((v) => typeof v === "number")) {
        option.choices((entry.values ?? []).map(String));
    }
    return option;
}

/**
 * Adds the flags of `table`'s options (those of `keys`, in that order; without `keys`, every one not on `cmd` yet, so
 * that a command can place some by hand in its --help and add the rest), each followed by its hidden aliases.
 */
export function addOptionFlags(cmd: Command, table: Table, keys?: readonly string[]): void {
    const entries = new Map(entriesOf(table));
    for (const key of keys ?? [...entries.keys()].filter((k) => entries.get(k)?.cli)) {
        const entry = entries.get(key);
        const cli = entry?.cli;
        if (!entry || !cli) throw new Error(`addOptionFlags: "${key}" has no CLI flag`);
        const option = optionOf(entry, cli.flag, cli.help);
        if (cmd.options.some((o) => o.long === option.long)) continue;
        if (cli.default !== undefined) option.default(cli.default === true ? entry.default : cli.default);
        if (cli.required) option.makeOptionMandatory();
        cmd.addOption(option);
        for (const hidden of cli.hidden ?? []) cmd.addOption(optionOf(entry, hidden).hideHelp());
    }
}

/** The options given by `table`'s flags, by option key. A hidden alias given wins over the flag (and its default). */
export function readOptionFlags<T extends Table>(table: T, parsed: Record<string, unknown>): Partial<OptionsOf<T>> {
    const out: Record<string, unknown> = {};
    for (const [key, entry] of entriesOf(table)) {
        if (!entry.cli) continue;
        let value = parsed[new Option(entry.cli.flag).attributeName()];
        for (const hidden of entry.cli.hidden ?? []) value = parsed[new Option(hidden).attributeName()] ?? value;
        if (value !== undefined) out[key] = value;
    }
    return out as Partial<OptionsOf<T>>;
}

/** Every long flag (hidden aliases included) of `table`'s options, by option key. */
export function flagsOf(table: Table): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [key, entry] of entriesOf(table)) {
        if (entry.cli) out[key] = [entry.cli.flag, ...(entry.cli.hidden ?? [])].map((f) => new Option(f).long!);
    }
    return out;
}
