/**
 * The engine process of an isolated model (see isolation.ts): loads the model and projector, runs contexts, and
 * forwards their events to the parent. Messages are handled in arrival order; loads and context creation are
 * awaited before the next message, so a request submitted right after a restart meets its context.
 * @internal
 */

import type { EngineSpec, ToChild, ToParent } from "./isolation.js";
import {
    loadNative,
    type NativeContext,
    type NativeEvent,
    type NativeModel,
    type NativeProjector,
    type TestFault,
} from "./native.js";
import { setLogger } from "./system.js";

const native = loadNative();
let model: NativeModel | undefined;
/** The model being loaded, for an abort that arrives meanwhile. */
let loading: NativeModel | undefined;
let projector: NativeProjector | null = null;

interface ChildContext {
    native: NativeContext;
    /** Child id → parent id, and back. */
    toParent: Map<number, number>;
    toChild: Map<number, number>;
}
const contexts = new Map<number, ChildContext>();

function send(message: ToParent): void {
    if (process.connected) process.send?.(message);
}

function failure(err: unknown): { code: string; message: string } {
    const e = err as { code?: unknown; message?: unknown };
    return {
        code: typeof e.code === "string" ? e.code : "NATIVE_ERROR",
        message: typeof e.message === "string" ? e.message : String(err),
    };
}

async function load(spec: EngineSpec): Promise<unknown> {
    const m = new native.Model();
    loading = m;
    try {
        await m.load(spec.model, spec.modelParams, (value) => send({ op: "progress", value }));
    } finally {
        loading = undefined;
    }
    model = m;
    if (spec.projector !== undefined) {
        const p = new native.Projector();
        await p.load(m, spec.projector, spec.projectorParams);
        projector = p;
    }
    return { model: m.info(), projector: projector?.info() ?? null };
}

async function createContext(key: number, params: Parameters<NativeContext["init"]>[2]): Promise<unknown> {
    if (model === undefined) throw Object.assign(new Error("The model is not loaded"), { code: "CRASHED" });
    const ctx: ChildContext = { native: new native.Context(), toParent: new Map(), toChild: new Map() };
    await ctx.native.init(model, projector, params, (events) => forward(key, ctx, events));
    contexts.set(key, ctx);
    return ctx.native.info();
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

function submit(key: number, id: number, request: Parameters<NativeContext["submit"]>[0]): void {
    const ctx = contexts.get(key);
    try {
        if (ctx === undefined) {
            throw Object.assign(new Error("The engine process lost this context (it could not be restored)"), {
                code: "CRASHED",
            });
        }
        const childId = ctx.native.submit(request);
        ctx.toParent.set(childId, id);
        ctx.toChild.set(id, childId);
    } catch (err) {
        send({ op: "events", ctx: key, events: [{ id, type: "error", ...failure(err) }] });
    }
}

async function exit(): Promise<void> {
    for (const ctx of contexts.values()) await ctx.native.dispose();
    contexts.clear();
    projector?.dispose();
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
                await ctx?.native.dispose();
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
        send({ op: "reply", call, error: failure(err) });
    }
}

let queue = Promise.resolve();
process.on("message", (raw) => {
    const m = raw as ToChild;
    // These act at once: a cancel or an aborted load must not wait behind the work it stops.
    if (m.op === "cancel") {
        const ctx = contexts.get(m.ctx);
        const childId = ctx?.toChild.get(m.id);
        if (ctx !== undefined && childId !== undefined) ctx.native.cancel(childId);
        return;
    }
    if (m.op === "abortLoad") {
        loading?.abortLoad();
        return;
    }
    if (m.op === "testFault") {
        const ctx = contexts.get(m.ctx);
        try {
            ctx?.native.testFault(m.kind as TestFault);
        } catch (err) {
            send({ op: "log", level: "error", message: `testFault: ${failure(err).message}` });
        }
        return;
    }
    queue = queue.then(() => handle(m));
});
// The parent is gone (it exited or was killed): nothing is left to serve.
process.on("disconnect", () => process.exit(0));
