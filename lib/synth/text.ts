/**
 * The text model of a synthetic pair: a `llama` or `qwen2vl` GGUF whose weights make greedy decoding decisive
 * and varied (see `WEIGHT_DESIGN`).
 */

import {
    arr,
    constant,
    f32,
    fromFunction,
    GgmlType,
    GgufType,
    GgufWriter,
    i64,
    normal,
    str,
    type TensorData,
    tensorSeed,
    u32,
    Xoshiro128,
} from "../gguf/index.js";
import type { SynthQuant, TextSpec } from "./families.js";
import { type Tokenizer, TokenType } from "./tokenizer.js";

/**
 * How the weights are chosen, and why.
 *
 * Plain random weights make a poor test model. The last hidden state is mostly the current token's own
 * embedding, so with tied embeddings the top logit is that token again and greedy output loops on one token;
 * and the logits are a random Gaussian vector over ~150k tokens, whose top two are separated by only ~1/5 of a
 * standard deviation on average, exponentially distributed: a fixed share of greedy steps are near-ties
 * whatever the scale, and any difference in rounding (batch vs solo, CPU vs GPU) flips them.
 *
 * These models instead implement a small, decisive "language": a random successor graph over a set of
 * *active* tokens (ordinary words such as " house", up to `MAX_ACTIVE`, fewer when the FFN is narrower), each
 * with two successors, where the context (prompt and image) picks the branch.
 *
 * - Token embeddings are random (std `s` per element) and reproducible per row; rows of all other tokens,
 *   special tokens included, are scaled by `INACTIVE_ROW_SCALE`, so only active tokens ever win the argmax and
 *   a synthetic model never emits an end-of-generation token: generation always runs to the requested length.
 *   The active tokens form a ring: a(j) is the next token on it and b(j) lies 2 to K/8 places ahead, so a path
 *   only comes back to a token after a trip around the ring and greedy text does not fall into short loops.
 * - All blocks but the last FFN are random with a small gain: together they add a context vector R of
 *   `CONTEXT_GAIN` times a token embedding's size to the residual stream. Attention scores have std
 *   `SCORE_STD`, so heads attend selectively and R depends on which tokens and image patches are present.
 * - The last FFN is a lookup table: hidden unit j fires (gate pre-activation ≈ `DETECT_GATE`) when the current
 *   token is active token j, and writes `e[a(j)] + (1 − Δ)·e[b(j)] − e[j]` into the residual: the current token
 *   is cancelled (no self-repetition) and its two successors a(j), b(j) are added.
 * - The output projection is the token embedding (tied) or an identical copy (untied `llama`), so the logits are
 *   ≈ `logitScale` for a(j), slightly less for b(j), and far lower for every other token. Which successor wins is
 *   decided by R: Δ is `BRANCH_BIAS` noise standard deviations, so b(j) wins about a quarter of the time and the
 *   path depends on the image. The first generated token (after a prompt token that is not active) is chosen
 *   among the active tokens by R alone.
 *
 * Measured on the tiny models (3 families × 4 seeds × 1–2 images × 48 greedy steps, 960 steps): top-1 minus
 * top-2 logit median 11–22 per run, under 1 logit at ~3% of steps, never under 0.1 (Gaussian logits with the same
 * top logit would have a mean gap of ~4 and ~20% of steps under 1); 25–46 distinct words in 48; different images
 * give different continuations from the first word. Not immune to large perturbations: q8_0 and f16 copies of a
 * model give the same 24-token greedy continuation in ~80% of (seed, image) cases. Norm weights are 1 and biases
 * small; activations stay well inside f16 range (the KV cache is f16). The projector's output has the token
 * embeddings' scale.
 */
