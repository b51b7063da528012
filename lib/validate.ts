import { LlamaVlmError } from "./errors.js";

/** Validation helpers: every message names the option, the value and what is allowed. @internal */

function show(value: unknown): string {
    if (typeof value === "string") return JSON.stringify(value);
    if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) {
        return String(value);
    }
    if (Array.isArray(value)) return `an array of ${value.length}`;
    return typeof value;
}

export function invalid(name: string, expected: string, value: unknown): LlamaVlmError {
    return new LlamaVlmError("INVALID_OPTION", `Expected "${name}" to be ${expected}, got ${show(value)}`);
}

export function checkNumber(
    name: string,
    value: unknown,
    opts: { min?: number; max?: number; integer?: boolean } = {},
) {
    const { min, max, integer } = opts;
    const kind = integer ? "an integer" : "a number";
    const range =
        min !== undefined && max !== undefined
            ? ` between ${min} and ${max}`
            : min !== undefined
              ? ` >= ${min}`
              : max !== undefined
                ? ` <= ${max}`
                : "";
    if (
        typeof value !== "number" ||
        !Number.isFinite(value) ||
        (integer && !Number.isInteger(value)) ||
        (min !== undefined && value < min) ||
        (max !== undefined && value > max)
    ) {
        throw invalid(name, `${kind}${range}`, value);
    }
    return value;
}

/** Largest value of the int32 fields llama.cpp takes: larger integers would wrap around in the native conversion. */
export const INT32_MAX = 2 ** 31 - 1;

/** ggml's GGML_MAX_N_THREADS: a thread pool asked for more crashes the process. */
export const MAX_THREADS = 512;

/**
 * Text for the model: a string of well-formed UTF-16 with no NUL character. A lone surrogate would reach the
 * model as U+FFFD (the UTF-8 conversion replaces it), and llama.cpp's built-in chat templates take text as C
 * strings, which a NUL would cut short: both are refused, naming where they are.
 */
export function checkText(name: string, value: unknown): string {
    const text = checkString(name, value);
    const nul = text.indexOf("\0");
    if (nul >= 0) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `"${name}" has a NUL character at index ${nul}; llama.cpp takes text as C strings, which would end there`,
        );
    }
    const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.exec(text);
    if (lone !== null) {
        const unit = lone[0].charCodeAt(0).toString(16).toUpperCase();
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `"${name}" has a lone UTF-16 surrogate (U+${unit}) at index ${lone.index}: it is not Unicode text and would reach the model as U+FFFD`,
        );
    }
    return text;
}

export function checkBoolean(name: string, value: unknown): boolean {
    if (typeof value !== "boolean") throw invalid(name, "a boolean", value);
    return value;
}

export function checkString(name: string, value: unknown, opts: { nonEmpty?: boolean } = {}): string {
    if (typeof value !== "string" || (opts.nonEmpty && value.length === 0)) {
        throw invalid(name, opts.nonEmpty ? "a non-empty string" : "a string", value);
    }
    return value;
}

export function checkOneOf<T extends string | number>(name: string, value: unknown, allowed: readonly T[]): T {
    if (!allowed.includes(value as T))
        throw invalid(name, `one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`, value);
    return value as T;
}

/** Edit distance, for "did you mean" hints on misspelled option names. */
function distance(a: string, b: string): number {
    const x = a.toLowerCase();
    const y = b.toLowerCase();
    const row = Array.from({ length: y.length + 1 }, (_, i) => i);
    for (let i = 1; i <= x.length; i++) {
        let prev = row[0]!;
        row[0] = i;
        for (let j = 1; j <= y.length; j++) {
            const tmp = row[j]!;
            row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (x[i - 1] === y[j - 1] ? 0 : 1));
            prev = tmp;
        }
    }
    return row[y.length]!;
}

/** Throws for any key of `options` not in `known`, suggesting the closest known name. */
export function checkKnownKeys(where: string, options: object, known: Iterable<string>): void {
    const names = [...known];
    for (const key of Object.keys(options)) {
        if (names.includes(key)) continue;
        const best = names
            .map((n) => ({ n, d: distance(key, n) }))
            .sort((a, b) => a.d - b.d)
            .find((c) => c.d <= Math.max(2, Math.floor(c.n.length / 3)));
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `Unknown option "${key}" in ${where}${best ? ` (did you mean "${best.n}"?)` : ""}`,
        );
    }
}

export function checkObject(name: string, value: unknown): Record<string, unknown> {
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid(name, "an object", value);
    return value as Record<string, unknown>;
}
