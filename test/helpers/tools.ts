/**
 * llama.cpp's own command-line tools, built from the vendored tree in the addon's CMake tree
 * (scripts/build-llama-tools.mjs): the reference that synthetic models and the addon are checked against.
 */

import { execFile } from "node:child_process";
import path from "node:path";
import { inject } from "vitest";
import { REPO_ROOT } from "./models.js";

export type LlamaTool = "llama-mtmd-cli" | "llama-completion" | "llama-bench" | "llama-batched-bench";

/** The tools' folder: built (or named by LLAMA_VLM_TEST_TOOLS_DIR) by the suite's global setup, test/setup/global.ts. */
export function llamaToolsDir(): string {
    return inject("llamaToolsDir");
}

export interface ToolResult {
    /** Exit code; null when the process was killed by a signal. */
    readonly code: number | null;
    readonly signal: NodeJS.Signals | null;
    readonly stdout: string;
    readonly stderr: string;
}

/** Default tool deadline; the software-Vulkan check (scripts/vulkan-check.sh) raises it, lavapipe is slow. */
const TOOL_TIMEOUT_MS = Number(process.env.LLAMA_VLM_TEST_TOOL_TIMEOUT_MS ?? 120_000);

/** Runs a tool to completion and collects its output (never rejects on a non-zero exit). */
export function runTool(tool: LlamaTool, args: readonly string[], timeoutMs = TOOL_TIMEOUT_MS): Promise<ToolResult> {
    const file = path.join(llamaToolsDir(), tool);
    return new Promise((resolve, reject) => {
        execFile(
            file,
            [...args],
            { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 64 << 20, encoding: "utf8" },
            (error, stdout, stderr) => {
                if (error && typeof error.code !== "number" && error.signal == null) {
                    reject(error);
                    return;
                }
                resolve({
                    code: error ? (typeof error.code === "number" ? error.code : null) : 0,
                    signal: error?.signal ?? null,
                    stdout,
                    stderr,
                });
            },
        );
    });
}

/**
 * llama.cpp's performance report: prompt tokens and single-token decode runs, from
 * `llama_perf_context_print` (llama-mtmd-cli, with `-lv 4` or more) or `common_perf_print` (llama-completion).
 * Both report n − 1 decode runs for n generated tokens: llama-completion never decodes the last sampled token,
 * and llama-mtmd-cli decodes it but llama.cpp counts a decode only when a later call waits for its result. A run
 * cut short by an end-of-generation token after n tokens reports n runs (that token is not decoded).
 */
export function parsePerf(log: string): { promptTokens: number; decodeRuns: number } | undefined {
    const prompt = /prompt eval time =\s*[\d.]+ ms \/\s*(\d+) tokens/.exec(log);
    const runs = /\beval time =\s*[\d.]+ ms \/\s*(\d+) runs/.exec(log);
    if (!prompt || !runs) return undefined;
    return { promptTokens: Number(prompt[1]), decodeRuns: Number(runs[1]) };
}
