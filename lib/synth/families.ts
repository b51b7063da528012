/**
 * What the factory can build: per family and size, the text model's and projector's dimensions, the tokenizer
 * and the chat template. Dimensions of shape-true sizes are those of the released models.
 */

import { QWEN2_VL_TEMPLATE, SMOLVLM_TEMPLATE, VICUNA_TEMPLATE } from "./templates.js";
import { type TokenizerSpec, TokenType } from "./tokenizer.js";

/** Model families the factory writes. */
export const SYNTH_FAMILIES = ["qwen2.5-vl", "smolvlm", "llama"] as const;
/**
 * - `qwen2.5-vl`: text arch `qwen2vl` (M-RoPE) + projector `qwen2.5vl_merger` (windowed attention, 2×2 merge),
 *   Qwen2 tokenizer, Qwen2.5-VL chat template.
 * - `smolvlm`: text arch `llama` (plain RoPE) + projector `idefics3` (SigLIP, pixel shuffle, image split into
 *   tiles plus an overview, so one image becomes several image chunks), Llama-3 BPE tokenizer with SmolVLM's
 *   image tokens, SmolVLM chat template.
 * - `llama`: text only, arch `llama`, LLaMA-2 SentencePiece tokenizer, Vicuna chat template, separate output
 *   matrix (untied embeddings).
 */
export type SynthFamily = (typeof SYNTH_FAMILIES)[number];

/** `tiny`: a few MB, for tests. `3b`: the real dimensions of Qwen2.5-VL-3B, for benchmarks. */
export const SYNTH_SIZES = ["tiny", "3b"] as const;
export type SynthSize = (typeof SYNTH_SIZES)[number];

/** Storage type of the text model's matrices (rows whose length is not a multiple of 32 stay f16). */
export const SYNTH_QUANTS = ["q4_0", "q8_0", "f16"] as const;
export type SynthQuant = (typeof SYNTH_QUANTS)[number];

export interface TextSpec {
    readonly arch: "qwen2vl" | "llama";
    readonly nEmbd: number;
    readonly nLayer: number;
    readonly nHead: number;
    readonly nHeadKv: number;
    readonly nFf: number;
    readonly contextLength: number;
    readonly ropeFreqBase: number;
    readonly rmsEps: number;
    /** M-RoPE sections (qwen2vl), summing to half the head size. */
    readonly ropeSections?: readonly [number, number, number, number];
    /** No `output.weight`: the output projection is `token_embd.weight`. */
    readonly tiedEmbeddings: boolean;
    /** Biases on the q, k and v projections (Qwen). */
    readonly qkvBias: boolean;
}

export interface Qwen25VisionSpec {
    readonly projector: "qwen2.5vl_merger";
    readonly nEmbd: number;
    readonly nLayer: number;
    readonly nHead: number;
    readonly nFf: number;
    readonly patchSize: number;
    readonly imageSize: number;
    /** Every `nWaPattern`-th layer attends to the whole image, the others within 112-pixel windows. */
    readonly nWaPattern: number;
    readonly eps: number;
}

export interface Idefics3VisionSpec {
    readonly projector: "idefics3";
    readonly nEmbd: number;
    readonly nLayer: number;
    readonly nHead: number;
    readonly nFf: number;
    readonly patchSize: number;
    /** Tile size: images are resized to at most `longestEdge`, cut into tiles of this size, plus an overview. */
    readonly imageSize: number;
    /** Pixel-shuffle factor: a tile gives (imageSize / patchSize / scaleFactor)² tokens. */
    readonly scaleFactor: number;
    readonly longestEdge: number;
    readonly eps: number;
}

export type VisionSpec = Qwen25VisionSpec | Idefics3VisionSpec;

export interface ModelSpec {
    readonly family: SynthFamily;
    readonly size: SynthSize;
    readonly text: TextSpec;
    readonly vision?: VisionSpec;
    readonly tokenizer: TokenizerSpec;
    readonly defaultQuant: SynthQuant;
}

const QWEN2_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];
const QWEN2_FIRST_SPECIAL = 151643;

/**
 * ggml-vocab-qwen2.gguf is the Qwen2 (text) vocabulary: ids 151646 and up are `[PAD…]` placeholders. Qwen2.5-VL
 * gives them its added tokens, all typed as control tokens (llama.cpp treats `<tool_call>`, `<|fim_…|>` and
 * the like as control tokens whatever the file says, with a warning).
 */
const QWEN25_VL_TOKENIZER: TokenizerSpec = {
    vocabFile: "ggml-vocab-qwen2.gguf",
    renames: QWEN2_SPECIAL_TOKENS.map((text, i) => ({ id: QWEN2_FIRST_SPECIAL + i, text, type: TokenType.CONTROL })),
    bosId: 151643,
    eosId: 151645,
    padId: 151643,
    addBos: false,
    chatTemplate: QWEN2_VL_TEMPLATE,
};

/**
 * SmolVLM's special tokens (the ones llama.cpp's mtmd looks up for Idefics3 plus the chat template's), placed in
 * the `<|reserved_special_token_N|>` slots of the Llama-3 vocabulary.
 */
