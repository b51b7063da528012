/**
 * Runs once before any test file, outside every test timeout: builds what the suite needs that `npm ci` does not
 * leave up to date. Each step says on stderr what it builds and why.
 * - dist/: tests that start a child process or a worker (isolation, CLI, faults) run the compiled package.
 * - llama.cpp's reference tools (llama-mtmd-cli, llama-completion, …): parity tests compare against them. They are
 *   built in the addon's CMake tree from the llama.cpp objects `npm ci` compiled; the first time this links them
 *   (about a minute on 2 cores), after that it checks and compiles nothing.
 * LLAMA_VLM_TEST_TOOLS_DIR names tools built elsewhere (the GPU checks build them with the GPU backend).
 */

import { execFileSync } from "node:child_process";
import path from "node:path";
import type { TestProject } from "vitest/node";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

declare module "vitest" {
    export interface ProvidedContext {
        /** Folder holding llama.cpp's reference tools. */
        llamaToolsDir: string;
    }
}

function timed<T>(what: string, work: () => T): T {
    const started = Date.now();
    process.stderr.write(`[test setup] ${what}\n`);
    const result = work();
    const seconds = (Date.now() - started) / 1000;
    if (seconds >= 5) process.stderr.write(`[test setup] done in ${seconds.toFixed(0)} s\n`);
    return result;
}

export default function setup(project: TestProject): void {
    timed("compiling lib/ into dist/ (tests that start a child process or a worker run the compiled package)", () =>
        execFileSync(
            process.execPath,
            [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
            {
                cwd: ROOT,
                stdio: ["ignore", "inherit", "inherit"],
            },
        ),
    );
    let toolsDir = process.env.LLAMA_VLM_TEST_TOOLS_DIR;
    if (toolsDir === undefined) {
        toolsDir = timed(
            "llama.cpp's reference tools for the parity tests: building them in the addon's CMake tree if out of date",
            () =>
                execFileSync(process.execPath, [path.join(ROOT, "scripts", "build-llama-tools.mjs"), "--print-dir"], {
                    cwd: ROOT,
                    encoding: "utf8",
                    stdio: ["ignore", "pipe", "inherit"],
                })
                    .trim()
                    .split("\n")
                    .at(-1)!,
        );
    }
    project.provide("llamaToolsDir", toolsDir);
}
