/**
 * Process isolation (`loadModel({ isolation: "process" })`): the model's weights, projector and engine threads
 * live in a child process, so a native abort inside llama.cpp (a GGML_ASSERT, an out-of-memory kill) ends that
 * process and not the application. The parent keeps everything else — validation, image decoding, chat
 * templates (from a vocabulary-only copy of the model), stop strings, streaming — and talks to the child through
 * the NativeModel/NativeContext interfaces, so `Model` and `Context` work the same either way.
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
import { fromNative, LlamaVlmError } from "./errors.js";
import type {
    NativeContext,
    NativeContextParams,
    NativeEvent,
    NativeModel,
    NativeModelInfo,
    NativeProjector,
    NativeRequest,
    TestFault,
} from "./native.js";
import { packageRoot } from "./native.js";
import { currentLogLevel, emitLog, type LogLevel } from "./system.js";

/** How many times in a row (no request completed in between) the engine process may die before it stays down. */
export const MAX_CRASHES = 3;

export interface EngineSpec {
    model: string;
    projector: string | undefined;
    modelParams: { gpuLayers: number; useMmap: boolean; useMlock: boolean; vocabOnly: boolean };
    projectorParams: Parameters<NativeProjector["load"]>[2];
}

type ProjectorInfo = ReturnType<NativeProjector["info"]>;
export interface LoadedInfo {
    model: NativeModelInfo;
    projector: ProjectorInfo | null;
}
type ContextInfo = ReturnType<NativeContext["info"]>;

/** Parent → child. */
export type ToChild =
    | { op: "load"; call: number; spec: EngineSpec; logLevel: LogLevel | null }
    | { op: "abortLoad" }
    | { op: "createContext"; call: number; ctx: number; params: NativeContextParams }
    | { op: "disposeContext"; call: number; ctx: number }
    | { op: "submit"; ctx: number; id: number; request: NativeRequest }
    | { op: "cancel"; ctx: number; id: number }
    | { op: "testFault"; ctx: number; kind: string }
    | { op: "exit" };

/** Child → parent. */
export type ToParent =
    | { op: "reply"; call: number; value?: unknown; error?: { code: string; message: string } }
    | { op: "progress"; value: number }
    | { op: "events"; ctx: number; events: NativeEvent[] }
    | { op: "log"; level: LogLevel; message: string };

/** The compiled child entry: beside this file in dist/, or dist/ of the package when running from sources. */
function childEntry(): string {
    const here = fileURLToPath(new URL("./isolation-child.js", import.meta.url));
    if (fs.existsSync(here)) return here;
    const built = path.join(packageRoot, "dist", "isolation-child.js");
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

    private constructor(private readonly spec: EngineSpec) {}

    /** Starts the child and loads the model in it. */
    static async start(
        spec: EngineSpec,
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
        const stderr = child.stderr as (Readable & { ref?: () => void; unref?: () => void }) | null;
        if (this.holds > 0) {
            child.ref();
            child.channel?.ref();
            stderr?.ref?.();
        } else {
            child.unref();
            child.channel?.unref();
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

    newContext(): RemoteContext {
        const ctx = new RemoteContext(this, this.nextContext++);
        this.contexts.set(ctx.key, ctx);
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
                if (m.error) call.reject(fromNative(Object.assign(new Error(m.error.message), { code: m.error.code })));
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

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function lastMeaningfulLine(text: string): string | undefined {
    const lines = text
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
    return [...lines].reverse().find((l) => /GGML_ASSERT|GGML_ABORT|error|abort|fault/i.test(l)) ?? lines.at(-1);
}

/** A context living in the engine process. Request ids are the parent's; the child maps them to its own. */
export class RemoteContext implements NativeContext {
    params: NativeContextParams | undefined;
    private contextInfo: ContextInfo | undefined;
    private onEvents: ((events: NativeEvent[]) => void) | undefined;
    private readonly inFlight = new Set<number>();
    private nextId = 1;
    private disposed = false;
    private refs = 0;

    constructor(
        private readonly engine: EngineProcess,
        readonly key: number,
    ) {}

    async init(
        _model: NativeModel,
        _projector: NativeProjector | null,
        params: NativeContextParams,
        onEvents: (events: NativeEvent[]) => void,
    ): Promise<void> {
        this.onEvents = onEvents;
        this.contextInfo = (await this.engine.call({ op: "createContext", ctx: this.key, params })) as ContextInfo;
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

    info(): ContextInfo {
        if (this.contextInfo === undefined) throw new LlamaVlmError("DISPOSED", "The context is not initialised");
        return this.contextInfo;
    }

    ref(): void {
        if (this.refs++ === 0) this.engine.hold(1);
    }

    unref(): void {
        if (this.refs > 0 && --this.refs === 0) this.engine.hold(-1);
    }

    /** Test-only: asks the engine thread in the child to abort natively (needs LLAMA_VLM_TEST_FAULTS=1 there). */
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
        this.onEvents?.(events);
    }

    crashed(message: string): void {
        const events: NativeEvent[] = [...this.inFlight].map((id) => ({
            id,
            type: "error",
            code: "CRASHED",
            message,
        }));
        this.inFlight.clear();
        if (events.length > 0) this.onEvents?.(events);
    }
}

/** The parent's side of an isolated model: the vocabulary-only copy answers tokenizer and template calls. */
export class RemoteModel implements NativeModel {
    constructor(
        private readonly vocab: NativeModel,
        readonly engine: EngineProcess,
        private readonly loaded: NativeModelInfo,
    ) {}

    load(): Promise<void> {
        throw new LlamaVlmError("NATIVE_ERROR", "An isolated model is loaded by its engine process");
    }
    abortLoad(): void {}
    info(): NativeModelInfo {
        return this.loaded;
    }
    tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array {
        return this.vocab.tokenize(text, addSpecial, parseSpecial);
    }
    detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string {
        return this.vocab.detokenize(tokens, removeSpecial, unparseSpecial);
    }
    tokenBytes(token: number): Buffer {
        return this.vocab.tokenBytes(token);
    }
    isEndOfGeneration(token: number): boolean {
        return this.vocab.isEndOfGeneration(token);
    }
    applyChatTemplate(
        messages: { role: string; content: string }[],
        template: string | null,
        addAssistant: boolean,
    ): string {
        return this.vocab.applyChatTemplate(messages, template, addAssistant);
    }
    dispose(): void {
        this.engine.dispose();
        this.vocab.dispose();
    }
}

/** Stands in for the projector that lives in the engine process. */
export class RemoteProjector implements NativeProjector {
    constructor(private readonly loaded: ProjectorInfo) {}
    load(): Promise<void> {
        throw new LlamaVlmError("NATIVE_ERROR", "An isolated projector is loaded by its engine process");
    }
    info(): ProjectorInfo {
        return this.loaded;
    }
    dispose(): void {}
}
