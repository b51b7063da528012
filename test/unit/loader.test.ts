import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
    AddonLoadError,
    type LoadAttempt,
    type LoaderEnvironment,
    runtimeHint,
    runtimeName,
    selectAddon,
    type Variant,
} from "../../lib/loader.js";

// Selection order, fallbacks and the forced choice, on fake variant folders: the "addon" a file loads
// is its own name, and a file whose content is "broken" fails to load like a binary with a missing driver.
let root: string;
const tuple = `${process.platform}-${process.arch}`;

function place(relative: string, content = "ok") {
    const file = path.join(root, relative);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
}

function env(overrides: Partial<LoaderEnvironment> & { gpus?: Variant[] } = {}): LoaderEnvironment {
    const gpus = overrides.gpus ?? [];
    return {
        root,
        platform: process.platform,
        arch: process.arch,
        env: {},
        available: (v) => gpus.includes(v),
        load: (file) => {
            if (fs.readFileSync(file, "utf8") === "broken")
                throw new Error(`libcudart.so.12: cannot open shared object file (${path.basename(file)})`);
            return path.relative(root, file);
        },
        ...overrides,
    };
}

beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-variants-"));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe("addon variant selection", () => {
    it("prefers CUDA, then Vulkan, then CPU, among the variants this machine can run", () => {
        place(`prebuilds/${tuple}/llama-vlm.node`);
        place(`prebuilds/${tuple}/vulkan/llama-vlm.node`);
        place(`prebuilds/${tuple}/cuda/llama-vlm.node`);
        expect(selectAddon(env({ gpus: ["cuda", "vulkan"] })).variant).toBe("cuda");
        expect(selectAddon(env({ gpus: ["vulkan"] })).variant).toBe("vulkan");
        const cpu = selectAddon(env({ gpus: [] }));
        expect(cpu.variant).toBe("cpu");
        expect(cpu.attempts.find((a) => a.variant === "cuda")?.reason).toMatch(/no cuda driver/);
    });

    it("falls back to the next variant with the reason when a variant does not load", () => {
        place(`prebuilds/${tuple}/llama-vlm.node`);
        place(`prebuilds/${tuple}/cuda/llama-vlm.node`, "broken");
        const outcome = selectAddon(env({ gpus: ["cuda"] }));
        expect(outcome.variant).toBe("cpu");
        expect(outcome.addon).toBe(path.join("prebuilds", tuple, "llama-vlm.node"));
        expect(outcome.attempts[0]).toMatchObject({ variant: "cuda", reason: expect.stringContaining("libcudart") });
    });

    it("uses prebuilds before local builds, and local builds when there are no prebuilds", () => {
        place("build/Release/llama-vlm.node");
        expect(selectAddon(env()).addon).toBe(path.join("build", "Release", "llama-vlm.node"));
        place(`prebuilds/${tuple}/llama-vlm.node`);
        expect(selectAddon(env()).addon).toBe(path.join("prebuilds", tuple, "llama-vlm.node"));
        place("build/vulkan/llama-vlm.node");
        expect(selectAddon(env({ gpus: ["vulkan"] })).addon).toBe(path.join("build", "vulkan", "llama-vlm.node"));
    });

    it("LLAMA_VLM_GPU forces a variant, even one the probe would skip, and fails clearly when it is missing", () => {
        place(`prebuilds/${tuple}/llama-vlm.node`);
        place(`prebuilds/${tuple}/vulkan/llama-vlm.node`);
        place(`prebuilds/${tuple}/cuda/llama-vlm.node`);
        expect(selectAddon(env({ env: { LLAMA_VLM_GPU: "cpu" }, gpus: ["cuda"] })).variant).toBe("cpu");
        expect(selectAddon(env({ env: { LLAMA_VLM_GPU: "vulkan" }, gpus: [] })).variant).toBe("vulkan");
        expect(() => selectAddon(env({ env: { LLAMA_VLM_GPU: "metal" } }))).toThrow(
            /LLAMA_VLM_GPU=metal is set but no metal build/,
        );
        expect(() => selectAddon(env({ env: { LLAMA_VLM_GPU: "rocm" } }))).toThrow(
            /must be one of cuda, vulkan, metal, cpu/,
        );
    });

    it("lists every attempt when nothing loads", () => {
        place(`prebuilds/${tuple}/llama-vlm.node`, "broken");
        let error: unknown;
        try {
            selectAddon(env());
        } catch (err) {
            error = err;
        }
        expect(error).toBeInstanceOf(AddonLoadError);
        const attempts = (error as AddonLoadError).attempts;
        expect(attempts.map((a) => a.variant)).toEqual(["cuda", "vulkan", "metal", "cpu"]);
        expect(attempts.at(-1)?.reason).toContain("libcudart");
    });
});

describe("the runtime in load errors", () => {
    it("names Bun, Deno or Node with its version", () => {
        expect(runtimeName({ Bun: { version: "1.4.5" } })).toBe("bun 1.4.5");
        expect(runtimeName({ Deno: { version: { deno: "2.9.6" } } })).toBe("deno 2.9.6");
        expect(runtimeName({})).toBe(`node ${process.versions.node}`);
    });

    it("tells Deno users to allow FFI when that is why the addon did not load, and nobody else", () => {
        const denied: LoadAttempt[] = [
            { variant: "cpu", file: "/x/llama-vlm.node", reason: 'Requires ffi access to "/x/llama-vlm.node"' },
        ];
        expect(runtimeHint("deno 2.9.6", denied)).toMatch(/--allow-ffi/);
        expect(runtimeHint("node 22.23.3", denied)).toBeUndefined();
        expect(runtimeHint("deno 2.9.6", [{ variant: "cpu", file: "/x/llama-vlm.node", reason: "not built" }])).toBe(
            undefined,
        );
    });
});
