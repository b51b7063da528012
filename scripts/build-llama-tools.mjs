#!/usr/bin/env node
// Builds llama.cpp's own command-line tools (llama-mtmd-cli, llama-bench, llama-batched-bench,
// llama-completion) in the addon's CMake build tree, build-native/<variant>/bin. CMakeLists.txt declares their
// targets (excluded from the addon's default build), so they link the llama.cpp libraries the addon was compiled
// from, with the same flags: llama.cpp is compiled once. They are the reference for parity tests and benchmarks
// and are never part of the addon.
//
//   node scripts/build-llama-tools.mjs [--print-dir] [--gpu vulkan|cuda|metal] [--quiet]
//
// An up-to-date tree costs about a second (the build tool checks, compiles nothing). A tree that was never
// configured (e.g. the addon came from a prebuilt binary) is configured first; the addon in build/ is not touched.
// With --gpu, the tree of that GPU variant (build-native/<gpu>, scripts/build-native.mjs --gpu) is used: GPU parity
// compares against tools built with the same backend. --quiet keeps the compiler's progress lines off the
// terminal unless the build fails. --if-missing is accepted for older callers and changes nothing.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cmakeParallelArgs, nativeVariant } from "./cmake-common.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const gpuAt = process.argv.indexOf("--gpu");
const gpu = gpuAt === -1 ? "cpu" : process.argv[gpuAt + 1];
if (!["cpu", "vulkan", "cuda", "metal"].includes(gpu)) {
    console.error(`[tools] --gpu must be vulkan, cuda or metal, got ${gpu}`);
    process.exit(2);
}
const quiet = process.argv.includes("--quiet");
export const TOOLS = ["llama-mtmd-cli", "llama-bench", "llama-batched-bench", "llama-completion"];

const { workDir } = nativeVariant({ gpu });
const binDir = path.join(workDir, "bin");
const env = { ...process.env, CCACHE_BASEDIR: root };

function step(cmd, args) {
    if (!quiet) {
        execFileSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"], cwd: root, env });
        return;
    }
    const run = spawnSync(cmd, args, { cwd: root, env, encoding: "utf8", maxBuffer: 256 << 20 });
    if (run.status !== 0) {
        process.stderr.write(`${run.stdout ?? ""}${run.stderr ?? ""}`);
        console.error(
            `[tools] \`${path.basename(cmd)} ${args.join(" ")}\` failed (${run.error ?? `exit ${run.status}`})`,
        );
        process.exit(1);
    }
}

const started = Date.now();
if (!fs.existsSync(path.join(workDir, "CMakeCache.txt"))) {
    step(process.execPath, [path.join(root, "scripts", "build-native.mjs"), "--gpu", gpu, "--configure-only"]);
}
step("cmake", ["--build", workDir, "--config", "Release", ...cmakeParallelArgs(), "--target", ...TOOLS]);
const missing = TOOLS.filter((t) => !fs.existsSync(path.join(binDir, t)));
if (missing.length > 0) {
    console.error(`[tools] the build finished but ${missing.join(", ")} is not in ${binDir}`);
    process.exit(1);
}
const seconds = (Date.now() - started) / 1000;
if (!quiet || seconds >= 5) {
    console.error(`[tools] ${TOOLS.join(", ")} in ${path.relative(root, binDir)} (${seconds.toFixed(0)} s)`);
}
if (process.argv.includes("--print-dir")) process.stdout.write(`${binDir}\n`);
