/** Running the CLI in this process with its output captured, and reading the JSONL lines `extract` writes. */
import fs from "node:fs";
import { expect } from "vitest";
import type { ExtractLine } from "../../lib/extraction.js";

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
