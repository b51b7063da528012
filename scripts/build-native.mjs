#!/usr/bin/env node
// Builds the native addon with cmake-js from CMakeLists.txt (the one source of truth) and places the
// result where node-gyp-build looks: build/Release/ (or --out DIR).
//
//   node scripts/build-native.mjs [--gpu cpu|cuda|vulkan|metal] [--portable] [--debug | --debug-info]
//                                 [--asan] [--out DIR] [--clean] [--define NAME=VALUE ...]
//
//   --portable    prebuilt-style binary: GGML_NATIVE off, every CPU feature level as a run-time loaded
//                 backend (shared libraries beside the .node). Also set by LLAMA_VLM_PORTABLE=1.
//   --debug       Debug build (-O0, assertions); --debug-info: optimised with debug info.
//   --asan        AddressSanitizer (run node with LD_PRELOAD=$(gcc -print-file-name=libasan.so)).
//   --gpu         GPU backend to compile in (also LLAMA_VLM_GPU); default cpu.
//   --define      an extra CMake cache entry, e.g. where a toolkit library is (scripts/cuda-compile-check.sh).
//   --configure-only  configure build-native/<variant> and build nothing (scripts/build-llama-tools.mjs then builds
//                 llama.cpp's tools there without touching the addon in build/).
// Environment: JOBS (parallel compile jobs, default all cores), LLAMA_VLM_NO_CCACHE=1.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { cmakeCacheArgs, cmakeParallelArgs, nativeVariant } from "./cmake-common.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);

const { values: opts } = parseArgs({
    options: {
        gpu: { type: "string", default: process.env.LLAMA_VLM_GPU || "cpu" },
        portable: { type: "boolean", default: process.env.LLAMA_VLM_PORTABLE === "1" },
        debug: { type: "boolean", default: false },
        "debug-info": { type: "boolean", default: false },
        asan: { type: "boolean", default: process.env.LLAMA_VLM_ASAN === "1" },
        out: { type: "string" },
        clean: { type: "boolean", default: false },
        define: { type: "string", multiple: true, default: [] },
        "configure-only": { type: "boolean", default: false },
    },
});

const GPUS = ["cpu", "cuda", "vulkan", "metal"];
/** Turing through Blackwell, real code for each, plus PTX for newer GPUs (CUDA 12.8+). */
const PREBUILD_CUDA_ARCHITECTURES = "75-real;80-real;86-real;89-real;90-real;100-real;120-real;120-virtual";
if (!GPUS.includes(opts.gpu)) {
    console.error(`[build] --gpu must be one of ${GPUS.join(", ")}, got "${opts.gpu}"`);
    process.exit(2);
}

const config = opts.debug ? "Debug" : opts["debug-info"] ? "RelWithDebInfo" : "Release";
const { name: variant, workDir } = nativeVariant({
    gpu: opts.gpu,
    portable: opts.portable,
    asan: opts.asan,
    config,
});
// The CPU build goes where node-gyp-build looks (build/Release); a GPU variant beside it in build/<gpu>/, where
// lib/loader.ts looks for it.
const outDir = path.resolve(opts.out ?? path.join(root, "build", opts.gpu === "cpu" ? "Release" : opts.gpu));

function run(cmd, args) {
    execFileSync(cmd, args, {
        stdio: ["ignore", "inherit", "inherit"],
        cwd: root,
        env: { ...process.env, CCACHE_BASEDIR: root },
    });
}

if (!fs.existsSync(path.join(root, "vendor", "llama.cpp", ".llama-vlm-vendor.json"))) {
    run(process.execPath, [path.join(root, "scripts", "vendor.mjs")]);
}
if (opts.clean) fs.rmSync(workDir, { recursive: true, force: true });

const cmakeJs = path.join(path.dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js");
const defines = {
    LLAMA_VLM_GPU: opts.gpu,
    LLAMA_VLM_PORTABLE: opts.portable ? "ON" : "OFF",
    LLAMA_VLM_ASAN: opts.asan ? "ON" : "OFF",
    GGML_NATIVE: opts.portable ? "OFF" : "ON",
};
// CUDA: which GPU generations to compile for. Unset, ggml picks its own list; prebuilt binaries use
// PREBUILD_CUDA_ARCHITECTURES (see docs/gpu.md).
const cudaArchs =
    process.env.CMAKE_CUDA_ARCHITECTURES ??
    (opts.portable && opts.gpu === "cuda" ? PREBUILD_CUDA_ARCHITECTURES : undefined);
if (opts.gpu === "cuda" && cudaArchs) defines.CMAKE_CUDA_ARCHITECTURES = cudaArchs;
for (const entry of opts.define) {
    const at = entry.indexOf("=");
    if (at < 1) {
        console.error(`[build] --define takes NAME=VALUE, got "${entry}"`);
        process.exit(2);
    }
    defines[entry.slice(0, at)] = entry.slice(at + 1);
}
const cacheArgs = cmakeCacheArgs().map((a) => a.replace(/^-D/, "--CD"));
const parallel = cmakeParallelArgs()[1];
const started = Date.now();
console.error(`[build] ${variant} (${config}) in ${path.relative(root, workDir)}`);
try {
    run(process.execPath, [
        cmakeJs,
        opts["configure-only"] ? "configure" : "compile",
        "--directory",
        root,
        "--out",
        workDir,
        "--config",
        config,
        "--parallel",
        parallel,
        "--log-level",
        "warn",
        ...Object.entries(defines).map(([k, v]) => `--CD${k}=${v}`),
        ...cacheArgs,
    ]);
} catch {
    console.error(
        "[build] native build failed (see the compiler output above). It needs cmake >= 3.18, a C++17 compiler and, " +
            "for GPU variants, the GPU toolkit. To retry from scratch: node scripts/build-native.mjs --clean",
    );
    process.exit(1);
}

if (opts["configure-only"]) {
    console.error(`[build] configured ${path.relative(root, workDir)}`);
    process.exit(0);
}

// The addon plus, for the portable build, llama.cpp's shared libraries and ggml's backends (CMake puts
// those in bin/). A versioned library is copied once, under its SONAME (libllama.so.0), the name the
// addon's $ORIGIN rpath asks for.
const SHARED = /\.(so(\.\d+)*|dylib|dll)$/;
const products = new Map();
for (const dir of [path.join(workDir, config), path.join(workDir, "bin")]) {
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir)) {
        const file = path.join(dir, f);
        if (fs.lstatSync(file).isSymbolicLink() || !(f.endsWith(".node") || SHARED.test(f))) continue;
        products.set(f.replace(/(\.so\.\d+)(\.\d+)+$/, "$1"), file);
    }
}
fs.mkdirSync(outDir, { recursive: true });
for (const f of fs.readdirSync(outDir)) {
    if (f.endsWith(".node") || SHARED.test(f)) fs.rmSync(path.join(outDir, f), { force: true });
}
for (const [name, file] of products) fs.copyFileSync(file, path.join(outDir, name));
console.error(
    `[build] ${products.size} file(s) → ${path.relative(root, outDir) || "."} in ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
