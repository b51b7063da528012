/** Running the CLI in this process with its output captured, and reading the JSONL lines `extract` writes. */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { expect } from "vitest";
import type { ExtractLine } from "../../lib/extraction.js";
import { REPO_ROOT } from "./models.js";

/** An io for runCli that keeps what the command writes. */
export function capture() {
    let out = "";
    let err = "";
    return {
        io: { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } },
        get out() {
            return out;
        },
        get err() {
            return err;
        },
    };
}

/** JSONL text → its lines. */
export function parseLines(text: string): ExtractLine[] {
    return text
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ExtractLine);
}

/** A results file's lines; the file must end with a newline (no torn last line). */
export function readLines(file: string): ExtractLine[] {
    const text = fs.readFileSync(file, "utf8");
    expect(text.endsWith("\n")).toBe(true);
    return parseLines(text);
}

/**
 * Runs the compiled CLI (dist/) as a child process and sends it SIGINT once `out` holds `lines` lines (or after 120 s):
 * an interrupted `extract --out`. Resolves with its exit code and what it wrote to stderr.
 */
export async function interruptAfterLines(
    args: readonly string[],
    out: string,
    lines: number,
): Promise<{ code: number | null; stderr: string }> {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, "dist", "cli", "main.js"), ...args], {
        stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
        if (fs.existsSync(out) && fs.readFileSync(out, "utf8").split("\n").filter(Boolean).length >= lines) break;
        await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGINT");
    return { code: await exited, stderr };
}
