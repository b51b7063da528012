/**
 * PDF pages → pixels, with PDFium compiled to WebAssembly (`@hyzyla/pdfium`), in a worker thread that is
 * terminated when an operation runs past its time. A hostile PDF therefore costs at most that time and the
 * worker's memory; it cannot block the event loop, and a trap inside PDFium is an exception in the worker, not a
 * crash of the process. Every failure is a coded LlamaVlmError.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { LlamaVlmError } from "../errors.js";
import { RENDER_WORKER_SOURCE } from "./render-worker.js";

/** A document with more pages than this is refused (`TOO_MANY_PAGES`) before any page is rendered. */
export const MAX_DOCUMENT_PAGES = 10_000;
/**
 * A page wider or taller than this, in points, is refused (`PAGE_TOO_LARGE`): 14,400 pt (200 inches) is the
 * largest page PDF itself allows (ISO 32000-1, annex C).
 */
export const MAX_PAGE_POINTS = 14_400;
/** How long one operation (opening a document, rendering a page) may take before the worker is terminated. */
let operationTimeoutMs = 60_000;

/** Sets the time limit of one render operation (tests use a short one). @internal */
export function setRenderTimeout(ms: number): void {
    operationTimeoutMs = ms;
}

/** `%PDF-` within the first 1024 bytes, where readers look for it. */
export function isPdf(bytes: Uint8Array): boolean {
    const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 1024)).toString("latin1");
    return head.includes("%PDF-");
}

interface Reply {
    id: number;
    ok: boolean;
    value?: unknown;
    kind?: string;
    message?: string;
}

interface Job {
    message: Record<string, unknown>;
    transfer: ArrayBuffer[];
    resolve: (value: unknown) => void;
    reject: (error: Error) => void;
}

class RenderWorker {
    private worker: Worker | undefined;
    private readonly queue: Job[] = [];
    private running: { job: Job; id: number; timer: NodeJS.Timeout } | undefined;
    private nextId = 1;
    /** Bumped when a worker is replaced: document handles of an older one are gone. */
    generation = 0;

