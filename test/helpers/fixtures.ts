/** The generated models and images the generation tests share (see models.ts and images.ts). */
import type { CompletionResult } from "../../lib/index.js";
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

/** Greedy outputs must match token for token, except at a near-tie (top-1/top-2 margin < 1e-3). */
export function sameOrNearTie(solo: CompletionResult, batched: CompletionResult): boolean {
    if (solo.tokens.join() === batched.tokens.join()) return true;
    let k = 0;
    while (k < solo.tokens.length && solo.tokens[k] === batched.tokens[k]) k++;
    const top = solo.probs?.[k];
    return top !== undefined && top.length >= 2 && Math.log(top[0]!.probability / top[1]!.probability) < 1e-3;
}
