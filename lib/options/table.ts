/**
 * Option tables: each option group (load, context, sampling, image budget) is one object literal whose keys are the
 * option names, each with a JSDoc comment (the public documentation) and an entry saying what the option is: kind,
 * default, range, CLI flag. The public option types, the validation, the key lists and the CLI flags are derived from
 * the tables, so an option is described once.
 *
 * Type note: a homomorphic mapped type over a table (`OptionsOf`) keeps each key's JSDoc, so the derived public types
 * show the table's comments in editors and in the emitted `.d.ts`.
 * @internal
 */
import { LlamaVlmError } from "../errors.js";
import { checkBoolean, checkNumber, checkOneOf, checkString, invalid } from "../validate.js";

/** What a value is: the kind picks the validator (and the CLI flag's parser). */
export type Kind = "integer" | "number" | "float32" | "boolean" | "one-of" | "string" | "special";

/** How an option is given to `llama-vlm extract`. */
export interface CliFlag {
    /** Commander's flag syntax: `"-c, --ctx-size <n>"`, or `"--penalize-nl"` for a switch (a boolean set to true). */
    readonly flag: string;
    readonly help: string;
    /** Other names of the flag (the reference pipeline's, llama.cpp's), accepted and left out of --help. */
    readonly hidden?: readonly string[];
    /** Smallest value the flag takes, where the command line allows less than the API. Default: the option's `min`. */
    readonly min?: number;
    /** Passed (and shown in --help) when the flag is not given: a value, or true for the option's default. */
    readonly default?: number | true;
    /** The command refuses to run without the flag. */
    readonly required?: true;
}

/** Facts a default may depend on, given by the caller (lib/options imports nothing that would load the addon). */
export interface OptionEnv {
    physicalCores(): number;
}

/** What a payload conversion may depend on: the context a request runs on. */
export interface PayloadContext {
    /** Tokens a sequence holds. */
    contextSize: number;
    vocabSize?: number;
}

/** One option. `T` is its value type (what the public option type says), `R` what validating it gives. */
export interface Entry<T = unknown, R = T> {
    readonly kind: Kind;
    /** Taken when the option is not given. Without one, an option not given is left out (see `required`). */
    readonly default?: T;
    /** The default, where it depends on options earlier in the table or on the machine. */
    defaultFrom?(resolved: Readonly<Record<string, unknown>>, env: OptionEnv): T;
    /** Not given is an error (the kind's own message, "got undefined"). */
    readonly required?: true;
    /** Range of integer, number and float32 options, inclusive. */
    readonly min?: number;
    readonly max?: number;
    /** one-of: the values allowed, in the order the error message lists them. */
    readonly values?: readonly T[];
    /** string: "" is refused. */
    readonly nonEmpty?: true;
    /** Values taken as they are besides the kind's own (`"auto"`). */
    readonly or?: readonly T[];
    /** special: validates the value and returns it; `name` is what its messages call the option. */
    check?(name: string, value: unknown, env: OptionEnv): R;
    /** A further check, run after every option of the table passed its kind and range check. */
    refine?(name: string, value: R, resolved: Readonly<Record<string, unknown>>): void;
    /** How the validated value becomes the native payload's, where not as it is (clamps, "-1 = the context"). */
    toNative?(value: T, ctx: PayloadContext): T;
    readonly cli?: CliFlag;
    /** Type only (never set): carry `T` and `R`. */
    readonly __value?: T;
    readonly __resolved?: R;
}

/** Another name of option `of` (the reference pipeline's): giving both is an error. */
export interface Alias<K extends string = string> {
    readonly kind: "alias";
    readonly of: K;
}

export type Table = { readonly [key: string]: Entry | Alias };

type ValueOf<T, E> =
    E extends Alias<infer K>
        ? K extends keyof T
            ? ValueOf<T, T[K]>
            : never
        : E extends { readonly __value?: infer V }
          ? V
          : never;
type ResolvedValueOf<E> = E extends { readonly __resolved?: infer R } ? R : never;
type IsRequired<E> = E extends { required: true } ? true : false;
type IsAlways<E> = E extends { default: unknown } | { defaultFrom: unknown } | { required: true } ? true : false;

