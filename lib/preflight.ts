/**
 * Checks on the GGUF files before llama.cpp sees them (shared by loadModel and `llama-vlm info`): llama.cpp and
 * clip.cpp abort the process on several malformed inputs, so what can be told from the metadata and tensor
 * shapes is refused here with a typed error instead.
 */
import fs from "node:fs";
import { LlamaVlmError } from "./errors.js";
import { type GgufFile, GgufFormatError, GgufType, getMetadata, readGguf } from "./gguf/index.js";

/** Reads and checks a text model, and with `projectorPath` its projector and that the two are a pair. */
export async function preflight(modelPath: string, projectorPath: string | undefined): Promise<void> {
    const textFile = await checkFile("Model", modelPath);
    if (metaString(textFile, "general.architecture") === "clip") {
        throw new LlamaVlmError(
            "INVALID_MODEL",
            `${modelPath} is a projector (mmproj), not a text model: pass it as "projector"`,
        );
    }
    // llama.cpp asserts (aborting the process) on a layer count outside 1..LLAMA_MAX_LAYERS.
    const textArch = metaString(textFile, "general.architecture");
    const layers = metaNumber(textFile, `${textArch}.block_count`);
    if (layers !== undefined && !(layers >= 1 && layers <= 512)) {
        throw new LlamaVlmError(
            "INVALID_MODEL",
            `${modelPath} has ${textArch}.block_count = ${layers}; llama.cpp takes 1 to 512 layers`,
        );
    }
    if (projectorPath !== undefined) checkPair(textFile, await checkFile("Projector", projectorPath));
}

/** Projector types whose image tokens use M-RoPE positions: they pair only with M-RoPE text models. */
const MROPE_PROJECTORS = new Set(["qwen2vl_merger", "qwen2.5vl_merger", "qwen3vl_merger", "glm4v", "youtuvl"]);

async function checkFile(kind: string, path: string): Promise<GgufFile> {
    let stat: fs.Stats;
    try {
        stat = await fs.promises.stat(path);
    } catch {
        throw new LlamaVlmError("FILE_NOT_FOUND", `${kind} file not found: ${path}`);
    }
    if (!stat.isFile()) throw new LlamaVlmError("FILE_NOT_FOUND", `${kind} path is not a file: ${path}`);
    try {
        return await readGguf(path, { readArrays: 64 });
    } catch (err) {
        if (err instanceof GgufFormatError) {
            throw new LlamaVlmError(
                "INVALID_MODEL",
                `${kind} ${path} is not a usable GGUF file (${err.code}): ${err.message}`,
                {
                    cause: err,
                },
            );
        }
        throw err;
    }
}

/** A string metadata value, or undefined when missing or of another type. */
export function metaString(file: GgufFile, key: string): string | undefined {
    try {
        return getMetadata(file, key, GgufType.STRING);
    } catch {
        return undefined;
    }
}

/** A numeric metadata value (integers of any width, floats), or undefined when missing or of another type. */
export function metaNumber(file: GgufFile, key: string): number | undefined {
    const entry = file.metadata.get(key);
    if (entry === undefined || entry.type === GgufType.ARRAY) return undefined;
    return typeof entry.value === "number"
        ? entry.value
        : typeof entry.value === "bigint"
          ? Number(entry.value)
          : undefined;
}

/** Checks that a projector belongs to a text model before llama.cpp sees the pair. @internal */
export function checkPair(text: GgufFile, projector: GgufFile): void {
    const textArch = metaString(text, "general.architecture") ?? "?";
    const projArch = metaString(projector, "general.architecture");
    if (textArch === "clip") {
        throw new LlamaVlmError(
            "INVALID_MODEL",
            `${text.path} is a projector (mmproj), not a text model: pass it as "projector"`,
        );
    }
    if (projArch !== "clip") {
        throw new LlamaVlmError(
            "INVALID_MODEL",
            `${projector.path} is a "${projArch ?? "unknown"}" text model, not a projector (mmproj) GGUF`,
        );
    }
    const projDim = metaNumber(projector, "clip.vision.projection_dim");
    const embd = metaNumber(text, `${textArch}.embedding_length`);
    if (projDim !== undefined && embd !== undefined && projDim !== embd) {
        throw new LlamaVlmError(
            "PROJECTOR_MISMATCH",
            `The projector ${projector.path} outputs ${projDim}-wide embeddings but the text model ${text.path} (${textArch}) ` +
                `takes ${embd}: they are not a pair`,
        );
    }
    checkProjector(projector);
    const projType =
        metaString(projector, "clip.vision.projector_type") ?? metaString(projector, "clip.projector_type");
    const textMrope = text.metadata.has(`${textArch}.rope.dimension_sections`);
    if (projType !== undefined && MROPE_PROJECTORS.has(projType) !== textMrope) {
        throw new LlamaVlmError(
            "PROJECTOR_MISMATCH",
            `The projector ${projector.path} (${projType}) ${MROPE_PROJECTORS.has(projType) ? "needs" : "cannot drive"} a text model ` +
                `with M-RoPE positions, and ${text.path} (${textArch}) ${textMrope ? "has" : "has not"}: they are not a pair`,
        );
    }
}

/**
 * clip.cpp builds the vision encoder's graph from the projector's metadata and tensor shapes without checking
 * that they agree, and ggml aborts the process at the first mismatch (when the first image is encoded). These
 * are the relations its ViT blocks, and the projections of the families llama-vlm tests, rely on; a projector
 * that breaks one is refused with INVALID_MODEL. Layers specific to other projector types are not checked.
 */
