#!/usr/bin/env node
// Builds llama.cpp's own command-line tools (llama-mtmd-cli, llama-bench, llama-batched-bench,
// llama-completion) from vendor/llama.cpp into build-tools/, a cached folder separate from the addon.
// They are the reference for parity tests and benchmarks and are never part of the addon build.
//
//   node scripts/build-llama-tools.mjs [--print-dir] [--if-missing] [--gpu vulkan|cuda]
// With --gpu, the tools are built with that backend into build-tools-<gpu>/ (GPU parity references).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cmakeCacheArgs, cmakeParallelArgs } from "./cmake-common.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const source = path.join(root, "vendor", "llama.cpp");
const gpuAt = process.argv.indexOf("--gpu");
const gpu = gpuAt === -1 ? undefined : process.argv[gpuAt + 1];
if (gpu !== undefined && !["vulkan", "cuda", "metal"].includes(gpu)) {
    console.error(`[tools] --gpu must be vulkan, cuda or metal, got ${gpu}`);
    process.exit(2);
}
const buildDir = path.join(root, gpu ? `build-tools-${gpu}` : "build-tools");
export const TOOLS = ["llama-mtmd-cli", "llama-bench", "llama-batched-bench", "llama-completion"];

function sh(cmd, args) {
    execFileSync(cmd, args, {
        stdio: ["ignore", "inherit", "inherit"],
        cwd: root,
        env: { ...process.env, CCACHE_BASEDIR: root },
    });
}

if (!fs.existsSync(path.join(source, "CMakeLists.txt")))
    sh(process.execPath, [path.join(root, "scripts", "vendor.mjs")]);

const binDir = path.join(buildDir, "bin");
if (TOOLS.every((t) => fs.existsSync(path.join(binDir, t))) && process.argv.includes("--if-missing")) {
    process.stderr.write(`[tools] ${binDir} already has ${TOOLS.join(", ")}\n`);
} else {
    sh("cmake", [
        "-S",
        source,
        "-B",
        buildDir,
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
        "-DGGML_NATIVE=ON",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_SERVER=OFF",
        "-DLLAMA_BUILD_APP=OFF",
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_CURL=OFF",
        ...(gpu ? [`-DGGML_${gpu.toUpperCase()}=ON`] : []),
        ...(gpu === "cuda" && process.env.CMAKE_CUDA_ARCHITECTURES
            ? [`-DCMAKE_CUDA_ARCHITECTURES=${process.env.CMAKE_CUDA_ARCHITECTURES}`]
            : []),
        ...cmakeCacheArgs(),
    ]);
    sh("cmake", ["--build", buildDir, "--config", "Release", ...cmakeParallelArgs(), "--target", ...TOOLS]);
}
if (process.argv.includes("--print-dir")) process.stdout.write(`${binDir}\n`);
