/**
 * The projector (mmproj) of a synthetic pair: a vision tower plus the projection into the text model's
 * embedding space, in the tensor layout of llama.cpp's tools/mtmd (clip-impl.h names, clip.cpp loading rules).
 * Matrices are f16 (as released mmproj files are); norms, biases and position embeddings f32.
 */

import { arr, bool, constant, f32, GgmlType, GgufType, GgufWriter, normal, str, u32 } from "../gguf/index.js";
import type { Idefics3VisionSpec, Qwen25VisionSpec, VisionSpec } from "./families.js";
import { type SynthMetadata, setProvenance, WEIGHT_DESIGN } from "./text.js";

/** Each vision block adds this fraction of the residual's size: the image content stays visible to the end. */
const VISION_BLOCK_GAIN = 0.5;
/** RMS of gelu(x) for x ~ N(0, 1). */
const GELU_RMS = 0.65;
const SWIGLU_RMS = 0.6;
const ATTENTION_MIX_RMS = 0.5;

const OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

export interface ProjectorParams {
    readonly spec: VisionSpec;
    /** n_embd of the text model: the size of the image embeddings. */
    readonly projectionDim: number;
    /** Std of one element of the text model's token embeddings; image embeddings get the same size. */
    readonly embedStd: number;
    readonly seed: number;
    readonly meta: SynthMetadata;
}

/** A writer holding the complete projector; nothing is written yet. */
export function buildProjector(p: ProjectorParams): GgufWriter {
    const w = new GgufWriter({ seed: p.seed });
    w.setMetadata("general.architecture", str("clip"));
    w.setMetadata("general.type", str("mmproj"));
    setProvenance(w, p.meta, " projector");
    w.setMetadata("general.file_type", u32(1));
    w.setMetadata("clip.projector_type", str(p.spec.projector));
    w.setMetadata("clip.has_vision_encoder", bool(true));
    const s = p.spec;
    w.setMetadata("clip.vision.image_size", u32(s.imageSize));
    w.setMetadata("clip.vision.patch_size", u32(s.patchSize));
    w.setMetadata("clip.vision.embedding_length", u32(s.nEmbd));
    w.setMetadata("clip.vision.feed_forward_length", u32(s.nFf));
    w.setMetadata("clip.vision.block_count", u32(s.nLayer));
    w.setMetadata("clip.vision.attention.head_count", u32(s.nHead));
    w.setMetadata("clip.vision.attention.layer_norm_epsilon", f32(s.eps));
    w.setMetadata("clip.vision.projection_dim", u32(p.projectionDim));
    if (s.nEmbd % s.nHead !== 0) throw new Error(`vision n_embd ${s.nEmbd} is not a multiple of n_head ${s.nHead}`);
    if (s.projector === "qwen2.5vl_merger") addQwen25(w, s, p);
    else addIdefics3(w, s, p);
    return w;
}

class Tensors {
    constructor(private readonly w: GgufWriter) {}

    /** An f16 matrix of `rows` rows of `rowLength`, values ~ N(0, std²). */
    mat(name: string, rows: number, rowLength: number, std: number): void {
        this.w.addTensor({ name, shape: [rowLength, rows], type: GgmlType.F16, data: normal(std) });
    }

    vec(name: string, length: number, value: number): void {
        this.w.addTensor({ name, shape: [length], type: GgmlType.F32, data: constant(value) });
    }

    bias(name: string, length: number, std: number = WEIGHT_DESIGN.BIAS_STD): void {
        this.w.addTensor({ name, shape: [length], type: GgmlType.F32, data: normal(std) });
    }

    /** Attention with biases on q, k, v and output; the scores get std SCORE_STD for unit-RMS inputs. */
    attention(prefix: string, n: number): void {
        const qkStd = Math.sqrt(WEIGHT_DESIGN.SCORE_STD) / Math.sqrt(n);
        for (const [part, std] of [
            ["attn_q", qkStd],
            ["attn_k", qkStd],
            ["attn_v", 1 / Math.sqrt(n)],
            ["attn_out", VISION_BLOCK_GAIN / (ATTENTION_MIX_RMS * Math.sqrt(n))],
        ] as const) {
            this.mat(`${prefix}.${part}.weight`, n, n, std);
            this.bias(`${prefix}.${part}.bias`, n);
        }
    }
}

/**
 * Qwen2.5-VL: Conv3D patch embedding stored as two temporal slices, RMS-norm blocks with SwiGLU FFN (all with
 * biases), windowed attention except every `nWaPattern`-th block, RMS norm, then the 2×2 merger MLP
 * (mm.0: 4n → 4n, GELU, mm.2: 4n → n_embd of the text model).
 */
