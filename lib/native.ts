/**
 * Loads the native addon (the best variant for this machine). Its shape is declared in backend/types.ts.
 * @internal
 */
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { LlamaVlmError } from "./errors.js";
import {
    AddonLoadError,
    gpuAvailable,
    type LoadAttempt,
    type LoadOutcome,
    runtimeHint,
    runtimeName,
    selectAddon,
    VARIANTS,
    type Variant,
    variantFiles,
} from "./loader.js";

export type * from "./backend/types.js";

import type { NativeAddon } from "./backend/types.js";

/** Package root: this file lives in lib/ (sources) or dist/ (compiled), one level below it. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const require = createRequire(import.meta.url);

/** Every .node file the loader would consider, best variant first (for tests and diagnostics). @internal */
export function addonCandidates(root = packageRoot): string[] {
    return VARIANTS.flatMap((v) => variantFiles(v, root, process.platform, process.arch));
}

/** Which variant was loaded and what was tried before it. @internal */
export let loadOutcome: { variant: Variant; file: string; attempts: LoadAttempt[] } | undefined;

let cached: NativeAddon | undefined;

/** Loads the addon once per JS environment. @internal */
export function loadNative(): NativeAddon {
    cached ??= loadNativeFrom(packageRoot);
    return cached;
}

/** Loads the best addon variant under `root`, or throws listing every path tried and why. @internal */
export function loadNativeFrom(root: string, env: Record<string, string | undefined> = process.env): NativeAddon {
    let outcome: LoadOutcome<NativeAddon>;
    try {
        outcome = selectAddon<NativeAddon>({
            root,
            platform: process.platform,
            arch: process.arch,
            env,
            available: (v) => gpuAvailable(v),
            load: (file) => require(file),
        });
    } catch (err) {
        const attempts = err instanceof AddonLoadError ? err.attempts : [];
        const runtime = runtimeName();
        const hint = runtimeHint(runtime, attempts);
        throw new LlamaVlmError(
            "NATIVE_LOAD_FAILED",
            `llama-vlm could not load its native addon for ${process.platform}-${process.arch} under ${runtime}: ${(err as Error).message}. Tried:\n` +
                (attempts.length > 0
                    ? attempts
                    : [{ variant: "cpu", file: path.join(root, "build", "Release"), reason: "not built" }]
                )
                    .map((a) => `  - ${a.variant}: ${a.file} (${a.reason ?? "loaded"})`)
                    .join("\n") +
                (hint
                    ? `\n${hint}.`
                    : `\nBuild it from source with \`npm run build:native\` in ${root} ` +
                      "(needs cmake and a C++17 compiler), or reinstall the package to get a prebuilt binary."),
        );
    }
    const failedGpu = outcome.attempts.filter((a) => a.reason && a.variant !== "cpu" && a.reason !== "not built");
    if (failedGpu.length > 0 && !failedGpu.every((a) => a.reason?.startsWith("no "))) {
        process.emitWarning(
            `llama-vlm: using the ${outcome.variant} build; ` +
                failedGpu.map((a) => `${a.variant} not used: ${a.reason}`).join("; "),
            { code: "LLAMA_VLM_FALLBACK" },
        );
    }
    const addon = outcome.addon;
    // Default: llama.cpp's warnings and errors only (ggml_log_level 3 = warn); see setLogger().
    addon.setLogger((level, line) => {
        process.stderr.write(`[llama-vlm] ${level >= 4 ? "error" : "warn"}: ${line}\n`);
    }, 3);
    if (root === packageRoot)
        loadOutcome = { variant: outcome.variant, file: outcome.file, attempts: outcome.attempts };
    return addon;
}
