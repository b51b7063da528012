import { describe, expect, it } from "vitest";
import { LlamaVlmError } from "../../lib/errors.js";
import { formatModelRef, isRemoteRef, parseModelRef, quantOf } from "../../lib/models/ref.js";

describe("parseModelRef", () => {
    it.each([
        ["model.gguf", { kind: "path", path: "model.gguf" }],
        ["/abs/hf:odd/name.gguf", { kind: "path", path: "/abs/hf:odd/name.gguf" }],
        [
            "hf:ggml-org/Qwen2.5-VL-3B-Instruct-GGUF",
            { kind: "hf", repo: "ggml-org/Qwen2.5-VL-3B-Instruct-GGUF", revision: "main" },
        ],
        ["hf:owner/repo:Q4_K_M", { kind: "hf", repo: "owner/repo", quant: "Q4_K_M", revision: "main" }],
        ["hf:owner/repo:q8_0@v1.0", { kind: "hf", repo: "owner/repo", quant: "q8_0", revision: "v1.0" }],
        [
            "hf:owner/repo/sub/dir/model-F16.gguf@0123456789abcdef0123456789abcdef01234567",
            {
                kind: "hf",
                repo: "owner/repo",
                file: "sub/dir/model-F16.gguf",
                revision: "0123456789abcdef0123456789abcdef01234567",
            },
        ],
        ["hf:owner/repo@refs/pr/1", { kind: "hf", repo: "owner/repo", revision: "refs/pr/1" }],
        [
            "https://example.com/a/b/model.gguf?download=1",
            { kind: "url", url: "https://example.com/a/b/model.gguf?download=1" },
        ],
        ["HTTP://127.0.0.1:8080/files/m.gguf", { kind: "url", url: "http://127.0.0.1:8080/files/m.gguf" }],
    ])("%s", (ref, expected) => {
        expect(parseModelRef(ref)).toEqual(expected);
    });

    it.each([
        ["hf:", "owner/name"],
        ["hf:onlyowner", "owner/name"],
        ["hf:owner/repo:Q4 K", "quantisation"],
        ["hf:owner/repo/file.gguf:Q4_0", "not both"],
        ["hf:owner/repo:Q4_0/file.gguf", "quantisation label"],
        ["hf:owner/repo/../etc/passwd", "file path"],
        ["hf:owner/repo@", "revision"],
        ["hf:owner/repo@a..b", "revision"],
        ["https://example.com/models/", "folder"],
    ])("%s is INVALID_OPTION naming what is wrong", (ref, why) => {
        let error: unknown;
        try {
            parseModelRef(ref);
        } catch (e) {
            error = e;
        }
        expect(error).toBeInstanceOf(LlamaVlmError);
        expect((error as LlamaVlmError).code).toBe("INVALID_OPTION");
        expect((error as Error).message).toContain(why);
        expect((error as Error).message).toContain("hf:owner/repo[:quant|/file.gguf][@revision]");
    });

    it("round-trips through formatModelRef", () => {
        for (const ref of [
            "hf:owner/repo",
            "hf:owner/repo:Q4_K_M",
            "hf:owner/repo/a/b.gguf@dev",
            "https://x.org/m.gguf",
        ])
            expect(formatModelRef(parseModelRef(ref))).toBe(ref);
    });

    it("isRemoteRef is true only for hf: and http(s) references", () => {
        expect([
            isRemoteRef("hf:a/b"),
            isRemoteRef("https://x/y.gguf"),
            isRemoteRef("./hf:a/b"),
            isRemoteRef("m.gguf"),
        ]).toEqual([true, true, false, false]);
    });
});

describe("quantOf", () => {
    it.each([
        ["Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf", "Q4_K_M"],
        ["Qwen2.5-VL-3B-Instruct-q8_0.gguf", "Q8_0"],
        ["mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf", "F16"],
        ["mmproj-model-BF16.gguf", "BF16"],
        ["model.IQ4_XS.gguf", "IQ4_XS"],
        ["big-Q4_K_M-00001-of-00003.gguf", "Q4_K_M"],
        ["sub/dir/model-Q5_K_S.gguf", "Q5_K_S"],
        ["model.gguf", undefined],
        ["Qwen2.5-VL.gguf", undefined],
    ])("%s → %s", (name, quant) => {
        expect(quantOf(name)).toBe(quant);
    });
});
