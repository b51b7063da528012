/**
 * Finds and loads the native addon: the best variant this machine can run (CUDA when an NVIDIA driver is
 * present, then Vulkan, then Metal on macOS, then CPU), from prebuilds/ first, then local builds, falling
 * back with a recorded reason when a variant does not load. LLAMA_VLM_GPU=cpu|cuda|vulkan|metal forces
 * one; LLAMA_VLM_ADDON=/path/to/file.node forces a file.
 *
 * Layout: a CPU binary sits in prebuilds/<platform>-<arch>/ (portable, with its shared libraries) or
 * build/Release/ (local build); a GPU variant in prebuilds/<platform>-<arch>/<variant>/ or build/<variant>/.
 * @internal
 */
import fs from "node:fs";
import path from "node:path";

export const VARIANTS = ["cuda", "vulkan", "metal", "cpu"] as const;
export type Variant = (typeof VARIANTS)[number];

export interface LoaderEnvironment {
    root: string;
    platform: NodeJS.Platform;
    arch: string;
    env: Record<string, string | undefined>;
    /** Whether the machine has what a GPU variant needs at run time (driver, loader library). */
    available: (variant: Exclude<Variant, "cpu">) => boolean;
    /** Loads a .node file (require in production; a stub in tests). */
    load: (file: string) => unknown;
}

export interface LoadAttempt {
    variant: Variant;
    file: string;
    /** Why this candidate was not used; absent for the one that loaded. */
    reason?: string;
}

export interface LoadOutcome<T> {
    addon: T;
    variant: Variant;
    file: string;
    attempts: LoadAttempt[];
}

function exists(file: string): boolean {
    try {
        return fs.statSync(file).isFile();
    } catch {
        return false;
    }
}

function nodeFilesIn(dir: string): string[] {
    try {
        return fs
            .readdirSync(dir)
            .filter((f) => f.endsWith(".node"))
            .sort()
            .map((f) => path.join(dir, f));
    } catch {
        return [];
    }
}

/** The files a variant may be loaded from, best first. */
export function variantFiles(variant: Variant, root: string, platform: string, arch: string): string[] {
    const prebuilds = path.join(root, "prebuilds", `${platform}-${arch}`);
    if (variant === "cpu") {
        return [
            ...nodeFilesIn(prebuilds),
            ...nodeFilesIn(path.join(root, "build", "Release")),
            ...nodeFilesIn(path.join(root, "build", "Debug")),
        ];
    }
    return [...nodeFilesIn(path.join(prebuilds, variant)), ...nodeFilesIn(path.join(root, "build", variant))];
}

/** Default probe: is the run-time part of a GPU backend on this machine? */
export function gpuAvailable(variant: Exclude<Variant, "cpu">, platform: NodeJS.Platform = process.platform): boolean {
    switch (variant) {
        case "cuda":
            if (platform === "linux")
                return fs.existsSync("/proc/driver/nvidia/version") || fs.existsSync("/dev/nvidiactl");
            if (platform === "win32")
                return exists(path.join(process.env.SystemRoot ?? "C:\\Windows", "System32", "nvcuda.dll"));
            return false;
        case "vulkan":
            if (platform === "linux") {
                return [
                    "/usr/lib/x86_64-linux-gnu",
                    "/usr/lib/aarch64-linux-gnu",
                    "/usr/lib64",
                    "/usr/lib",
                    "/usr/local/lib",
                ].some((d) => exists(path.join(d, "libvulkan.so.1")));
            }
            if (platform === "win32")
                return exists(path.join(process.env.SystemRoot ?? "C:\\Windows", "System32", "vulkan-1.dll"));
            return false;
        case "metal":
            return platform === "darwin";
    }
}

/** The globals by which Bun and Deno make themselves known. */
export interface RuntimeGlobals {
    Bun?: { version: string };
    Deno?: { version: { deno: string } };
}

/** The JavaScript runtime this code runs under, as error messages name it: "node 20.19.0", "bun 1.4.5", "deno 2.9.6". */
export function runtimeName(g: RuntimeGlobals = globalThis as RuntimeGlobals): string {
    if (g.Bun !== undefined) return `bun ${g.Bun.version}`;
    if (g.Deno !== undefined) return `deno ${g.Deno.version.deno}`;
    return `node ${process.versions.node}`;
}

/** What to do about an addon that did not load, when the reason is the runtime's and not the binary's. */
export function runtimeHint(runtime: string, attempts: readonly LoadAttempt[]): string | undefined {
    if (runtime.startsWith("deno ") && attempts.some((a) => /ffi/i.test(a.reason ?? ""))) {
        return "Deno loads native addons only with --allow-ffi (llama-vlm also reads files and the environment and, with isolation, starts a process: -A allows all of it)";
    }
    return undefined;
}

export class AddonLoadError extends Error {
    readonly attempts: LoadAttempt[];
    constructor(message: string, attempts: LoadAttempt[]) {
        super(message);
        this.attempts = attempts;
    }
}

/** Tries the variants in order and returns the first that loads, with every attempt and its reason. */
export function selectAddon<T>(e: LoaderEnvironment): LoadOutcome<T> {
    const attempts: LoadAttempt[] = [];
    const tryFile = (variant: Variant, file: string): T | undefined => {
        try {
            const addon = e.load(file) as T;
            attempts.push({ variant, file });
            return addon;
        } catch (err) {
            attempts.push({ variant, file, reason: (err as Error).message.split("\n")[0] ?? "failed to load" });
            return undefined;
        }
    };

    const forcedFile = e.env.LLAMA_VLM_ADDON;
    if (forcedFile) {
        const file = path.resolve(forcedFile);
        const addon = exists(file) ? tryFile("cpu", file) : undefined;
        if (addon !== undefined) return { addon, variant: "cpu", file, attempts };
        if (!exists(file)) attempts.push({ variant: "cpu", file, reason: "LLAMA_VLM_ADDON points to a missing file" });
        throw new AddonLoadError("LLAMA_VLM_ADDON is set but that file does not load", attempts);
    }

    const forced = e.env.LLAMA_VLM_GPU?.trim().toLowerCase();
    if (forced && !(VARIANTS as readonly string[]).includes(forced)) {
        throw new AddonLoadError(
            `LLAMA_VLM_GPU must be one of ${VARIANTS.join(", ")}, got "${e.env.LLAMA_VLM_GPU}"`,
            attempts,
        );
    }
    const order: Variant[] = forced ? [forced as Variant] : [...VARIANTS];
    for (const variant of order) {
        const files = variantFiles(variant, e.root, e.platform, e.arch);
        if (files.length === 0) {
            attempts.push({
                variant,
                file: path.join(e.root, "prebuilds", `${e.platform}-${e.arch}`, variant === "cpu" ? "" : variant),
                reason: "not built",
            });
            continue;
        }
        if (variant !== "cpu" && !forced && !e.available(variant)) {
            for (const file of files)
                attempts.push({ variant, file, reason: `no ${variant} driver or loader on this machine` });
            continue;
        }
        for (const file of files) {
            const addon = tryFile(variant, file);
            if (addon !== undefined) return { addon, variant, file, attempts };
        }
    }
    throw new AddonLoadError(
        forced
            ? `LLAMA_VLM_GPU=${forced} is set but no ${forced} build of the addon loads`
            : "no build of the addon loads",
        attempts,
    );
}
