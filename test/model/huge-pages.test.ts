// The `hugePages` load option: the weights in RAM on 2 MiB transparent huge pages (native/engine/HugePages.h).
// What the kernel may give depends on its THP setting, read here from sysfs: `never` (or no THP, or not Linux) gives
// none, `always` gives them without being asked, `madvise` (the usual one) only when asked.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { loadModel, type Model } from "../../lib/index.js";
import { cachedModel, REPO_ROOT } from "../helpers/models.js";

const MiB = 1024 * 1024;

function thpSetting(): "always" | "madvise" | "never" | "absent" {
    try {
        const text = fs.readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8");
        const chosen = /\[(\w+)\]/.exec(text)?.[1];
        return chosen === "always" || chosen === "madvise" || chosen === "never" ? chosen : "absent";
    } catch {
        return "absent";
    }
}

/** AnonHugePages of this whole process, from the kernel (0 where there is no /proc). */
function processAnonHugeBytes(): number {
    if (!fs.existsSync("/proc/self/smaps_rollup")) return 0;
    const rollup = fs.readFileSync("/proc/self/smaps_rollup", "utf8");
    return Number(/AnonHugePages:\s+(\d+) kB/.exec(rollup)?.[1] ?? 0) * 1024;
}

/**
 * `model.info.hugePageBytes` of a load in a fresh process (the compiled package). In this process, glibc reuses freed
 * memory for later allocations, and memory an earlier load or context advised keeps its huge pages: a fresh process is
 * where `hugePages: false` must show none.
 */
function hugePageBytesInFreshProcess(model: string, hugePages: boolean): number {
    const dist = pathToFileURL(path.join(REPO_ROOT, "dist", "index.js")).href;
    const code = [
        `import { loadModel, setLogger } from ${JSON.stringify(dist)};`,
        "setLogger(null);",
        `const m = await loadModel({ model: ${JSON.stringify(model)}, useMmap: false, hugePages: ${hugePages} });`,
        'process.stdout.write("BYTES " + m.info.hugePageBytes + "\\n");',
        "await m.dispose();",
    ].join("\n");
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8" });
    const line = out.split("\n").find((l) => l.startsWith("BYTES "));
    if (line === undefined) throw new Error(`the child printed no BYTES line:\n${out}`);
    return Number(line.slice(6));
}

async function greedy(model: Model): Promise<string> {
    const ctx = await model.createContext({ contextSize: 256 });
    try {
        const r = await ctx.complete({
            prompt: "List the medications and their doses.",
            temperature: 0,
            maxTokens: 24,
        });
        return r.text;
    } finally {
        await ctx.dispose();
    }
}

describe("weights on huge pages", () => {
    const setting = thpSetting();

    // Read, not mapped: every weight is in anonymous memory (mapped weights stay in the page cache), and the tiny
    // model's ~8 MiB of weights span several 2 MiB pages.
    it("in a fresh process, hugePages (the default) puts the weights on huge pages where the kernel allows, and false does not", async () => {
        const pair = await cachedModel("qwen2.5-vl");
        const on = hugePageBytesInFreshProcess(pair.model, true);
        const off = hugePageBytesInFreshProcess(pair.model, false);
        if (setting === "never" || setting === "absent") {
            expect(on).toBe(0);
        } else {
            expect(on).toBeGreaterThanOrEqual(2 * MiB);
            expect(on % (2 * MiB)).toBe(0);
        }
        if (setting !== "always") expect(off).toBe(0);
    });

    it("the kernel's count covers what the model reports, and the output is the same with huge pages on and off", async () => {
        const pair = await cachedModel("qwen2.5-vl");
        const huge = await loadModel({ model: pair.model, useMmap: false });
        const small = await loadModel({ model: pair.model, useMmap: false, hugePages: false });
        try {
            const onHuge = huge.info.hugePageBytes;
            if (setting !== "never" && setting !== "absent") expect(onHuge).toBeGreaterThanOrEqual(2 * MiB);
            // Whole 2 MiB pages of the weights, and within the process's own count.
            expect(onHuge).toBeLessThanOrEqual(huge.info.sizeBytes);
            expect(processAnonHugeBytes()).toBeGreaterThanOrEqual(onHuge);
            expect(await greedy(huge)).toBe(await greedy(small));
        } finally {
            await huge.dispose();
            await small.dispose();
        }
    });

    it("a vocabulary-only model has no weights to place", async () => {
        const pair = await cachedModel("qwen2.5-vl");
        const vocab = await loadModel({ model: pair.model, vocabOnly: true });
        try {
            expect(vocab.info.hugePageBytes).toBe(0);
        } finally {
            await vocab.dispose();
        }
    });
});
