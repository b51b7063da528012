/** The generated models and images the generation tests share (see models.ts and images.ts). */
import { STANDARD_IMAGES, testImageFile } from "./images.js";
import { cachedModel } from "./models.js";

/** Vision families with a tiny pair: one with M-RoPE (qwen2.5-vl), one with plain RoPE and tiles (smolvlm). */
export const VISION_FAMILIES = ["qwen2.5-vl", "smolvlm"] as const;
export type VisionFamily = (typeof VISION_FAMILIES)[number];

export interface TestPair {
    model: string;
    projector: string;
}

export async function tinyPair(family: VisionFamily): Promise<TestPair> {
    const pair = await cachedModel(family);
    if (pair.projector === undefined) throw new Error(`${family} has no projector`);
    return { model: pair.model, projector: pair.projector };
}

/** Two generated images: a page of text-like blocks and a colour gradient (PNG files). */
export async function testImages(): Promise<string[]> {
    return [
        await testImageFile(STANDARD_IMAGES.blocks.kind, STANDARD_IMAGES.blocks),
        await testImageFile(STANDARD_IMAGES.gradient.kind, STANDARD_IMAGES.gradient),
    ];
}