function addQwen25(w: GgufWriter, s: Qwen25VisionSpec, p: ProjectorParams): void {
    const t = new Tensors(w);
    const n = s.nEmbd;
    w.setMetadata("clip.use_silu", bool(true));
    w.setMetadata("clip.vision.n_wa_pattern", u32(s.nWaPattern));
    w.setMetadata("clip.vision.spatial_merge_size", u32(2));
    w.setMetadata("clip.vision.image_mean", arr(GgufType.FLOAT32, OPENAI_CLIP_MEAN));
    w.setMetadata("clip.vision.image_std", arr(GgufType.FLOAT32, OPENAI_CLIP_STD));
    // The two slices are summed, each over patch² × 3 inputs.
    const patchStd = 1 / Math.sqrt(2 * 3 * s.patchSize * s.patchSize);
    for (const name of ["v.patch_embd.weight", "v.patch_embd.weight.1"]) {
        w.addTensor({ name, shape: [s.patchSize, s.patchSize, 3, n], type: GgmlType.F16, data: normal(patchStd) });
    }
    for (let i = 0; i < s.nLayer; i++) {
        const b = `v.blk.${i}`;
        t.vec(`${b}.ln1.weight`, n, 1);
        t.attention(b, n);
        t.vec(`${b}.ln2.weight`, n, 1);
        t.mat(`${b}.ffn_gate.weight`, s.nFf, n, 1 / Math.sqrt(n));
        t.bias(`${b}.ffn_gate.bias`, s.nFf);
        t.mat(`${b}.ffn_up.weight`, s.nFf, n, 1 / Math.sqrt(n));
        t.bias(`${b}.ffn_up.bias`, s.nFf);
        t.mat(`${b}.ffn_down.weight`, n, s.nFf, VISION_BLOCK_GAIN / (SWIGLU_RMS * Math.sqrt(s.nFf)));
        t.bias(`${b}.ffn_down.bias`, n);
    }
    t.vec("v.post_ln.weight", n, 1);
    const merged = 4 * n;
    t.mat("mm.0.weight", merged, merged, 1 / Math.sqrt(merged));
    t.bias("mm.0.bias", merged);
    t.mat("mm.2.weight", p.projectionDim, merged, p.embedStd / (GELU_RMS * Math.sqrt(merged)));
    t.bias("mm.2.bias", p.projectionDim, WEIGHT_DESIGN.BIAS_STD * p.embedStd);
}

/**
 * Idefics3 (SmolVLM): SigLIP tower (Conv2D patch embedding with bias, learned position embeddings, LayerNorm
 * blocks with a GELU MLP, all with biases, final LayerNorm), pixel shuffle by `scaleFactor`, then one linear
 * projection (mm.model.fc: n·scaleFactor² → n_embd of the text model).
 */
function addIdefics3(w: GgufWriter, s: Idefics3VisionSpec, p: ProjectorParams): void {
    const t = new Tensors(w);
    const n = s.nEmbd;
    const side = s.imageSize / s.patchSize;
    if (!Number.isInteger(side) || side % s.scaleFactor !== 0) {
        throw new Error(`image size ${s.imageSize} must be a multiple of patch size × scale factor`);
    }
    w.setMetadata("clip.use_gelu", bool(true));
    w.setMetadata("clip.vision.projector.scale_factor", u32(s.scaleFactor));
    w.setMetadata("clip.vision.preproc_image_size", u32(s.longestEdge));
    w.setMetadata("clip.vision.image_mean", arr(GgufType.FLOAT32, [0.5, 0.5, 0.5]));
    w.setMetadata("clip.vision.image_std", arr(GgufType.FLOAT32, [0.5, 0.5, 0.5]));
    w.addTensor({
        name: "v.patch_embd.weight",
        shape: [s.patchSize, s.patchSize, 3, n],
        type: GgmlType.F16,
        data: normal(1 / Math.sqrt(3 * s.patchSize * s.patchSize)),
    });
    t.bias("v.patch_embd.bias", n);
    // Weaker than the patch content, so that what the image shows dominates where it is.
    w.addTensor({ name: "v.position_embd.weight", shape: [n, side * side], type: GgmlType.F32, data: normal(0.5) });
    for (let i = 0; i < s.nLayer; i++) {
        const b = `v.blk.${i}`;
        t.vec(`${b}.ln1.weight`, n, 1);
        t.vec(`${b}.ln1.bias`, n, 0);
        t.attention(b, n);
        t.vec(`${b}.ln2.weight`, n, 1);
        t.vec(`${b}.ln2.bias`, n, 0);
        t.mat(`${b}.ffn_up.weight`, s.nFf, n, 1 / Math.sqrt(n));
        t.bias(`${b}.ffn_up.bias`, s.nFf);
        t.mat(`${b}.ffn_down.weight`, n, s.nFf, VISION_BLOCK_GAIN / (GELU_RMS * Math.sqrt(s.nFf)));
        t.bias(`${b}.ffn_down.bias`, n);
    }
    t.vec("v.post_ln.weight", n, 1);
    t.vec("v.post_ln.bias", n, 0);
    const shuffled = n * s.scaleFactor * s.scaleFactor;
    t.mat("mm.model.fc.weight", p.projectionDim, shuffled, p.embedStd / Math.sqrt(shuffled));
}