function smolvlmTokenizer(): TokenizerSpec {
    const renames: { id: number; text: string; type: TokenType }[] = [
        { id: 128002, text: "<|im_start|>", type: TokenType.CONTROL },
        { id: 128003, text: "<end_of_utterance>", type: TokenType.CONTROL },
        { id: 128004, text: "<fake_token_around_image>", type: TokenType.CONTROL },
        { id: 128005, text: "<image>", type: TokenType.CONTROL },
        { id: 128010, text: "<global-img>", type: TokenType.CONTROL },
    ];
    let id = 128011;
    for (let row = 1; row <= 6; row++) {
        for (let col = 1; col <= 6; col++) {
            renames.push({ id: id++, text: `<row_${row}_col_${col}>`, type: TokenType.CONTROL });
        }
    }
    return {
        vocabFile: "ggml-vocab-llama-bpe.gguf",
        renames,
        bosId: 128002,
        eosId: 128003,
        padId: 128001,
        addBos: false,
        chatTemplate: SMOLVLM_TEMPLATE,
    };
}

const LLAMA2_TOKENIZER: TokenizerSpec = {
    vocabFile: "ggml-vocab-llama-spm.gguf",
    renames: [],
    bosId: 1,
    eosId: 2,
    unkId: 0,
    addBos: true,
    chatTemplate: VICUNA_TEMPLATE,
};

const SPECS: readonly ModelSpec[] = [
    {
        family: "qwen2.5-vl",
        size: "tiny",
        defaultQuant: "q8_0",
        text: {
            arch: "qwen2vl",
            nEmbd: 64,
            nLayer: 2,
            nHead: 4,
            nHeadKv: 2,
            nFf: 128,
            contextLength: 4096,
            ropeFreqBase: 1e6,
            rmsEps: 1e-6,
            ropeSections: [2, 3, 3, 0],
            tiedEmbeddings: true,
            qkvBias: true,
        },
        vision: {
            projector: "qwen2.5vl_merger",
            nEmbd: 64,
            nLayer: 2,
            nHead: 4,
            nFf: 128,
            patchSize: 14,
            imageSize: 560,
            nWaPattern: 2,
            eps: 1e-6,
        },
        tokenizer: QWEN25_VL_TOKENIZER,
    },
    {
        // Qwen/Qwen2.5-VL-3B-Instruct config.json: text and vision_config.
        family: "qwen2.5-vl",
        size: "3b",
        defaultQuant: "q4_0",
        text: {
            arch: "qwen2vl",
            nEmbd: 2048,
            nLayer: 36,
            nHead: 16,
            nHeadKv: 2,
            nFf: 11008,
            contextLength: 128000,
            ropeFreqBase: 1e6,
            rmsEps: 1e-6,
            ropeSections: [16, 24, 24, 0],
            tiedEmbeddings: true,
            qkvBias: true,
        },
        vision: {
            projector: "qwen2.5vl_merger",
            nEmbd: 1280,
            nLayer: 32,
            nHead: 16,
            nFf: 3420,
            patchSize: 14,
            imageSize: 560,
            // fullatt_block_indexes [7, 15, 23, 31]: every 8th layer attends globally.
            nWaPattern: 8,
            eps: 1e-6,
        },
        tokenizer: QWEN25_VL_TOKENIZER,
    },
    {
        family: "smolvlm",
        size: "tiny",
        defaultQuant: "q8_0",
        text: {
            arch: "llama",
            nEmbd: 64,
            nLayer: 2,
            nHead: 4,
            nHeadKv: 2,
            nFf: 128,
            contextLength: 4096,
            ropeFreqBase: 100000,
            rmsEps: 1e-5,
            tiedEmbeddings: true,
            qkvBias: false,
        },
        vision: {
            projector: "idefics3",
            nEmbd: 64,
            nLayer: 2,
            nHead: 4,
            nFf: 128,
            patchSize: 16,
            imageSize: 256,
            scaleFactor: 4,
            longestEdge: 512,
            eps: 1e-6,
        },
        tokenizer: smolvlmTokenizer(),
    },
    {
        family: "llama",
        size: "tiny",
        defaultQuant: "q8_0",
        text: {
            arch: "llama",
            nEmbd: 64,
            nLayer: 2,
            nHead: 4,
            nHeadKv: 4,
            nFf: 128,
            contextLength: 4096,
            ropeFreqBase: 10000,
            rmsEps: 1e-5,
            tiedEmbeddings: false,
            qkvBias: false,
        },
        tokenizer: LLAMA2_TOKENIZER,
    },
];

/** Every (family, size) the factory can write, with its default quantization. */
export function synthModels(): { family: SynthFamily; size: SynthSize; defaultQuant: SynthQuant; vision: boolean }[] {
    return SPECS.map((s) => ({ family: s.family, size: s.size, defaultQuant: s.defaultQuant, vision: !!s.vision }));
}

export function findSpec(family: SynthFamily, size: SynthSize): ModelSpec | undefined {
    return SPECS.find((s) => s.family === family && s.size === size);
}