    call(message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<unknown> {
        return new Promise((resolve, reject) => {
            this.queue.push({ message, transfer, resolve, reject });
            this.pump();
        });
    }

    private start(): Worker {
        const pdfium = createRequire(import.meta.url).resolve("@hyzyla/pdfium");
        const worker = new Worker(RENDER_WORKER_SOURCE, {
            eval: true,
            workerData: { pdfium, testFaults: process.env.LLAMA_VLM_TEST_FAULTS === "1" },
        });
        worker.on("message", (reply: Reply) => {
            const running = this.running;
            if (!running || reply.id !== running.id) return;
            clearTimeout(running.timer);
            this.running = undefined;
            if (reply.ok) running.job.resolve(reply.value);
            else {
                running.job.reject(Object.assign(new Error(reply.message ?? "render failed"), { kind: reply.kind }));
                // Past a failure that is not a plain refusal of the file, PDFium's state is not trusted: a new worker.
                if (reply.kind === "other") {
                    this.worker = undefined;
                    this.generation++;
                    void worker.terminate();
                }
            }
            this.pump();
        });
        const died = (why: string) => {
            if (this.worker !== worker) return;
            this.worker = undefined;
            this.generation++;
            const running = this.running;
            this.running = undefined;
            if (running) {
                clearTimeout(running.timer);
                running.job.reject(Object.assign(new Error(why), { kind: "crashed" }));
            }
            this.pump();
        };
        worker.on("error", (err) => died(`the PDF renderer failed: ${err.message}`));
        worker.on("exit", (code) => died(`the PDF renderer exited (code ${code})`));
        return worker;
    }

    private pump(): void {
        if (this.running || this.queue.length === 0) {
            if (!this.running) this.worker?.unref();
            return;
        }
        const job = this.queue.shift()!;
        this.worker ??= this.start();
        const worker = this.worker;
        worker.ref();
        const id = this.nextId++;
        const timer = setTimeout(() => {
            if (this.running?.id !== id) return;
            this.running = undefined;
            this.worker = undefined;
            this.generation++;
            void worker.terminate();
            job.reject(
                Object.assign(new Error(`the PDF renderer did not finish in ${operationTimeoutMs / 1000} s`), {
                    kind: "timeout",
                }),
            );
            this.pump();
        }, operationTimeoutMs);
        this.running = { job, id, timer };
        worker.postMessage({ ...job.message, id }, job.transfer);
    }

    /** Ends the worker (the next call starts a new one). */
    async stop(): Promise<void> {
        const worker = this.worker;
        this.worker = undefined;
        this.generation++;
        if (worker) await worker.terminate();
    }
}

const renderer = new RenderWorker();

/** Terminates the render worker; the next render starts a new one. @internal */
export function stopRenderWorker(): Promise<void> {
    return renderer.stop();
}

/** Runs the worker's spin fault for `ms` (only with LLAMA_VLM_TEST_FAULTS=1): a stand-in for a PDF that hangs. @internal */
export async function spinRenderWorker(ms: number): Promise<void> {
    await renderer.call({ op: "spin", ms }).catch((err: Error & { kind?: string }) => {
        throw toDocumentError(err, "the test fault");
    });
}

function toDocumentError(err: Error & { kind?: string }, name: string): LlamaVlmError {
    if (err instanceof LlamaVlmError) return err;
    switch (err.kind) {
        case "password":
            return new LlamaVlmError(
                "DOCUMENT_ENCRYPTED",
                `${name} is encrypted (${err.message}); decrypt it first (e.g. qpdf --decrypt --password=… in.pdf out.pdf)`,
            );
        case "format":
            return new LlamaVlmError(
                "DOCUMENT_CORRUPT",
                `${name} is not a readable PDF (${err.message}): it may be truncated or damaged`,
            );
        case "timeout":
            return new LlamaVlmError("DOCUMENT_CORRUPT", `${name}: ${err.message}; the renderer was stopped`);
        default:
            return new LlamaVlmError("DOCUMENT_CORRUPT", `${name} could not be rendered: ${err.message}`);
    }
}

/** An open PDF in the render worker. Close it when done. */
export interface PdfHandle {
    readonly pageCount: number;
    /** Page size in points (1/72 inch); `index` is 0-based. */
    pageSize(index: number): Promise<{ width: number; height: number }>;
    /** The page on white, exactly width × height pixels, RGBA. */
    render(index: number, width: number, height: number): Promise<Uint8Array>;
    close(): Promise<void>;
}

/** Opens a PDF in the render worker and checks its page count against MAX_DOCUMENT_PAGES. */
export async function openPdf(bytes: Uint8Array, name: string): Promise<PdfHandle> {
    const copy = new Uint8Array(bytes); // transferred to the worker
    const call = async (message: Record<string, unknown>, transfer: ArrayBuffer[] = []) => {
        try {
            return await renderer.call(message, transfer);
        } catch (err) {
            throw toDocumentError(err as Error, name);
        }
    };
    const { handle, pageCount } = (await call({ op: "open", bytes: copy.buffer }, [copy.buffer])) as {
        handle: number;
        pageCount: number;
    };
    const generation = renderer.generation;
    const live = () => {
        if (renderer.generation !== generation) {
            throw new LlamaVlmError("DOCUMENT_CORRUPT", `${name}: the PDF renderer was restarted while it was open`);
        }
    };
    const close = async () => {
        if (renderer.generation === generation) await renderer.call({ op: "close", handle }).catch(() => undefined);
    };
    if (pageCount < 1) {
        await close();
        throw new LlamaVlmError("DOCUMENT_CORRUPT", `${name} has no pages`);
    }
    if (pageCount > MAX_DOCUMENT_PAGES) {
        await close();
        throw new LlamaVlmError(
            "TOO_MANY_PAGES",
            `${name} declares ${pageCount} pages; at most ${MAX_DOCUMENT_PAGES} are read (split the document)`,
        );
    }
    return {
        pageCount,
        async pageSize(index) {
            live();
            const size = (await call({ op: "size", handle, index })) as { width: number; height: number };
            if (!(size.width > 0 && size.height > 0)) {
                throw new LlamaVlmError(
                    "DOCUMENT_CORRUPT",
                    `${name} page ${index + 1} has no size (${size.width} × ${size.height} pt)`,
                );
            }
            if (size.width > MAX_PAGE_POINTS || size.height > MAX_PAGE_POINTS) {
                throw new LlamaVlmError(
                    "PAGE_TOO_LARGE",
                    `${name} page ${index + 1} is ${Math.round(size.width)} × ${Math.round(size.height)} pt; ` +
                        `pages up to ${MAX_PAGE_POINTS} pt (200 inches) a side are rendered`,
                );
            }
            return size;
        },
        async render(index, width, height) {
            live();
            const { data } = (await call({ op: "render", handle, index, width, height })) as { data: Uint8Array };
            return data;
        },
        close,
    };
}