export const WEIGHT_DESIGN = {
    /** Default logit of the preferred successor, in nats (the `logitScale` option). */
    defaultLogitScale: 100,
    /** Most active tokens (also limited by the FFN width, one lookup unit per active token). */
    MAX_ACTIVE: 4096,
    /** Size of the context vector R relative to a token embedding. */
    CONTEXT_GAIN: 0.5,
    /** How far the second successor's logit sits below the first's, in standard deviations of R's effect. */
    BRANCH_BIAS: 0.75,
    /** Gate pre-activation of the lookup unit of the current token. */
    DETECT_GATE: 8,
    /** Standard deviation of attention scores q·k/√d_head. */
    SCORE_STD: 2,
    /** Scale of the embedding (and output) rows of tokens outside the active set. */
    INACTIVE_ROW_SCALE: 0.05,
    /** Standard deviation of biases. */
    BIAS_STD: 0.02,
} as const;

/** Typical RMS of softmax-weighted averages of unit-RMS value vectors (partly selective attention). */
const ATTENTION_MIX_RMS = 0.5;
/** RMS of silu(g)·u for g, u ~ N(0, 1). */
const SWIGLU_RMS = 0.6;
/** Active tokens are drawn from the first this-many word-like tokens of the vocabulary (the most common ones). */
const ACTIVE_POOL_FACTOR = 4;

const QUANT_TYPES: Record<SynthQuant, GgmlType> = {
    q4_0: GgmlType.Q4_0,
    q8_0: GgmlType.Q8_0,
    f16: GgmlType.F16,
};

/** llama.cpp's `llama_ftype` for a file whose matrices are of the given type. */
const FILE_TYPES: Record<SynthQuant, number> = { f16: 1, q4_0: 2, q8_0: 7 };

/** Provenance written into each file's metadata (`llama_vlm.synth.*`). */
export interface SynthMetadata {
    readonly family: string;
    readonly size: string;
    readonly seed: number;
    readonly version: number;
}

export interface TextModelParams {
    readonly spec: TextSpec;
    readonly tokenizer: Tokenizer;
    readonly quant: SynthQuant;
    readonly seed: number;
    /** Logit of the preferred successor, in nats. */
    readonly logitScale: number;
    readonly meta: SynthMetadata;
}

/** Type for a matrix with rows of `rowLength`: the chosen quantization when its blocks fit, else f16. */
export function matrixType(quant: SynthQuant, rowLength: number): GgmlType {
    const type = QUANT_TYPES[quant];
    return type === GgmlType.F16 || rowLength % 32 === 0 ? type : GgmlType.F16;
}

export function setProvenance(w: GgufWriter, meta: SynthMetadata, what: string): void {
    w.setMetadata("general.name", str(`synthetic ${meta.family} ${meta.size}${what}`));
    w.setMetadata(
        "general.description",
        str(
            `Synthetic weights (seed ${meta.seed}) written by llama-vlm's model factory v${meta.version}: the tensor ` +
                "layout of the real model, not a trained model. For tests and benchmarks.",
        ),
    );
    w.setMetadata("llama_vlm.synth.family", str(meta.family));
    w.setMetadata("llama_vlm.synth.size", str(meta.size));
    w.setMetadata("llama_vlm.synth.seed", i64(meta.seed));
    w.setMetadata("llama_vlm.synth.version", u32(meta.version));
}

/** Second successor's weight relative to the first: `BRANCH_BIAS` noise standard deviations lower. */
function branchDelta(nEmbd: number): number {
    const { BRANCH_BIAS, CONTEXT_GAIN } = WEIGHT_DESIGN;
    // The two successors' logits differ by R·(e_a − e_b), whose std is √2·CONTEXT_GAIN/√n_embd of |e|².
    return (BRANCH_BIAS * Math.SQRT2 * CONTEXT_GAIN) / Math.sqrt(nEmbd);
}

/**
 * Std of one element of an (active) token embedding for the given logit scale: the preferred successor's
 * logit is e_a·n(h) = β_a·s·n_embd/√Σ with Σ = β_a² + β_b² + CONTEXT_GAIN² (|h|² in units of |e|²).
 */
export function embeddingStd(nEmbd: number, logitScale: number): number {
    const betaB = 1 - branchDelta(nEmbd);
    const sigma = Math.sqrt(1 + betaB * betaB + WEIGHT_DESIGN.CONTEXT_GAIN ** 2);
    return (logitScale * sigma) / nEmbd;
}