function checkProjector(file: GgufFile): void {
    const shapes = new Map(file.tensors.map((t) => [t.name, t.shape]));
    if (!shapes.has("v.blk.0.attn_out.weight")) return; // not a standard ViT: nothing known to check
    const fail = (why: string): never => {
        throw new LlamaVlmError("INVALID_MODEL", `The projector ${file.path} does not hold together: ${why}`);
    };
    const nEmbd = metaNumber(file, "clip.vision.embedding_length") ?? 0;
    const nHead = metaNumber(file, "clip.vision.attention.head_count") ?? 0;
    const patch = metaNumber(file, "clip.vision.patch_size") ?? 0;
    const imageSize = metaNumber(file, "clip.vision.image_size") ?? 0;
    if (!(nEmbd > 0 && nHead > 0 && nEmbd % nHead === 0)) {
        fail(`clip.vision.embedding_length ${nEmbd} is not a positive multiple of the head count ${nHead}`);
    }
    if (!(patch > 0 && imageSize >= patch)) fail(`clip.vision.patch_size ${patch} and image_size ${imageSize}`);
    const expect = (name: string, dims: readonly (number | undefined)[]) => {
        const shape = shapes.get(name);
        if (shape === undefined) return;
        if (shape.length < dims.length || dims.some((d, i) => d !== undefined && shape[i] !== d)) {
            fail(`${name} is [${shape.join(", ")}], expected [${dims.map((d) => d ?? "*").join(", ")}]`);
        }
    };
    expect("v.patch_embd.weight", shapes.get("v.patch_embd.weight")?.length === 4 ? [patch, patch, 3, nEmbd] : []);
    expect("v.position_embd.weight", [nEmbd]);
    for (let il = 0; shapes.has(`v.blk.${il}.attn_out.weight`); il++) {
        const b = `v.blk.${il}.`;
        const q = shapes.get(`${b}attn_q.weight`);
        for (const n of ["attn_q", "attn_k", "attn_v"]) expect(`${b}${n}.weight`, [nEmbd]);
        expect(`${b}attn_out.weight`, [q?.[1], nEmbd]);
        for (const n of ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"]) expect(`${b}${n}`, [nEmbd]);
        const up = shapes.get(`${b}ffn_up.weight`);
        const down = shapes.get(`${b}ffn_down.weight`);
        if (up !== undefined && down !== undefined) {
            // Some converters swapped the names of up and down; clip.cpp swaps them back.
            const [first, second] = up[0] !== nEmbd && down[0] === nEmbd ? [down, up] : [up, down];
            if (first[0] !== nEmbd || second[0] !== first[1] || second[1] !== nEmbd) {
                fail(`${b}ffn_up.weight [${up.join(", ")}] and ffn_down.weight [${down.join(", ")}] do not chain`);
            }
            expect(`${b}ffn_gate.weight`, [nEmbd, first[1]]);
        }
        for (const n of ["attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_gate", "ffn_down"]) {
            expect(`${b}${n}.bias`, [shapes.get(`${b}${n}.weight`)?.[1]]);
        }
    }
    for (let i = 0; i < 8; i++) {
        const weight = shapes.get(`mm.${i}.weight`);
        if (weight?.length === 2) expect(`mm.${i}.bias`, [weight[1]]);
    }
    const projType = metaString(file, "clip.projector_type") ?? metaString(file, "clip.vision.projector_type");
    if (projType === "qwen2vl_merger" || projType === "qwen2.5vl_merger") {
        // The merger's graph joins 2 × 2 patches, whatever clip.vision.spatial_merge_size says.
        const merge = metaNumber(file, "clip.vision.spatial_merge_size") ?? 2;
        if (merge !== 2) fail(`clip.vision.spatial_merge_size is ${merge}; ${projType} merges 2 × 2 patches`);
        expect("mm.0.weight", [nEmbd * 4]);
    } else if (projType === "idefics3") {
        const scale = metaNumber(file, "clip.vision.projector.scale_factor") ?? 0;
        expect("mm.model.fc.weight", [nEmbd * scale * scale]);
        expect("v.position_embd.weight", [nEmbd, Math.floor(imageSize / patch) ** 2]);
    }
}

/**
 * llama.cpp's Jinja engine parses and renders recursively on the calling thread's stack: a template nesting
 * brackets about 3,000 deep overflows it and crashes the process. Chat templates nest a handful of levels.
 */
const TEMPLATE_MAX_NESTING = 256;

export function checkTemplateNesting(template: string, what: string, code: "INVALID_OPTION" | "INVALID_MODEL"): void {
    let depth = 0;
    let deepest = 0;
    // Block tags that open or end a block, the tag delimiters themselves (neutral), then single brackets.
    const tokens = /\{%-?\s*(end)?(if|for|macro|call|filter)\b|\{[{%#]|[}%#]\}|[([{]|[)\]}]/g;
    for (const [token, end, block] of template.matchAll(tokens)) {
        if (block === undefined && token.length === 2) continue;
        const closes = block !== undefined ? end !== undefined : ")]}".includes(token);
        depth = closes ? Math.max(0, depth - 1) : depth + 1;
        deepest = Math.max(deepest, depth);
    }
    if (deepest > TEMPLATE_MAX_NESTING) {
        throw new LlamaVlmError(
            code,
            `${what} nests brackets and blocks ${deepest} deep; at most ${TEMPLATE_MAX_NESTING} are allowed`,
        );
    }
}
