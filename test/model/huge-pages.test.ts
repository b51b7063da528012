// The `hugePages` load option: the weights in RAM on 2 MiB transparent huge pages (native/engine/HugePages.h).
// What the kernel may give depends on its THP setting, read here from sysfs: `never` (or no THP, or not Linux) gives
// none, `always` gives them without being asked, `madvise` (the usual one) only when asked.
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { loadModel, type Model } from "../../lib/index.js";
import { cachedModel } from "../helpers/models.js";

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
    it("hugePages (the default) puts the weights on huge pages where the kernel allows; false keeps small pages; the output is the same", async () => {
        const pair = await cachedModel("qwen2.5-vl");
        const huge = await loadModel({ model: pair.model, useMmap: false });
        const small = await loadModel({ model: pair.model, useMmap: false, hugePages: false });
        try {
            const onHuge = huge.info.hugePageBytes;
            if (setting === "never" || setting === "absent") {
                expect(onHuge).toBe(0);
            } else {
                expect(onHuge).toBeGreaterThanOrEqual(2 * MiB);
                expect(onHuge % (2 * MiB)).toBe(0);
                // The kernel's own count for the whole process covers what the model reports. (Not a difference from
                // before the load: other test files' contexts in this process may be freed meanwhile.)
                expect(processAnonHugeBytes()).toBeGreaterThanOrEqual(onHuge);
            }
            if (setting !== "always") expect(small.info.hugePageBytes).toBe(0);
            // Sizes: the weights on huge pages are whole 2 MiB pages of the weights.
            expect(onHuge).toBeLessThanOrEqual(huge.info.sizeBytes);
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
