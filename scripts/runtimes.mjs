#!/usr/bin/env node
// Other JavaScript runtimes for CI, from the npm registry: Bun and Deno (their npm packages ship the binaries) and
// Node versions other than the one running this (the `node` package installs node-<platform>-<arch>). Each is
// installed once into ~/.cache/llama-vlm/runtimes/<name>@<version> (LLAMA_VLM_CACHE overrides the folder) and the
// path of its binary is printed. Not devDependencies: together they are about 570 MB that `npm ci` would unpack
// on every install, for a few CI steps.
//
//   node scripts/runtimes.mjs bun|deno|node20|node22|node24      → prints the binary's absolute path
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Pinned, so that a CI run says exactly what it ran. */
const RUNTIMES = {
    bun: { spec: "bun@1.4.5", bin: "node_modules/.bin/bun" },
    deno: { spec: "deno@2.9.6", bin: "node_modules/.bin/deno" },
    node20: { spec: "node@20.20.2", bin: "node_modules/.bin/node" },
    node22: { spec: "node@22.23.3", bin: "node_modules/.bin/node" },
    node24: { spec: "node@24.21.0", bin: "node_modules/.bin/node" },
};

const name = process.argv[2];
const runtime = RUNTIMES[name];
if (runtime === undefined) {
    console.error(`usage: node scripts/runtimes.mjs ${Object.keys(RUNTIMES).join("|")}`);
    process.exit(2);
}
const cache =
    process.env.LLAMA_VLM_CACHE ||
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "llama-vlm");
const dir = path.join(cache, "runtimes", runtime.spec);
const bin = path.join(dir, runtime.bin);
const works = () => {
    try {
        execFileSync(bin, ["--version"], { stdio: "ignore", timeout: 30_000 });
        return true;
    } catch {
        return false;
    }
};
if (!works()) {
    // Into a fresh folder, renamed into place: a half-done install is never taken for a finished one.
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    const work = fs.mkdtempSync(`${dir}.tmp-`);
    fs.writeFileSync(path.join(work, "package.json"), '{ "private": true }\n');
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", "--no-save", runtime.spec], {
        cwd: work,
        stdio: ["ignore", "ignore", "inherit"],
    });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(work, dir);
    if (!works()) {
        console.error(`[runtimes] ${runtime.spec} installed into ${dir} but ${bin} --version fails`);
        process.exit(1);
    }
}
console.log(bin);
