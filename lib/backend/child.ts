/**
 * The engine process of an isolated model (see process.ts): runs the in-process backend — the same load and context
 * code as a model loaded in the application — and forwards its contexts' events to the parent. Messages are
 * handled in arrival order; loads and context creation are awaited before the next message, so a request submitted
 * right after a restart meets its context.
 * @internal
 */

import { LlamaVlmError, toWire } from "../errors.js";
import { setLogger } from "../system.js";
import { inProcessBackend } from "./in-process.js";
import type { LoadedInfo, ToChild, ToParent } from "./process.js";
import type { EngineContext, LoadedModel, LoadSpec, NativeContextParams, NativeEvent, NativeRequest } from "./types.js";

let model: LoadedModel | undefined;
/** Aborts the load in progress, for an abortLoad that arrives meanwhile. */
let loading: AbortController | undefined;

interface ChildContext {
    engine: EngineContext | undefined;
    /** Child id → parent id, and back. */
    toParent: Map<number, number>;
    toChild: Map<number, number>;
}
const contexts = new Map<number, ChildContext>();

function send(message: ToParent): void {
    if (process.connected) process.send?.(message);
}

async function load(spec: LoadSpec): Promise<LoadedInfo> {
    loading = new AbortController();
    try {
        model = await inProcessBackend.load(spec, (value) => send({ op: "progress", value }), loading.signal);
    } finally {
        loading = undefined;
    }
    return { model: model.info, projector: model.projector };
}

async function createContext(key: number, params: NativeContextParams): Promise<unknown> {
    if (model === undefined) throw new LlamaVlmError("CRASHED", "The model is not loaded");
    const ctx: ChildContext = { engine: undefined, toParent: new Map(), toChild: new Map() };
    ctx.engine = await model.createContext(params, (events) => forward(key, ctx, events));
    contexts.set(key, ctx);
    return ctx.engine.info();
}

function forward(key: number, ctx: ChildContext, events: NativeEvent[]): void {
    const out: NativeEvent[] = [];
    for (const e of events) {
        const id = ctx.toParent.get(e.id);
        if (id === undefined) continue;
        if (e.type !== "token") {
            ctx.toParent.delete(e.id);
            ctx.toChild.delete(id);
        }
        out.push({ ...e, id });
    }
    if (out.length > 0) send({ op: "events", ctx: key, events: out });
}

function submit(key: number, id: number, request: NativeRequest): void {
    const ctx = contexts.get(key);
    try {
        if (ctx?.engine === undefined) {
            throw new LlamaVlmError("CRASHED", "The engine process lost this context (it could not be restored)");
        }
        const childId = ctx.engine.submit(request);
        ctx.toParent.set(childId, id);
        ctx.toChild.set(id, childId);
    } catch (err) {
        send({ op: "events", ctx: key, events: [{ id, type: "error", ...toWire(err) }] });
    }
}

async function exit(): Promise<void> {
    for (const ctx of contexts.values()) await ctx.engine?.dispose();
    contexts.clear();
    model?.dispose();
    process.exit(0);
}

async function handle(m: ToChild): Promise<void> {
    switch (m.op) {
        case "load":
            if (m.logLevel === null) setLogger(null);
            else setLogger((level, message) => send({ op: "log", level, message }), m.logLevel);
            return reply(m.call, () => load(m.spec));
        case "createContext":
            return reply(m.call, () => createContext(m.ctx, m.params));
        case "disposeContext":
            return reply(m.call, async () => {
                const ctx = contexts.get(m.ctx);
                contexts.delete(m.ctx);
                await ctx?.engine?.dispose();
            });
        case "submit":
            return submit(m.ctx, m.id, m.request);
        case "exit":
            return exit();
        default:
            return;
    }
}

async function reply(call: number, work: () => Promise<unknown>): Promise<void> {
    try {
        send({ op: "reply", call, value: await work() });
    } catch (err) {
        send({ op: "reply", call, error: toWire(err) });
    }
}

let queue = Promise.resolve();
process.on("message", (raw) => {
    const m = raw as ToChild;
    // These act at once: a cancel or an aborted load must not wait behind the work it stops.
    if (m.op === "cancel") {
        const ctx = contexts.get(m.ctx);
        const childId = ctx?.toChild.get(m.id);
        if (ctx?.engine !== undefined && childId !== undefined) ctx.engine.cancel(childId);
        return;
    }
    if (m.op === "abortLoad") {
        loading?.abort();
        return;
    }
    if (m.op === "testFault") {
        try {
            contexts.get(m.ctx)?.engine?.testFault(m.kind);
        } catch (err) {
            send({ op: "log", level: "error", message: `testFault: ${toWire(err).message}` });
        }
        return;
    }
    queue = queue.then(() => handle(m));
});
// The parent is gone (it exited or was killed): nothing is left to serve.
process.on("disconnect", () => process.exit(0));
