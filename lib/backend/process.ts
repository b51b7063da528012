/**
 * The process backend (`loadModel({ isolation: "process" })`): the model's weights, projector and engine threads
 * live in a child process (child.ts, which runs the in-process backend), so a native abort inside llama.cpp (a
 * GGML_ASSERT, an out-of-memory kill) ends that process and not the application. This process keeps everything
 * else — validation, image decoding, chat templates and the tokenizer (from a vocabulary-only copy of the model),
 * streaming — so `Model` and `Context` work the same either way.
 *
 * When the child dies, every request in flight fails with CRASHED and a new child loads the model again and
 * re-creates the contexts; requests submitted meanwhile wait for it. After MAX_CRASHES deaths with no request
 * completed in between, the engine stops restarting and requests fail at once with CRASHED.
 * @internal
 */

import { type ChildProcess, fork } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { fromWire, LlamaVlmError, type WireError } from "../errors.js";
import { packageRoot } from "../native.js";
import { currentLogLevel, emitLog, type LogLevel } from "../system.js";
import { inProcessBackend, loadAborted } from "./in-process.js";
import type {
    Backend,
    EngineContext,
    EngineContextInfo,
    LoadedModel,
    LoadSpec,
    NativeContextParams,
    NativeEvent,
    NativeModel,
    NativeModelInfo,
    NativeRequest,
    ProjectorInfo,
    TestFault,
} from "./types.js";

export const processBackend: Backend = {
    async load(spec: LoadSpec, onProgress?: (progress: number) => void, signal?: AbortSignal): Promise<LoadedModel> {
        if (signal?.aborted) throw loadAborted();
        const engine = await EngineProcess.start(spec, onProgress, signal);
        let vocab: LoadedModel;
        try {
            vocab = await inProcessBackend.load({
                model: spec.model,
                projector: undefined,
                modelParams: { gpuLayers: 0, useMmap: true, useMlock: false, vocabOnly: true, hugePages: false },
                projectorParams: spec.projectorParams,
            });
        } catch (err) {
            engine.dispose();
            throw err;
        }
        return new ProcessModel(vocab, engine);
    },
};

/** How many times in a row (no request completed in between) the engine process may die before it stays down. */
export const MAX_CRASHES = 3;

export interface LoadedInfo {
    model: NativeModelInfo;
    projector: ProjectorInfo | null;
}

/** Parent → child. */
export type ToChild =
    | { op: "load"; call: number; spec: LoadSpec; logLevel: LogLevel | null }
    | { op: "abortLoad" }
    | { op: "createContext"; call: number; ctx: number; params: NativeContextParams }
    | { op: "disposeContext"; call: number; ctx: number }
    | { op: "submit"; ctx: number; id: number; request: NativeRequest }
    | { op: "cancel"; ctx: number; id: number }
    | { op: "testFault"; ctx: number; kind: TestFault }
    | { op: "exit" };

/** Child → parent. */
export type ToParent =
    | { op: "reply"; call: number; value?: unknown; error?: WireError }
    | { op: "progress"; value: number }
    | { op: "events"; ctx: number; events: NativeEvent[] }
    | { op: "log"; level: LogLevel; message: string };

/** The compiled child entry: beside this file in dist/backend/, or in dist/ of the package when running from sources. */
function childEntry(): string {
    const here = fileURLToPath(new URL("./child.js", import.meta.url));
    if (fs.existsSync(here)) return here;
    const built = path.join(packageRoot, "dist", "backend", "child.js");
    if (fs.existsSync(built)) return built;
    throw new LlamaVlmError(
        "NATIVE_LOAD_FAILED",
        `The engine process entry is missing (${here}, ${built}): run "npm run compile"`,
    );
}

interface Call {
    resolve: (value: unknown) => void;
    reject: (error: LlamaVlmError) => void;
}

/** One child process holding one model and its contexts. */
export class EngineProcess {
    info: LoadedInfo | undefined;
    private child: ChildProcess | undefined;
    private readonly calls = new Map<number, Call>();
    private nextCall = 1;
    private readonly contexts = new Map<number, RemoteContext>();
    private nextContext = 1;
    private holds = 0;
    private stderrTail = "";
    private crashesInARow = 0;
    /** Set when the engine stays down: why. */
    private broken: string | undefined;
    private disposed = false;
    private onProgress: ((progress: number) => void) | undefined;

    private constructor(private readonly spec: LoadSpec) {}

    /** Starts the child and loads the model in it. */
    static async start(
        spec: LoadSpec,
        onProgress: ((progress: number) => void) | undefined,
        signal: AbortSignal | undefined,
    ): Promise<EngineProcess> {
        const engine = new EngineProcess(spec);
        engine.onProgress = onProgress;
        engine.spawn();
        const onAbort = () => engine.post({ op: "abortLoad" });
        signal?.addEventListener("abort", onAbort, { once: true });
        try {
            engine.info = (await engine.call({ op: "load", spec, logLevel: currentLogLevel() })) as LoadedInfo;
        } catch (err) {
            engine.dispose();
            throw err;
        } finally {
            signal?.removeEventListener("abort", onAbort);
            engine.onProgress = undefined;
        }
        return engine;
    }