/** The public options type of a table: each key (aliases included) with its entry's value type and JSDoc. */
export type OptionsOf<T> = {
    -readonly [K in keyof T as IsRequired<T[K]> extends true ? never : K]?: ValueOf<T, T[K]>;
} & {
    -readonly [K in keyof T as IsRequired<T[K]> extends true ? K : never]-?: ValueOf<T, T[K]>;
};

/** The public options type without the aliases (for groups whose aliases live elsewhere). */
export type OptionsWithoutAliasesOf<T> = {
    -readonly [K in keyof T as T[K] extends Alias ? never : K]?: ValueOf<T, T[K]>;
};

/** What `resolveOptions` returns: every option (no aliases) validated, defaults filled in. */
export type ResolvedOf<T> = {
    -readonly [K in keyof T as T[K] extends Alias ? never : IsAlways<T[K]> extends true ? K : never]: ResolvedValueOf<
        T[K]
    >;
} & {
    -readonly [K in keyof T as T[K] extends Alias ? never : IsAlways<T[K]> extends true ? never : K]?: ResolvedValueOf<
        T[K]
    >;
};

type Spec<T, R = T> = Omit<Entry<T, R>, "kind" | "__value" | "__resolved">;
/** What the type of a built entry keeps of its spec: whether it has a default or is required. */
type Marks<S> = Pick<S, Extract<keyof S, "default" | "defaultFrom" | "required">>;
type OrOf<S> = S extends { or: readonly (infer A)[] } ? A : never;
/** A built entry's type: its value type, its kind and what it keeps of its spec. */
type Built<T, K extends Kind, S = unknown, R = T> = Entry<T, R> & { readonly kind: K } & Marks<S>;

export const integer = <const S extends Omit<Spec<number>, "or"> & { readonly or?: readonly string[] }>(
    spec: S,
): Built<number | OrOf<S>, "integer", S> => ({ kind: "integer", ...spec }) as Built<number | OrOf<S>, "integer", S>;
export const number = <S extends Spec<number>>(spec: S): Built<number, "number", S> => ({ kind: "number", ...spec });
/** A real number the native side takes as a C float: a larger magnitude than FLOAT32_MAX would become ±Infinity. */
export const float32 = <S extends Spec<number>>(spec: S): Built<number, "float32", S> => ({ kind: "float32", ...spec });
export const boolean = <S extends Spec<boolean>>(spec: S): Built<boolean, "boolean", S> => ({
    kind: "boolean",
    ...spec,
});
export const oneOf = <const V extends string | number, S extends Spec<V>>(
    values: readonly V[],
    spec: S,
): Built<V, "one-of", S> => ({ kind: "one-of", values, ...spec });
export const string = <S extends Spec<string>>(spec: S): Built<string, "string", S> => ({ kind: "string", ...spec });

/**
 * An option the kinds do not describe: its `check` validates it (or, without one, code beside the table does). `R`:
 * what the check gives, where it is not the value as given (a nested group with its defaults filled in).
 */
export function special<T, R = T>(
    spec: Spec<T, R> & { readonly default: T },
): Built<T, "special", { readonly default: T }, R>;
export function special<T, R = T>(spec: Spec<T, R>): Built<T, "special", unknown, R>;
export function special<T, R = T>(spec: Spec<T, R>): Built<T, "special", unknown, R> {
    return { kind: "special", ...spec };
}
export const alias = <K extends string>(of: K): Alias<K> => ({ kind: "alias", of });

export const FLOAT32_MAX = 3.4028234663852886e38;

export function isAlias(entry: Entry | Alias): entry is Alias {
    return entry.kind === "alias";
}

/** What resolveOptions needs of a table, worked out once per table (tables are constants; requests are many). */
interface Derived {
    entries: [string, Entry][];
    aliases: Record<string, string>;
    defaults: Record<string, unknown>;
    /** option → the aliases that name it. */
    aliasesByOption: Map<string, string[]>;
}
const derived = new WeakMap<Table, Derived>();

function derive(table: Table): Derived {
    let d = derived.get(table);
    if (d === undefined) {
        const entries = Object.entries(table).filter((e): e is [string, Entry] => !isAlias(e[1]));
        const aliases = Object.fromEntries(
            Object.entries(table).flatMap(([key, e]) => (isAlias(e) ? [[key, e.of] as [string, string]] : [])),
        );
        const aliasesByOption = new Map<string, string[]>();
        for (const [alias, of] of Object.entries(aliases))
            aliasesByOption.set(of, [...(aliasesByOption.get(of) ?? []), alias]);
        const defaults = Object.fromEntries(entries.flatMap(([k, e]) => ("default" in e ? [[k, e.default]] : [])));
        d = { entries, aliases, defaults, aliasesByOption };
        derived.set(table, d);
    }
    return d;
}