/**
 * Stems kept out of the active set: synthetic output lands in test logs and benchmark reports, and a random
 * pick from tens of thousands of vocabulary words would otherwise now and then print a slur or an obscenity.
 */
const UNWANTED_STEMS =
    /^(?:anal|anus|bitch|boob|butt|cock|cum|cunt|dick|fag|fuck|gay|hitler|homo|jew|kill|murder|nazi|negr|nigg|nude|naked|penis|porn|pussy|rape|racis|retard|sex|shit|slut|suicid|tits|tort|vagin|whore)/;

/** Word-like ordinary tokens: a space marker followed by 3 to 9 lowercase ASCII letters, minus unwanted words. */
function isWordToken(text: string, model: string): boolean {
    const match = model === "llama" ? /^\u2581([a-z]{3,9})$/.exec(text) : /^\u0120([a-z]{3,9})$/.exec(text);
    return match !== null && !UNWANTED_STEMS.test(match[1]!);
}

/** The successor graph: active token ids and, per active index, the active indexes of its two successors. */
interface Graph {
    readonly active: Int32Array;
    readonly succA: Int32Array;
    readonly succB: Int32Array;
}

function buildGraph(tokenizer: Tokenizer, count: number, seed: number): Graph {
    const pool: number[] = [];
    for (let t = 0; t < tokenizer.vocabSize && pool.length < ACTIVE_POOL_FACTOR * count; t++) {
        if (tokenizer.tokenTypes[t] === TokenType.NORMAL && isWordToken(tokenizer.tokens[t]!, tokenizer.model)) {
            pool.push(t);
        }
    }
    if (pool.length < Math.min(count, 8)) {
        throw new Error(`The vocabulary has only ${pool.length} word-like tokens; the factory needs ${count}`);
    }
    const rng = new Xoshiro128(tensorSeed(seed, "synth.successor_graph"));
    // Fisher-Yates with 32-bit draws: enough for pools far below 2^32.
    for (let i = pool.length - 1; i > 0; i--) {
        const j = rng.nextU32() % (i + 1);
        [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    const k = Math.min(count, pool.length);
    const active = Int32Array.from(pool.slice(0, k));
    // The active tokens, in this shuffled order, form a ring: the first successor is the next token on the
    // ring, the second jumps 2 to k/8 places ahead. Every path moves forward, so returning to a token takes a
    // trip around the ring (at least eight jumps) and greedy text does not fall into short loops.
    const succA = new Int32Array(k);
    const succB = new Int32Array(k);
    const maxJump = Math.max(2, Math.floor(k / 8));
    for (let j = 0; j < k; j++) {
        succA[j] = (j + 1) % k;
        succB[j] = (j + 2 + (rng.nextU32() % (maxJump - 1))) % k;
    }
    return { active, succA, succB };
}

/**
 * Token embedding rows, each from its own seeded stream so that any row can be computed on its own (the last
 * FFN needs the active tokens' rows while the embedding matrix is written in order).
 */
class Embeddings {
    readonly rowScale: Float32Array;

    constructor(
        private readonly seed: number,
        readonly nEmbd: number,
        readonly std: number,
        tokenizer: Tokenizer,
        graph: Graph,
    ) {
        this.rowScale = new Float32Array(tokenizer.vocabSize).fill(WEIGHT_DESIGN.INACTIVE_ROW_SCALE);
        for (const t of graph.active) this.rowScale[t] = 1;
    }

    row(token: number, out: Float32Array): Float32Array {
        new Xoshiro128(tensorSeed(this.seed, `synth.embedding.${token}`)).fillNormal(out, 0, this.std);
        const scale = this.rowScale[token]!;
        if (scale !== 1) for (let i = 0; i < out.length; i++) out[i] = out[i]! * scale;
        return out;
    }

    /** The whole matrix, row after row, as a tensor source. */
    data(): TensorData {
        const d = this.nEmbd;
        const buf = new Float32Array(d);
        let cached = -1;
        return fromFunction((out, start) => {
            for (let pos = 0; pos < out.length; ) {
                const element = start + pos;
                const row = Math.floor(element / d);
                const col = element - row * d;
                const n = Math.min(d - col, out.length - pos);
                if (row !== cached) {
                    this.row(row, buf);
                    cached = row;
                }
                out.set(buf.subarray(col, col + n), pos);
                pos += n;
            }
        });
    }
}

/**
 * The lookup FFN of the last block (see `WEIGHT_DESIGN`): gate and up rows j point along active token j's
 * embedding; down column j holds that token's successors minus the token itself, divided by the unit's
 * activation. Units beyond the active set are zero. Only the active tokens' embedding rows are held in memory.
 */
function lookupFfn(emb: Embeddings, graph: Graph, nFf: number): { gateUp: TensorData; down: TensorData } {
    const d = emb.nEmbd;
    const k = graph.active.length;
    const { DETECT_GATE, CONTEXT_GAIN } = WEIGHT_DESIGN;
    // For the current token x, the block's input is h = e_x + R with |R| = CONTEXT_GAIN·|e_x|.
    const cosine = 1 / Math.sqrt(1 + CONTEXT_GAIN ** 2);
    const gain = DETECT_GATE / (Math.sqrt(d) * cosine);
    const activation = DETECT_GATE * DETECT_GATE * sigmoid(DETECT_GATE);
    const betaB = 1 - branchDelta(d);
    const rows = new Float32Array(k * d);
    const rowGain = new Float32Array(k);
    for (let j = 0; j < k; j++) {
        const e = emb.row(graph.active[j]!, rows.subarray(j * d, (j + 1) * d));
        let norm = 0;
        for (let i = 0; i < d; i++) norm += e[i]! * e[i]!;
        rowGain[j] = gain / Math.sqrt(norm);
    }
    // ffn_gate/ffn_up: n_ff rows of length n_embd.
    const gateUp = fromFunction((out, start) => {
        for (let n = 0; n < out.length; n++) {
            const element = start + n;
            const j = Math.floor(element / d);
            out[n] = j < k ? rows[element]! * rowGain[j]! : 0;
        }
    });
    // ffn_down: n_embd rows of length n_ff; element (i, j) is component i of unit j's output vector.
    const down = fromFunction((out, start) => {
        for (let n = 0; n < out.length; n++) {
            const element = start + n;
            const i = Math.floor(element / nFf);
            const j = element - i * nFf;
            out[n] =
                j < k
                    ? (rows[graph.succA[j]! * d + i]! + betaB * rows[graph.succB[j]! * d + i]! - rows[j * d + i]!) /
                      activation
                    : 0;
        }
    });
    return { gateUp, down };
}

function sigmoid(x: number): number {
    return 1 / (1 + Math.exp(-x));
}

/** A writer holding the complete text model (metadata and tensor sources); nothing is written yet. */
export function buildTextModel(p: TextModelParams): GgufWriter {
    const { spec, tokenizer, quant, seed, logitScale, meta } = p;
    const { arch, nEmbd, nLayer, nHead, nHeadKv, nFf } = spec;
    const headDim = nEmbd / nHead;
    if (!Number.isInteger(headDim)) throw new Error(`n_embd ${nEmbd} is not a multiple of n_head ${nHead}`);
    if (spec.ropeSections !== undefined && spec.ropeSections.reduce((a, b) => a + b, 0) !== headDim / 2) {
        throw new Error(`rope sections [${spec.ropeSections}] must sum to half the head size ${headDim}`);
    }
    const nQ = nHead * headDim;
    const nKv = nHeadKv * headDim;
    const nVocab = tokenizer.vocabSize;

    const w = new GgufWriter({ seed });
    w.setMetadata("general.architecture", str(arch));
    w.setMetadata("general.type", str("model"));
    setProvenance(w, meta, "");
    w.setMetadata("general.file_type", u32(FILE_TYPES[quant]));
    w.setMetadata("general.quantization_version", u32(2));
    w.setMetadata(`${arch}.vocab_size`, u32(nVocab));
    w.setMetadata(`${arch}.context_length`, u32(spec.contextLength));
    w.setMetadata(`${arch}.embedding_length`, u32(nEmbd));
    w.setMetadata(`${arch}.block_count`, u32(nLayer));
    w.setMetadata(`${arch}.feed_forward_length`, u32(nFf));
    w.setMetadata(`${arch}.attention.head_count`, u32(nHead));
    w.setMetadata(`${arch}.attention.head_count_kv`, u32(nHeadKv));
    w.setMetadata(`${arch}.attention.layer_norm_rms_epsilon`, f32(spec.rmsEps));
    w.setMetadata(`${arch}.rope.freq_base`, f32(spec.ropeFreqBase));
    w.setMetadata(`${arch}.rope.dimension_count`, u32(headDim));
    if (spec.ropeSections !== undefined) {
        w.setMetadata(`${arch}.rope.dimension_sections`, arr(GgufType.INT32, [...spec.ropeSections]));
    }
    tokenizer.apply(w);

    const { SCORE_STD, BIAS_STD, CONTEXT_GAIN, MAX_ACTIVE } = WEIGHT_DESIGN;
    const s = embeddingStd(nEmbd, logitScale);
    const graph = buildGraph(tokenizer, Math.min(MAX_ACTIVE, nFf), seed);
    const emb = new Embeddings(seed, nEmbd, s, tokenizer, graph);
    // Random branches (every attention, every FFN but the last) share the context gain equally.
    const blockGain = CONTEXT_GAIN / Math.sqrt(2 * nLayer - 1);

    const mat = (name: string, rows: number, rowLength: number, data: TensorData) =>
        w.addTensor({ name, shape: [rowLength, rows], type: matrixType(quant, rowLength), data });
    const vec = (name: string, length: number, value: number) =>
        w.addTensor({ name, shape: [length], type: GgmlType.F32, data: constant(value) });
    const bias = (name: string, length: number) =>
        w.addTensor({ name, shape: [length], type: GgmlType.F32, data: normal(BIAS_STD) });

    mat("token_embd.weight", nVocab, nEmbd, emb.data());
    const qkStd = Math.sqrt(SCORE_STD) / Math.sqrt(nEmbd);
    const inStd = 1 / Math.sqrt(nEmbd);
    for (let i = 0; i < nLayer; i++) {
        const b = `blk.${i}`;
        vec(`${b}.attn_norm.weight`, nEmbd, 1);
        mat(`${b}.attn_q.weight`, nQ, nEmbd, normal(qkStd));
        if (spec.qkvBias) bias(`${b}.attn_q.bias`, nQ);
        mat(`${b}.attn_k.weight`, nKv, nEmbd, normal(qkStd));
        if (spec.qkvBias) bias(`${b}.attn_k.bias`, nKv);
        mat(`${b}.attn_v.weight`, nKv, nEmbd, normal(inStd));
        if (spec.qkvBias) bias(`${b}.attn_v.bias`, nKv);
        mat(`${b}.attn_output.weight`, nEmbd, nQ, normal((blockGain * s) / (ATTENTION_MIX_RMS * Math.sqrt(nQ))));
        vec(`${b}.ffn_norm.weight`, nEmbd, 1);
        if (i < nLayer - 1) {
            mat(`${b}.ffn_gate.weight`, nFf, nEmbd, normal(inStd));
            mat(`${b}.ffn_up.weight`, nFf, nEmbd, normal(inStd));
            mat(`${b}.ffn_down.weight`, nEmbd, nFf, normal((blockGain * s) / (SWIGLU_RMS * Math.sqrt(nFf))));
        } else {
            const lookup = lookupFfn(emb, graph, nFf);
            mat(`${b}.ffn_gate.weight`, nFf, nEmbd, lookup.gateUp);
            mat(`${b}.ffn_up.weight`, nFf, nEmbd, lookup.gateUp);
            mat(`${b}.ffn_down.weight`, nEmbd, nFf, lookup.down);
        }
    }
    vec("output_norm.weight", nEmbd, 1);
    if (!spec.tiedEmbeddings) mat("output.weight", nVocab, nEmbd, emb.data());
    return w;
}