    private spawn(): void {
        this.stderrTail = "";
        const child = fork(childEntry(), [], {
            serialization: "advanced",
            stdio: ["ignore", "inherit", "pipe", "ipc"],
        });
        this.child = child;
        child.on("message", (m) => this.onMessage(m as ToParent));
        child.on("error", () => {}); // spawn failures surface as "exit"
        child.on("exit", (code, signal) => this.onExit(child, code, signal));
        const stderr = child.stderr as Readable;
        stderr.on("data", (chunk: Buffer) => {
            process.stderr.write(chunk);
            this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-4096);
        });
        this.applyHolds();
    }

    /** Keeps this process alive while the child has work (a pending call or a running request). */
    hold(delta: 1 | -1): void {
        this.holds += delta;
        this.applyHolds();
    }

    private applyHolds(): void {
        const child = this.child;
        if (child === undefined) return;
        const stderr = child.stderr as Refable<Readable> | null;
        // Bun's IPC channel has neither ref nor unref (child.ref/unref cover it there): called only where they exist.
        const channel = child.channel as Refable<object> | null | undefined;
        if (this.holds > 0) {
            child.ref();
            channel?.ref?.();
            stderr?.ref?.();
        } else {
            child.unref();
            channel?.unref?.();
            stderr?.unref?.();
        }
    }

    call(message: DistributiveOmit<ToChild & { call: number }, "call">): Promise<unknown> {
        if (this.broken !== undefined) return Promise.reject(this.crashError(this.broken));
        const call = this.nextCall++;
        this.hold(1);
        return new Promise<unknown>((resolve, reject) => {
            this.calls.set(call, { resolve, reject });
            this.post({ ...message, call } as ToChild);
        }).finally(() => this.hold(-1));
    }

    post(message: ToChild): void {
        const child = this.child;
        if (child === undefined || !child.connected) return;
        child.send(message, (err) => {
            // The child went away between the check and the write: its "exit" handler fails the work.
            if (err) return;
        });
    }

    /** A context in the child: created there before this resolves. */
    async newContext(params: NativeContextParams, onEvents: (events: NativeEvent[]) => void): Promise<RemoteContext> {
        const ctx = new RemoteContext(this, this.nextContext++, onEvents);
        this.contexts.set(ctx.key, ctx);
        try {
            await ctx.open(params);
        } catch (err) {
            this.contexts.delete(ctx.key);
            throw err;
        }
        return ctx;
    }

    forget(ctx: RemoteContext): void {
        this.contexts.delete(ctx.key);
    }

    get down(): string | undefined {
        return this.broken;
    }

    crashError(reason: string): LlamaVlmError {
        return new LlamaVlmError("CRASHED", reason);
    }

    private onMessage(m: ToParent): void {
        switch (m.op) {
            case "reply": {
                const call = this.calls.get(m.call);
                if (call === undefined) return;
                this.calls.delete(m.call);
                if (m.error) call.reject(fromWire(m.error));
                else call.resolve(m.value);
                return;
            }
            case "progress":
                this.onProgress?.(m.value);
                return;
            case "events": {
                if (m.events.some((e) => e.type === "done")) this.crashesInARow = 0;
                this.contexts.get(m.ctx)?.deliver(m.events);
                return;
            }
            case "log":
                emitLog(m.level, m.message);
                return;
        }
    }

    private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
        if (child !== this.child) return;
        this.child = undefined;
        if (this.disposed) return;
        if (this.broken !== undefined) {
            for (const ctx of this.contexts.values()) ctx.crashed(this.broken);
            return;
        }
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        const last = lastMeaningfulLine(this.stderrTail);
        const reason = `The engine process ${how}${last ? ` (its last output: ${last})` : ""}`;
        this.crashesInARow++;
        const restarting = this.crashesInARow < MAX_CRASHES;
        const message = `${reason}; ${restarting ? "it is restarting for the next request" : `it died ${this.crashesInARow} times in a row and stays down: load the model again`}`;
        for (const [id, call] of this.calls) {
            this.calls.delete(id);
            call.reject(this.crashError(message));
        }
        for (const ctx of this.contexts.values()) ctx.crashed(message);
        if (!restarting) {
            this.broken = message;
            return;
        }
        this.restart(message);
    }

    /** A new child: the model again, then every live context with its parameters, in that order. */
    private restart(reason: string): void {
        this.spawn();
        const fail = (err: unknown) => {
            // A death during the restart is counted by onExit; this is for a load that fails cleanly.
            if (this.disposed || (err as LlamaVlmError).code === "CRASHED") return;
            this.broken = `${reason}; restarting failed: ${(err as Error).message}`;
            this.child?.kill("SIGKILL");
        };
        this.call({ op: "load", spec: this.spec, logLevel: currentLogLevel() }).catch(fail);
        for (const ctx of this.contexts.values()) {
            if (ctx.params !== undefined)
                this.call({ op: "createContext", ctx: ctx.key, params: ctx.params }).catch(fail);
        }
    }

    /** Ends the child: it frees its model and exits; it is killed if it does not within 5 s. */
    dispose(): void {
        if (this.disposed) return;
        this.disposed = true;
        for (const [id, call] of this.calls) {
            this.calls.delete(id);
            call.reject(new LlamaVlmError("DISPOSED", "The model was disposed"));
        }
        const child = this.child;
        if (child === undefined) return;
        this.holds = 0;
        this.applyHolds();
        this.post({ op: "exit" });
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        timer.unref();
        child.once("exit", () => clearTimeout(timer));
    }
}

