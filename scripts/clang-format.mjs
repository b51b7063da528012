#!/usr/bin/env node
// clang-format over native/ (engine/ and binding/): `--check` fails on any difference, `--fix` rewrites the files.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dir = path.join(root, "native");
const files = fs
    .readdirSync(dir, { recursive: true })
    .filter((f) => /\.(cc|h)$/.test(f))
    .map((f) => path.join(dir, f));
const fix = process.argv.includes("--fix");
try {
    execFileSync("clang-format", fix ? ["-i", ...files] : ["--dry-run", "--Werror", ...files], { stdio: "inherit" });
} catch (err) {
    if (err.code === "ENOENT") {
        console.error("clang-format is not installed (Debian: apt-get install clang-format)");
    } else {
        console.error("native/ is not clang-formatted: run `npm run format`");
    }
    process.exit(1);
}
console.error(`clang-format: ${files.length} files ${fix ? "formatted" : "clean"}`);
