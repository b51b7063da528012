#!/usr/bin/env node
// The release artifact, installed the way a user installs it: `npm pack` this repository (with its
// prebuilds/<platform>-<arch>/ from `npm run prebuild`), then `npm install <tarball> --offline` into an empty
// project whose PATH has node and nothing else — no cc, c++, cmake or make — so that the package's install script
// (node-gyp-build) must take the prebuilt binary: a compile would fail. The install runs its scripts for real. Then
// the project imports "llama-vlm", loads the tiny synthetic model and completes a request. Done twice: in a plain
// folder and in one whose path has spaces and "é".
//
//   node test/runtime/pack.mjs [--keep]
//
// The dependencies come from npm's cache (filled first by an ordinary online install of the same tarball into a
// scratch folder, scripts off: that one only downloads). Prints the tarball's size and "pack: PASS" lines.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values: opts } = parseArgs({ options: { keep: { type: "boolean", default: false } } });
const tuple = `${process.platform}-${process.arch}`;
const SIZE_GOAL_MB = 40;

function fail(message) {
    console.error(`pack: FAIL ${message}`);
    process.exit(1);
}

const prebuilds = path.join(repo, "prebuilds", tuple);
if (!fs.existsSync(prebuilds) || !fs.readdirSync(prebuilds).some((f) => f.endsWith(".node"))) {
    fail(`${path.relative(repo, prebuilds)}/ has no addon: run "npm run prebuild" first`);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-pack-"));
const started = Date.now();
const packed = JSON.parse(
    execFileSync("npm", ["pack", "--json", "--pack-destination", work], {
        cwd: repo,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
    }),
)[0];
const tarball = path.join(work, packed.filename);
const mb = fs.statSync(tarball).size / 1e6;
const prebuiltFiles = packed.files.filter((f) => f.path.startsWith(`prebuilds/${tuple}/`));
console.log(
    `pack: ${packed.filename} ${mb.toFixed(1)} MB (goal <= ${SIZE_GOAL_MB} MB), ${packed.entryCount} files, ` +
        `${prebuiltFiles.length} in prebuilds/${tuple}/ (${prebuiltFiles.map((f) => path.basename(f.path)).join(", ")})`,
);
if (!prebuiltFiles.some((f) => f.path.endsWith(".node"))) fail(`the tarball has no prebuilds/${tuple}/*.node`);
if (mb > SIZE_GOAL_MB) console.log(`pack: note: the tarball is over the ${SIZE_GOAL_MB} MB goal`);

// The model the installed package will run, written by this repository's factory.
const { writeModelPair } = await import(pathToFileURL(path.join(repo, "dist", "synth", "index.js")).href);
const pair = await writeModelPair({ family: "qwen2.5-vl", size: "tiny", outDir: path.join(work, "model") });

// Fill npm's cache with the dependencies (online, scripts off: nothing is built here, only downloaded).
const warm = path.join(work, "warm");
fs.mkdirSync(warm);
fs.writeFileSync(path.join(warm, "package.json"), '{ "private": true }\n');
execFileSync("npm", ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", tarball], {
    cwd: warm,
    stdio: ["ignore", "ignore", "inherit"],
});

// A PATH with node only: /bin/sh runs the install script by its absolute path.
const bin = path.join(work, "bin");
fs.mkdirSync(bin);
fs.symlinkSync(process.execPath, path.join(bin, "node"));
const npmCli = path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm", "bin", "npm-cli.js");
const npm = fs.existsSync(npmCli)
    ? npmCli
    : path.join(execFileSync("npm", ["root", "-g"], { encoding: "utf8" }).trim(), "npm", "bin", "npm-cli.js");
const env = { ...process.env, PATH: bin };
delete env.LLAMA_VLM_ADDON;
for (const tool of ["cc", "c++", "gcc", "g++", "cmake", "make"]) {
    const found = spawnSync("/bin/sh", ["-c", `command -v ${tool}`], { env, encoding: "utf8" }).stdout.trim();
    if (found) fail(`${tool} is still on the stripped PATH (${found})`);
}

const app = `
import { loadModel, setLogger, version } from "llama-vlm";
setLogger(null);
const [model, projector] = process.argv.slice(2);
const m = await loadModel({ model, projector });
const ctx = await m.createContext({ contextSize: 1024 });
const data = new Uint8Array(64 * 64 * 3).map((_, i) => (i * 7) & 255);
const r = await ctx.complete({ prompt: "<__media__>Describe the image.", images: [{ data, width: 64, height: 64 }], temperature: 0, maxTokens: 8 });
await m.dispose();
const v = version();
console.log(JSON.stringify({ tokens: r.tokens.length, stopReason: r.stopReason, build: v.build, file: v.file, backends: v.loadedBackends }));
`;

// The install script (node-gyp-build) runs and must find the prebuild. A third install runs no scripts at all, as a
// project whose npm blocks dependencies' install scripts does (npm 11 warns of unapproved ones; its documentation
// says it will block them): the loader then finds the prebuild by itself.
const installs = [
    { folder: "plain", scripts: true },
    { folder: "with space é", scripts: true },
    { folder: "install scripts off", scripts: false },
];
for (const { folder, scripts } of installs) {
    const project = path.join(work, folder, "app");
    fs.mkdirSync(project, { recursive: true });
    fs.writeFileSync(path.join(project, "package.json"), '{ "private": true, "type": "module" }\n');
    const t0 = Date.now();
    const install = spawnSync(
        process.execPath,
        [
            npm,
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--script-shell=/bin/sh",
            "--foreground-scripts",
            ...(scripts ? [] : ["--ignore-scripts"]),
            tarball,
        ],
        { cwd: project, env, encoding: "utf8", timeout: 300_000 },
    );
    const installSeconds = (Date.now() - t0) / 1000;
    if (install.status !== 0)
        fail(`npm install --offline in "${project}" failed:\n${install.stdout}\n${install.stderr}`);
    const installed = path.join(project, "node_modules", "llama-vlm");
    if (fs.existsSync(path.join(installed, "build"))) {
        fail(`the install compiled (node_modules/llama-vlm/build/ exists):\n${install.stdout}\n${install.stderr}`);
    }
    if (scripts && !/node-gyp-build/.test(install.stdout + install.stderr)) {
        fail(
            `the install script did not run (no node-gyp-build in npm's output):\n${install.stdout}\n${install.stderr}`,
        );
    }
    fs.writeFileSync(path.join(project, "app.mjs"), app);
    const run = spawnSync(process.execPath, ["app.mjs", pair.model, pair.projector], {
        cwd: project,
        env,
        encoding: "utf8",
        timeout: 120_000,
    });
    if (run.status !== 0) fail(`the installed package failed a request in "${project}":\n${run.stderr}`);
    const r = JSON.parse(run.stdout.trim().split("\n").at(-1));
    if (r.build !== "portable" || !r.file.startsWith(path.join(installed, "prebuilds", tuple))) {
        fail(`the request ran on ${r.file} (${r.build}), not the installed prebuild`);
    }
    if (r.tokens !== 8) fail(`the request gave ${r.tokens} tokens (${r.stopReason}), expected 8`);
    console.log(
        `pack: PASS "${path.relative(work, project)}": npm install --offline with no compiler on PATH in ${installSeconds.toFixed(1)} s ` +
            `(${scripts ? "its install script ran" : "no install script"}, nothing compiled); a request completed on ${path.relative(installed, r.file)} ` +
            `(${r.backends.join("+")})`,
    );
}
console.log(`pack: done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (!opts.keep) fs.rmSync(work, { recursive: true, force: true });
