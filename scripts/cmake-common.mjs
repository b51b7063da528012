// Settings shared by every CMake build the project runs (the addon and llama.cpp's reference tools).
import { execFileSync } from "node:child_process";
import os from "node:os";

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
