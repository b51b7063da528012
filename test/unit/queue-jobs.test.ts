import { describe, expect, it } from "vitest";
import { extractSettings } from "../../lib/extraction.js";
import { canonicalJson, failureReason, jobIdOf, parseFailure } from "../../lib/queue/jobs.js";

describe("queue job ids and failure reasons", () => {
    it("the job id depends on the image and every setting, not on the order of keys", () => {
        const image = "a".repeat(64);
        const base = extractSettings({ maxTokens: 16, sampling: { temperature: 0, topK: 5 } });
        const reordered = extractSettings({ sampling: { topK: 5, temperature: 0 }, maxTokens: 16 });
        expect(canonicalJson(base)).toBe(canonicalJson(reordered));
        expect(jobIdOf(image, base)).toBe(jobIdOf(image, reordered));
        expect(jobIdOf(image, base)).toMatch(/^[0-9a-f]{64}$/);
        const others = [
            jobIdOf("b".repeat(64), base),
            jobIdOf(image, extractSettings({ maxTokens: 17, sampling: { temperature: 0, topK: 5 } })),
            jobIdOf(image, extractSettings({ maxTokens: 16, sampling: { temperature: 0, topK: 6 } })),
            jobIdOf(image, extractSettings({ maxTokens: 16, prompt: "Other", sampling: { temperature: 0, topK: 5 } })),
            jobIdOf(
                image,
                extractSettings({ maxTokens: 16, preset: "clinical", sampling: { temperature: 0, topK: 5 } }),
            ),
        ];
        expect(new Set([jobIdOf(image, base), ...others]).size).toBe(6);
    });

    it("the clinical preset brings its prompt and schema, and refuses a grammar of its own", () => {
        const clinical = extractSettings({ preset: "clinical" });
        expect(clinical.prompt).toContain("medication");
        expect(clinical.sampling.jsonSchema).toBeDefined();
        expect(() => extractSettings({ preset: "clinical", sampling: { grammar: 'root ::= "x"' } })).toThrow(
            expect.objectContaining({ code: "INVALID_OPTION" }),
        );
    });

    it("a failure reason carries its code across Redis", () => {
        expect(parseFailure(failureReason("IMAGE_CHANGED", "scan.png changed:\nsubmit it again"))).toEqual({
            code: "IMAGE_CHANGED",
            message: "scan.png changed:\nsubmit it again",
        });
        // BullMQ's own reason for a job whose workers kept dying.
        expect(parseFailure("job stalled more than allowable limit")).toEqual({
            code: "CRASHED",
            message: "job stalled more than allowable limit",
        });
        expect(parseFailure("something else")).toEqual({ code: "NATIVE_ERROR", message: "something else" });
    });
});