/** A table's entries, aliases left out. */
export function entriesOf(table: Table): [string, Entry][] {
    return derive(table).entries;
}

/** Every name a table takes, aliases included, in table order: what `checkKnownKeys` and the bad-input corpus use. */
export function keysOf(table: Table): string[] {
    return Object.keys(table);
}

/** alias → the option it names. */
export function aliasesOf(table: Table): Record<string, string> {
    return { ...derive(table).aliases };
}

/** The static defaults, by option. */
export function defaultsOf(table: Table): Record<string, unknown> {
    return { ...derive(table).defaults };
}

const NO_ENV: OptionEnv = {
    physicalCores() {
        throw new Error("resolveOptions: this table's defaults need an OptionEnv");
    },
};

/** Validates one value by its entry's kind and range (a value in `or` is taken as it is). */
export function checkEntry(name: string, entry: Entry, value: unknown, env: OptionEnv = NO_ENV): unknown {
    if (entry.or?.includes(value)) return value;
    const range = { min: entry.min, max: entry.max };
    switch (entry.kind) {
        case "integer":
            return checkNumber(name, value, { ...range, integer: true });
        case "number":
        case "float32":
            return checkNumber(name, value, range);
        case "boolean":
            return checkBoolean(name, value);
        case "one-of":
            return checkOneOf(name, value, entry.values as readonly (string | number)[]);
        case "string":
            return checkString(name, value, entry.nonEmpty ? { nonEmpty: true } : {});
        case "special":
            return entry.check ? entry.check(name, value, env) : value;
    }
}

export interface ResolveHow {
    /**
     * "present": an option is given when its key is present, even as undefined (`{ ...defaults, ...options }`);
     * "nullish": undefined or null take the default (an option without a default is left out only when undefined).
     */
    readonly given: "present" | "nullish";
    /** Prefix of the names in messages ("fitFor."). */
    readonly prefix?: string;
    readonly env?: OptionEnv;
}

/**
 * Validates `options` against `table` in table order: each option's kind and range (an alias given with its option is
 * refused), then each `refine`, then the float32 magnitudes. Unknown keys are the caller's to check first.
 */
export function resolveOptions<T extends Table>(table: T, options: object, how: ResolveHow): ResolvedOf<T> {
    const raw = options as Record<string, unknown>;
    const { entries, defaults, aliasesByOption } = derive(table);
    const given = how.given === "present" ? { ...defaults, ...raw } : raw;
    const prefix = how.prefix ?? "";
    const out: Record<string, unknown> = {};
    for (const [key, entry] of entries) {
        let value = given[key];
        for (const alias of aliasesByOption.get(key) ?? []) {
            if (raw[alias] === undefined) continue;
            if (raw[key] !== undefined) {
                throw new LlamaVlmError("INVALID_OPTION", `Give "${key}" or its alias "${alias}", not both`);
            }
            value = raw[alias];
        }
        if (how.given === "nullish" && value == null) {
            if (entry.defaultFrom) value = entry.defaultFrom(out, how.env ?? NO_ENV);
            else if ("default" in entry) value = entry.default;
        }
        if (value === undefined && !entry.required && !("default" in entry) && !entry.defaultFrom) continue;
        out[key] = checkEntry(prefix + key, entry, value, how.env);
    }
    for (const [key, entry] of entries) if (key in out) entry.refine?.(prefix + key, out[key], out);
    for (const [key, entry] of entries) {
        const v = out[key];
        if (entry.kind === "float32" && typeof v === "number" && Math.abs(v) > FLOAT32_MAX) {
            throw invalid(prefix + key, `a number of magnitude <= ${FLOAT32_MAX}`, v);
        }
    }
    return out as ResolvedOf<T>;
}

/** The native payload's values of resolved options: each entry's `toNative` applied (in place). */
export function toNative<V extends Record<string, unknown>>(table: Table, values: V, ctx: PayloadContext): V {
    const out = values as Record<string, unknown>;
    for (const [key, entry] of entriesOf(table)) {
        if (entry.toNative && key in out) out[key] = entry.toNative(out[key], ctx);
    }
    return values;
}
