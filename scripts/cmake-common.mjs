// Settings shared by every CMake build the project runs (the addon and llama.cpp's reference tools).
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function has(cmd) {
    try {
        execFileSync(cmd, ["--version"], { stdio: "ignore" });
        return true;
    } catch {
        return false;
    }
}

/** Compiler launcher arguments: ccache when it is installed (the second build of a tree is then seconds). */
export function cmakeCacheArgs() {
    if (process.env.LLAMA_VLM_NO_CCACHE || !has("ccache")) return [];
    return [
        "-DCMAKE_C_COMPILER_LAUNCHER=ccache",
        "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache",
        "-DCMAKE_CUDA_COMPILER_LAUNCHER=ccache",
    ];
}

/** Build parallelism: every core, unless JOBS says otherwise. */
export function cmakeParallelArgs() {
    const jobs = Number(process.env.JOBS) || os.availableParallelism();
    return ["--parallel", String(jobs)];
}

/**
 * The addon's CMake build tree for a variant: build-native/<variant>. llama.cpp's reference tools are built in the
 * same tree (scripts/build-llama-tools.mjs), so its compiled llama.cpp serves both.
 */
export function nativeVariant({ gpu = "cpu", portable = false, asan = false, config = "Release" } = {}) {
    const name = [gpu, portable && "portable", asan && "asan", config !== "Release" && config.toLowerCase()]
        .filter(Boolean)
        .join("-");
    return { name, workDir: path.join(root, "build-native", name) };
}
