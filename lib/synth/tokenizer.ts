/**
 * Tokenizers for synthetic models: a real vocabulary from one of llama.cpp's vocab-only GGUFs
 * (vendor/llama.cpp/models/ggml-vocab-*.gguf), with the special tokens a family needs written into slots the
 * source vocabulary reserves, plus the family's special-token ids and chat template.
 */

import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { arr, bool, copyMetadata, GgufType, type GgufWriter, getMetadata, readGguf, str, u32 } from "../gguf/index.js";

/** llama.cpp's `llama_token_type` (the values of `tokenizer.ggml.token_type`). */
export const TokenType = {
    NORMAL: 1,
    UNKNOWN: 2,
    CONTROL: 3,
    USER_DEFINED: 4,
    UNUSED: 5,
    BYTE: 6,
} as const;
export type TokenType = (typeof TokenType)[keyof typeof TokenType];

export interface TokenizerSpec {
    /** File name in the vocab folder, e.g. `ggml-vocab-qwen2.gguf`. */
    readonly vocabFile: string;
    /** Tokens to replace: id, new text and type. Used to place a model's special tokens in reserved slots. */
    readonly renames: readonly { readonly id: number; readonly text: string; readonly type: TokenType }[];
    readonly bosId?: number;
    readonly eosId: number;
    readonly padId?: number;
    readonly unkId?: number;
    readonly addBos: boolean;
    readonly addEos?: boolean;
    /** Jinja chat template for `tokenizer.chat_template`. */
    readonly chatTemplate: string;
}

export interface Tokenizer {
    readonly vocabSize: number;
    /** Text of every token after the renames, as stored (BPE byte-level or SentencePiece form). */
    readonly tokens: readonly string[];
    /** `tokenizer.ggml.model`, e.g. "gpt2" (byte-level BPE) or "llama" (SentencePiece). */
    readonly model: string;
    /** Type of every token after the renames. */
    readonly tokenTypes: Int32Array;
    /** Sets every `tokenizer.*` key on `writer`. */
    apply(writer: GgufWriter): void;
}

/** Keys copied unchanged from the vocab file when present (the token list and types are rewritten). */
const COPIED_KEYS = [
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.add_space_prefix",
];

/**
 * vendor/llama.cpp/models of this package. Found from this module's location, which is lib/synth/ in a checkout
 * and dist/synth/ in an installed package; both sit two levels below the package root.
 */
export function defaultVocabDir(): string {
    return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "vendor", "llama.cpp", "models");
}

export async function loadTokenizer(spec: TokenizerSpec, vocabDir: string): Promise<Tokenizer> {
    const file = path.join(vocabDir, spec.vocabFile);
    if (!existsSync(file)) {
        throw new Error(
            `Vocabulary ${file} not found: the synthetic model factory takes its tokenizers from llama.cpp's ` +
                'vocab-only GGUFs (run "npm run vendor" to populate vendor/llama.cpp, or pass "vocabDir")',
        );
    }
    const source = await readGguf(file, { readArrays: true });
    const tokenList = getMetadata(source, "tokenizer.ggml.tokens", GgufType.ARRAY);
    const typeList = getMetadata(source, "tokenizer.ggml.token_type", GgufType.ARRAY);
    if (tokenList?.elementType !== GgufType.STRING || typeList?.elementType !== GgufType.INT32) {
        throw new Error(`${file} has no string tokenizer.ggml.tokens or int32 tokenizer.ggml.token_type array`);
    }
    const tokens = [...tokenList.values];
    const types = Int32Array.from(typeList.values);
    if (tokens.length === 0 || types.length !== tokens.length) {
        throw new Error(`${file} has no usable token list (${tokens.length} tokens, ${types.length} types)`);
    }
    for (const { id, text, type } of spec.renames) {
        if (!Number.isInteger(id) || id < 0 || id >= tokens.length) {
            throw new RangeError(`Token id ${id} is outside the ${tokens.length}-token vocabulary of ${file}`);
        }
        tokens[id] = text;
        types[id] = type;
    }
    const seen = new Map<string, number>();
    for (let id = 0; id < tokens.length; id++) {
        const other = seen.get(tokens[id]!);
        if (other !== undefined) throw new Error(`Token "${tokens[id]}" appears twice (ids ${other} and ${id})`);
        seen.set(tokens[id]!, id);
    }
    for (const [name, id] of [
        ["bosId", spec.bosId],
        ["eosId", spec.eosId],
        ["padId", spec.padId],
        ["unkId", spec.unkId],
    ] as const) {
        if (id !== undefined && (id < 0 || id >= tokens.length)) throw new RangeError(`${name} ${id} is out of range`);
    }
    return {
        vocabSize: tokens.length,
        tokens,
        model: getMetadata(source, "tokenizer.ggml.model", GgufType.STRING) ?? "",
        tokenTypes: types,
        apply(writer: GgufWriter): void {
            copyMetadata(source, writer, (key) => COPIED_KEYS.includes(key));
            writer.setMetadata("tokenizer.ggml.tokens", arr(GgufType.STRING, tokens));
            writer.setMetadata("tokenizer.ggml.token_type", arr(GgufType.INT32, types));
            if (spec.bosId !== undefined) writer.setMetadata("tokenizer.ggml.bos_token_id", u32(spec.bosId));
            writer.setMetadata("tokenizer.ggml.eos_token_id", u32(spec.eosId));
            if (spec.padId !== undefined) writer.setMetadata("tokenizer.ggml.padding_token_id", u32(spec.padId));
            if (spec.unkId !== undefined) writer.setMetadata("tokenizer.ggml.unknown_token_id", u32(spec.unkId));
            writer.setMetadata("tokenizer.ggml.add_bos_token", bool(spec.addBos));
            writer.setMetadata("tokenizer.ggml.add_eos_token", bool(spec.addEos ?? false));
            writer.setMetadata("tokenizer.chat_template", str(spec.chatTemplate));
        },
    };
}
