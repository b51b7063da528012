/**
 * The image budget options (a request's `imageBudget`), described once: `ImageBudget` and the validation in
 * lib/images.ts `resolveBudget` are derived from `BUDGET_OPTIONS`.
 * @internal
 */
import { integer, keysOf, type OptionsOf, oneOf } from "./table.js";

export const BUDGET_OPTIONS = {
    /** Largest image, in pixels, passed to the encoder. Default 4,000,000 (e.g. 2000×2000). */
    maxPixels: integer({ default: 4_000_000, min: 1 }),
    /** What to do with a larger image: "downscale" (keep the aspect ratio; default) or "error". */
    overBudget: oneOf(["downscale", "error"], { default: "downscale" }),
    /** Images whose header claims more pixels than this are refused before decoding. Default 100,000,000. */
    maxInputPixels: integer({ default: 100_000_000, min: 1 }),
};

/** Limits applied to every image before it reaches the vision encoder. */
export interface ImageBudget extends OptionsOf<typeof BUDGET_OPTIONS> {}

/** Every imageBudget option. */
export const BUDGET_KEYS = keysOf(BUDGET_OPTIONS);
