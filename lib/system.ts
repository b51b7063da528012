import fs from "node:fs";
import path from "node:path";
import { LlamaVlmError } from "./errors.js";
import { loadNative, loadOutcome, packageRoot } from "./native.js";

/** A ggml backend device (CPU, GPU, …) as llama.cpp sees it. */
export interface Device {
    /** ggml's device name, e.g. "CPU", "CUDA0", "Vulkan0". */
    name: string;
    /** Human-readable description, e.g. the CPU or GPU model. */
    description: string;
    type: "cpu" | "gpu" | "igpu" | "accel" | "other";
    /** The ggml backend that provides the device, e.g. "CPU", "CUDA". */
    backend: string;
    /** Free device memory in bytes (for the CPU: free system memory). */
    memoryFree: number;
    /** Total device memory in bytes. */
    memoryTotal: number;
    /** Features the backend was compiled with or detected, e.g. { AVX2: "1", ... } for the CPU. */
    features: Record<string, string>;
}

/** Versions of this package and of the llama.cpp it was built from. */
export interface VersionInfo {
    /** llama-vlm package version. */
    package: string;
    /** Version baked into the native addon (equals `package` unless the build is stale). */
    addon: string;
    llamaCpp: { version: string; commit: string };
    /** Backends compiled into this binary, e.g. ["cpu"] or ["cpu", "cuda"]. */
    compiledBackends: string[];
    /** Backends registered at run time (for a portable build: the loaded backend libraries). */
    loadedBackends: string[];
    /** "native": built for this machine's CPU; "portable": prebuilt, CPU level chosen at run time. */
    build: "native" | "portable";
    /** The addon variant that was loaded, its file, and why better variants were not used. */
    variant: "cuda" | "vulkan" | "metal" | "cpu";
    file: string;
    fallbacks: { variant: string; file: string; reason: string }[];
}

/** llama.cpp's system report: CPU features in use, backends, threads. */
export function systemInfo(): string {
    return loadNative().systemInfo();
}

/** The devices llama.cpp can run on. */
export function devices(): Device[] {
    return loadNative()
        .devices()
        .map(({ deviceId: _deviceId, ...d }) => d);
}

let packageVersion: string | undefined;

/** Package, addon and llama.cpp versions, and the compiled backends. */
export function version(): VersionInfo {
    packageVersion ??= (
        JSON.parse(fs.readFileSync(path.join(packageRoot, "package.json"), "utf8")) as { version: string }
    ).version;
    const v = loadNative().version();
    return {
        package: packageVersion,
        addon: v.addon,
        llamaCpp: { version: v.llamaCppVersion, commit: v.llamaCppCommit },
        compiledBackends: v.compiledBackends.split(",").filter(Boolean),
        loadedBackends: v.loadedBackends,
        build: v.build,
        variant: loadOutcome?.variant ?? "cpu",
        file: loadOutcome?.file ?? "",
        fallbacks: (loadOutcome?.attempts ?? [])
            .filter((a) => a.reason !== undefined)
            .map((a) => ({ variant: a.variant, file: a.file, reason: a.reason ?? "" })),
    };
}

/** Number of physical CPU cores: the default thread count for generation. */
export function physicalCores(): number {
    return loadNative().physicalCores();
}

export type LogLevel = "debug" | "info" | "warn" | "error";
export type Logger = (level: LogLevel, message: string) => void;

const LEVELS: Record<LogLevel, number> = { debug: 1, info: 2, warn: 3, error: 4 };
const NAMES: Record<number, LogLevel> = { 1: "debug", 2: "info", 3: "warn", 4: "error" };

/** The default logger (installed when the addon loads, at "warn"): one prefixed line per message to stderr. */
export const defaultLogger: Logger = (level, message) => {
    process.stderr.write(`[llama-vlm] ${level}: ${message}\n`);
};

/**
 * Routes llama.cpp, ggml and mtmd log lines to `logger` (one call per line), at `minLevel` and above.
 * Default: warnings and errors to stderr. `setLogger(null)` silences native logs entirely.
 * Lines arrive asynchronously on the JS thread; the logger is per thread (each worker sets its own).
 */
export function setLogger(logger: Logger | null, minLevel: LogLevel = "warn"): void {
    if (logger !== null && typeof logger !== "function") {
        throw new LlamaVlmError("INVALID_OPTION", `Expected "logger" to be a function or null, got ${typeof logger}`);
    }
    if (!(minLevel in LEVELS)) {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `Expected "minLevel" to be one of ${Object.keys(LEVELS).join(", ")}, got ${JSON.stringify(minLevel)}`,
        );
    }
    const native = loadNative();
    current = logger === null ? null : { logger, minLevel };
    if (logger === null) {
        native.setLogger(null, 0);
        return;
    }
    native.setLogger((level, line) => logger(NAMES[level] ?? "info", line), LEVELS[minLevel]);
}

let current: { logger: Logger; minLevel: LogLevel } | null = { logger: defaultLogger, minLevel: "warn" };

/** The level below which log lines are dropped (null: logging is off). @internal */
export function currentLogLevel(): LogLevel | null {
    return current?.minLevel ?? null;
}

/** Hands a log line from elsewhere (an isolated model's engine process) to the logger set here. @internal */
export function emitLog(level: LogLevel, message: string): void {
    if (current !== null && LEVELS[level] >= LEVELS[current.minLevel]) current.logger(level, message);
}