/** A handle that may or may not keep the event loop alive on its own, depending on the runtime. */
type Refable<T> = T & { ref?: () => void; unref?: () => void };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function lastMeaningfulLine(text: string): string | undefined {
    const lines = text
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
    return [...lines].reverse().find((l) => /GGML_ASSERT|GGML_ABORT|error|abort|fault/i.test(l)) ?? lines.at(-1);
}

/** A context living in the engine process. Request ids are the parent's; the child maps them to its own. */
class RemoteContext implements EngineContext {
    params: NativeContextParams | undefined;
    private contextInfo: EngineContextInfo | undefined;
    private readonly inFlight = new Set<number>();
    private nextId = 1;
    private disposed = false;
    private refs = 0;

    constructor(
        private readonly engine: EngineProcess,
        readonly key: number,
        private readonly onEvents: (events: NativeEvent[]) => void,
    ) {}

    async open(params: NativeContextParams): Promise<void> {
        this.contextInfo = (await this.engine.call({
            op: "createContext",
            ctx: this.key,
            params,
        })) as EngineContextInfo;
        this.params = params;
    }

    submit(request: NativeRequest): number {
        if (this.disposed) throw new LlamaVlmError("DISPOSED", "The context was disposed");
        const down = this.engine.down;
        if (down !== undefined) throw this.engine.crashError(down);
        const id = this.nextId++;
        this.inFlight.add(id);
        this.engine.post({ op: "submit", ctx: this.key, id, request });
        return id;
    }

    cancel(id: number): void {
        if (this.inFlight.has(id)) this.engine.post({ op: "cancel", ctx: this.key, id });
    }

    info(): EngineContextInfo {
        if (this.contextInfo === undefined) throw new LlamaVlmError("DISPOSED", "The context is not initialised");
        return this.contextInfo;
    }

    ref(): void {
        if (this.refs++ === 0) this.engine.hold(1);
    }

    unref(): void {
        if (this.refs > 0 && --this.refs === 0) this.engine.hold(-1);
    }

    /** Test-only: asks the engine in the child for a fault (needs LLAMA_VLM_TEST_FAULTS=1 there). */
    testFault(kind: TestFault): void {
        this.engine.post({ op: "testFault", ctx: this.key, kind });
    }

    async dispose(): Promise<void> {
        if (this.disposed) return;
        this.disposed = true;
        if (this.params !== undefined && this.engine.down === undefined) {
            await this.engine.call({ op: "disposeContext", ctx: this.key }).catch(() => {});
        }
        this.engine.forget(this);
        while (this.refs > 0) this.unref();
    }

    deliver(events: NativeEvent[]): void {
        for (const e of events) if (e.type !== "token") this.inFlight.delete(e.id);
        this.onEvents(events);
    }

    crashed(message: string): void {
        const events: NativeEvent[] = [...this.inFlight].map((id) => ({
            id,
            type: "error",
            code: "CRASHED",
            message,
        }));
        this.inFlight.clear();
        if (events.length > 0) this.onEvents(events);
    }
}

/** An isolated model: its weights and engines in the child, a vocabulary-only copy here for tokens and templates. */
class ProcessModel implements LoadedModel {
    readonly info: NativeModelInfo;
    readonly projector: ProjectorInfo | null;
    readonly vocab: NativeModel;

    constructor(
        private readonly vocabModel: LoadedModel,
        private readonly engine: EngineProcess,
    ) {
        const loaded = engine.info!;
        this.info = loaded.model;
        this.projector = loaded.projector;
        this.vocab = vocabModel.vocab;
    }

    createContext(params: NativeContextParams, onEvents: (events: NativeEvent[]) => void): Promise<EngineContext> {
        return this.engine.newContext(params, onEvents);
    }

    dispose(): void {
        this.engine.dispose();
        this.vocabModel.dispose();
    }
}
