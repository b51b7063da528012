import type { NativeSampling } from "./backend/types.js";
import { LlamaVlmError } from "./errors.js";
import {
    DEFAULT_SAMPLER_ORDER,
    SAMPLER_NAMES,
    SAMPLING_ALIASES,
    SAMPLING_KEYS,
    SAMPLING_OPTIONS,
    type SamplerName,
    type SamplingOptions,
    type SamplingPayload,
    SCALAR_SAMPLING_OPTIONS,
} from "./options/sampling.js";
import { FLOAT32_MAX, resolveOptions, toNative } from "./options/table.js";
import { checkBoolean, checkNumber, checkObject, checkOneOf, checkString, INT32_MAX, invalid } from "./validate.js";

export type { NativeSampling, SamplerName, SamplingOptions, SamplingPayload };
export { DEFAULT_SAMPLER_ORDER, SAMPLER_NAMES, SAMPLING_ALIASES, SAMPLING_KEYS };

/**
 * llama.cpp parses GBNF and expands its rules recursively, on the calling thread's stack: nesting and rule
 * counts far past these (about 15,000 parentheses or 60,000 chained rules on an 8 MiB stack) overflow it and
 * crash the process. The limits leave room for smaller thread stacks (worker threads get 4 MiB).
 */
const GRAMMAR_MAX_NESTING = 1000;
const GRAMMAR_MAX_RULES = 10_000;

function checkGrammar(name: string, grammar: string): string {
    let depth = 0;
    let deepest = 0;
    let rules = 0;
    for (let i = 0; i < grammar.length; i++) {
        const c = grammar[i];
        if (c === '"' || c === "[") {
            const end = c === '"' ? '"' : "]";
            for (i++; i < grammar.length && grammar[i] !== end; i++) if (grammar[i] === "\\") i++;
        } else if (c === "#") {
            while (i < grammar.length && grammar[i] !== "\n") i++;
        } else if (c === "(") {
            deepest = Math.max(deepest, ++depth);
        } else if (c === ")") {
            depth = Math.max(0, depth - 1);
        } else if (c === ":" && grammar.startsWith("::=", i)) {
            rules++;
        }
    }
    if (deepest > GRAMMAR_MAX_NESTING) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `"${name}" gives a grammar that nests parentheses ${deepest} deep; at most ${GRAMMAR_MAX_NESTING} are allowed`,
        );
    }
    if (rules > GRAMMAR_MAX_RULES) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `"${name}" gives a grammar of ${rules} rules; at most ${GRAMMAR_MAX_RULES} are allowed`,
        );
    }
    return grammar;
}

function logitBiasPairs(value: unknown): number[] {
    const entries: Array<[unknown, unknown]> = Array.isArray(value)
        ? value.map((pair, i) => {
              if (!Array.isArray(pair) || pair.length !== 2)
                  throw invalid(`logitBias[${i}]`, "a [token, bias] pair", pair);
              return [pair[0], pair[1]] as [unknown, unknown];
          })
        : Object.entries(checkObject("logitBias", value)).map(([k, v]) => [Number(k), v] as [unknown, unknown]);
    const flat: number[] = [];
    for (const [token, bias] of entries) {
        checkNumber("logitBias token", token, { integer: true, min: 0, max: INT32_MAX });
        if (typeof bias !== "number" || !(bias === Number.NEGATIVE_INFINITY || Math.abs(bias) <= FLOAT32_MAX)) {
            throw invalid(`logitBias[${String(token)}]`, `-Infinity or a number of magnitude <= ${FLOAT32_MAX}`, bias);
        }
        flat.push(token as number, bias);
    }
    return flat;
}

/**
 * Validates sampling options and fills defaults: the scalar options by their table entries (lib/options/sampling.ts),
 * the special ones here. `contextSize` resolves the -1 ("whole context") settings; `schemaToGrammar` converts a JSON
 * schema. @internal
 */
export function resolveSampling(
    options: SamplingOptions,
    ctx: { contextSize: number; vocabSize?: number; schemaToGrammar: (schema: string) => string },
): SamplingPayload {
    const scalars = resolveOptions(SCALAR_SAMPLING_OPTIONS, options, { given: "present" });
    const o = { drySequenceBreakers: SAMPLING_OPTIONS.drySequenceBreakers.default, ...options };
    const out: SamplingPayload = {
        ...toNative(SCALAR_SAMPLING_OPTIONS, scalars, ctx),
        drySequenceBreakers: [],
        logitBias: o.logitBias === undefined ? [] : logitBiasPairs(o.logitBias),
        order: [...SAMPLING_OPTIONS.samplerOrder.default],
    };
    if (!Array.isArray(o.drySequenceBreakers))
        throw invalid("drySequenceBreakers", "an array of strings", o.drySequenceBreakers);
    out.drySequenceBreakers = o.drySequenceBreakers.map((b, i) => checkString(`drySequenceBreakers[${i}]`, b));
    if (ctx.vocabSize !== undefined) {
        for (let i = 0; i < out.logitBias.length; i += 2) {
            if (out.logitBias[i]! >= ctx.vocabSize) {
                throw invalid(
                    "logitBias token",
                    `a token id below the vocabulary size ${ctx.vocabSize}`,
                    out.logitBias[i],
                );
            }
        }
        const banned = new Set<number>();
        for (let i = 0; i < out.logitBias.length; i += 2) {
            if (out.logitBias[i + 1] === Number.NEGATIVE_INFINITY) banned.add(out.logitBias[i]!);
        }
        if (banned.size >= ctx.vocabSize) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `"logitBias" bans all ${ctx.vocabSize} tokens of the vocabulary: no token could be sampled`,
            );
        }
    }
    if (options.grammar !== undefined && options.jsonSchema !== undefined) {
        throw new LlamaVlmError("INVALID_OPTION", 'Give either "grammar" or "jsonSchema", not both');
    }
    if (options.grammar !== undefined)
        out.grammar = checkGrammar("grammar", checkString("grammar", options.grammar, { nonEmpty: true }));
    if (options.jsonSchema !== undefined) {
        const schema = checkObject("jsonSchema", options.jsonSchema);
        let grammar: string;
        try {
            grammar = ctx.schemaToGrammar(JSON.stringify(schema));
        } catch (err) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `"jsonSchema" could not be converted to a grammar: ${(err as Error).message}`,
                {
                    cause: err,
                },
            );
        }
        out.grammar = checkGrammar("jsonSchema", grammar);
    }
    if (options.samplerOrder !== undefined) {
        if (!Array.isArray(options.samplerOrder))
            throw invalid("samplerOrder", "an array of sampler names", options.samplerOrder);
        const seen = new Set<string>();
        out.order = options.samplerOrder.map((name, i) => {
            checkOneOf(`samplerOrder[${i}]`, name, SAMPLER_NAMES);
            if (seen.has(name)) throw invalid(`samplerOrder[${i}]`, "a sampler named only once", name);
            seen.add(name);
            return name;
        });
    }
    return out;
}

/**
 * Validates the request option `fastForward` against the resolved sampling: it needs a grammar (from `grammar` or
 * `jsonSchema`), since the grammar is what forces text. Default false. @internal
 */
export function checkFastForward(value: unknown, resolved: { grammar?: string }): boolean {
    const fastForward = value === undefined ? false : checkBoolean("fastForward", value);
    if (fastForward && resolved.grammar === undefined) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            '"fastForward" needs "grammar" or "jsonSchema": the grammar is what forces text',
        );
    }
    return fastForward;
}
