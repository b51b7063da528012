import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { devices, LlamaVlmError, setLogger, systemInfo, version } from "../../lib/index.js";
import { loadNative, loadNativeFrom, packageRoot } from "../../lib/native.js";

const pin = JSON.parse(fs.readFileSync(path.join(packageRoot, "llama-cpp.pin.json"), "utf8"));
const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot, "package.json"), "utf8"));

function nextLogLines(count: number, minLevel: "debug" | "info" | "warn" | "error" = "debug") {
    return new Promise<Array<[string, string]>>((resolve) => {
        const seen: Array<[string, string]> = [];
        setLogger((level, message) => {
            seen.push([level, message]);
            if (seen.length === count) resolve(seen);
        }, minLevel);
    });
}

describe("version()", () => {
    it("reports the package version and the pinned llama.cpp commit", () => {
        const v = version();
        expect(v.package).toBe(pkg.version);
        expect(v.addon).toBe(pkg.version);
        expect(v.llamaCpp.commit).toBe(pin.commit);
        expect(v.llamaCpp.version).toBe(pin.llamaCppVersion);
        expect(v.compiledBackends).toContain("cpu");
        expect(v.loadedBackends).toContain("CPU");
        expect(v.variant).toBe("cpu");
        expect(v.file).toMatch(/\.node$/);
        // Without a forced build the loader records why it passed over the GPU variants.
        if (!process.env.LLAMA_VLM_ADDON && !process.env.LLAMA_VLM_GPU)
            expect(v.fallbacks.map((f) => f.variant)).toEqual(expect.arrayContaining(["cuda", "vulkan"]));
    });
});

describe("devices()", () => {
    it("lists the CPU with its memory and features", () => {
        const cpu = devices().find((d) => d.type === "cpu");
        expect(cpu).toBeDefined();
        expect(cpu?.backend).toBe("CPU");
        expect(cpu?.memoryTotal).toBeGreaterThan(1e8);
        expect(Object.keys(cpu?.features ?? {}).length).toBeGreaterThan(0);
    });
});

describe("systemInfo()", () => {
    const flags = fs.existsSync("/proc/cpuinfo")
        ? new Set((fs.readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:(.*)$/m)?.[1] ?? "").trim().split(/\s+/))
        : new Set<string>();

    it("names the CPU backend", () => {
        expect(systemInfo()).toMatch(/CPU :/);
    });

    it.skipIf(!flags.has("avx2"))("uses AVX2 when the CPU has it", () => {
        expect(systemInfo()).toMatch(/AVX2 = 1/);
    });

    it.skipIf(!flags.has("avx512f"))("uses AVX-512 when the CPU has it", () => {
        expect(systemInfo()).toMatch(/AVX512 = 1/);
    });
});

describe("setLogger()", () => {
    it("delivers whole lines from llama.cpp's log callback, joining continuation pieces", async () => {
        const lines = nextLogLines(2);
        const native = loadNative();
        native._testLog(3, "first ");
        native._testLog(5, "line\nsecond");
        native._testLog(4, "error line\n");
        expect(await lines).toEqual([
            ["warn", "first line"],
            ["warn", "second"],
        ]);
    });

    it("drops lines below the chosen level", async () => {
        const lines = nextLogLines(1, "error");
        const native = loadNative();
        native._testLog(2, "info line\n");
        native._testLog(3, "warn line\n");
        native._testLog(4, "error line\n");
        expect(await lines).toEqual([["error", "error line"]]);
    });

    it("rejects a logger that is not a function and an unknown level", () => {
        expect(() => setLogger("yes" as never)).toThrow(LlamaVlmError);
        expect(() => setLogger(() => {}, "loud" as never)).toThrow(
            /Expected "minLevel" to be one of debug, info, warn, error/,
        );
    });
});

describe("addon loading", () => {
    it("loads in two worker_threads at once, each with its own logger", async () => {
        // The build this process loaded (LLAMA_VLM_ADDON or LLAMA_VLM_GPU may have chosen it).
        const addonPath = version().file;
        expect(fs.existsSync(addonPath)).toBe(true);
        const fixture = path.join(packageRoot, "test", "fixtures", "worker-addon.mjs");
        const run = (name: string) =>
            new Promise<{ version: { llamaCppCommit: string }; devices: number; lines: Array<{ line: string }> }>(
                (resolve, reject) => {
                    const worker = new Worker(fixture, { workerData: { addonPath, name } });
                    worker.once("message", (m) => {
                        resolve(m);
                        void worker.terminate();
                    });
                    worker.once("error", reject);
                },
            );
        const [a, b] = await Promise.all([run("worker-a"), run("worker-b")]);
        expect(a.version.llamaCppCommit).toBe(pin.commit);
        expect(b.version.llamaCppCommit).toBe(pin.commit);
        expect(a.devices).toBeGreaterThan(0);
        expect(a.lines.map((l) => l.line)).toContain("hello from worker-a");
        expect(b.lines.map((l) => l.line)).toContain("hello from worker-b");
        // After both workers are gone, the main thread's addon still works.
        expect(version().llamaCpp.commit).toBe(pin.commit);
    });

    it("lists every path it tried when no addon loads", () => {
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-loader-"));
        const dir = path.join(root, "prebuilds", `${process.platform}-${process.arch}`);
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, "llama-vlm.node"), "not a shared library");
        let error: unknown;
        try {
            loadNativeFrom(root, {});
        } catch (err) {
            error = err;
        }
        expect(error).toBeInstanceOf(LlamaVlmError);
        const e = error as LlamaVlmError;
        expect(e.code).toBe("NATIVE_LOAD_FAILED");
        expect(e.message).toContain(`cpu: ${path.join(dir, "llama-vlm.node")} (`);
        expect(e.message).toMatch(/invalid ELF header|file too short/);
        expect(e.message).toContain("cuda:");
        expect(e.message).toContain("npm run build:native");
    });
});
