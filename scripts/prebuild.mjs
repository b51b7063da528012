#!/usr/bin/env node
// Prebuilt (portable) binary for this platform: prebuildify runs `node-gyp rebuild`, whose binding.gyp
// hands off to scripts/build-native.mjs with LLAMA_VLM_PORTABLE=1 (GGML_NATIVE off, one CPU backend per
// ISA level chosen at run time). prebuildify then copies the addon and its shared libraries into
// prebuilds/<platform>-<arch>/.
//
//   npm run prebuild [-- --gpu cuda|vulkan|metal]
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const { values } = parseArgs({ options: { gpu: { type: "string", default: "cpu" } } });

const prebuildify = path.join(path.dirname(require.resolve("prebuildify/package.json")), "bin.js");
// A CPU binary sits in prebuilds/<platform>-<arch>/; a GPU variant, with its own shared libraries, in a
// subfolder named after it (lib/loader.ts).
const tupleDir = path.join(root, "prebuilds", `${process.platform}-${process.arch}`);
const outDir = values.gpu === "cpu" ? tupleDir : path.join(tupleDir, values.gpu);
const staging = values.gpu === "cpu" ? root : fs.mkdtempSync(path.join(root, "build-prebuild-"));
for (const f of fs.existsSync(outDir) ? fs.readdirSync(outDir) : []) {
    if (fs.statSync(path.join(outDir, f)).isFile()) fs.rmSync(path.join(outDir, f));
}
execFileSync(
    process.execPath,
    [prebuildify, "--napi", "--strip", "--tag-libc", "--name", "llama-vlm", "--out", staging],
    {
        cwd: root,
        stdio: "inherit",
        env: { ...process.env, LLAMA_VLM_PORTABLE: "1", LLAMA_VLM_GPU: values.gpu },
    },
);
if (staging !== root) {
    const built = path.join(staging, "prebuilds", `${process.platform}-${process.arch}`);
    fs.mkdirSync(outDir, { recursive: true });
    for (const f of fs.readdirSync(built)) fs.renameSync(path.join(built, f), path.join(outDir, f));
    fs.rmSync(staging, { recursive: true, force: true });
}
const files = fs.readdirSync(outDir);
const bytes = files.reduce((n, f) => n + fs.statSync(path.join(outDir, f)).size, 0);
console.error(`[prebuild] ${path.relative(root, outDir)}: ${files.length} files, ${(bytes / 1e6).toFixed(1)} MB`);
console.error(files.map((f) => `  ${f}`).join("\n"));
