/**
 * The PDF render worker's source. It runs in a `worker_thread` (lib/documents/pdf.ts) so that a slow or hostile
 * PDF costs that thread, never the event loop: the main thread terminates it when an operation runs past its
 * time. Kept as source text (run with `eval: true`) so that it runs the same from lib/ under the tests and from
 * dist/, with no separate file to locate; it is plain CommonJS and loads PDFium (WebAssembly) by the path the
 * main thread resolved.
 *
 * Messages in: `{ id, op: "open", bytes }` → `{ handle, pageCount }`; `{ id, op: "size", handle, index }` →
 * `{ width, height }` in points; `{ id, op: "render", handle, index, width, height }` → `{ data }` (RGBA, the page
 * on white, exactly width × height pixels); `{ id, op: "close", handle }`. Out: `{ id, ok: true, value }` or
 * `{ id, ok: false, kind, message }`, kind being "password", "format" or "other".
 * `page.module` and `page.pageIdx` are @hyzyla/pdfium's internals (no public call closes a page that was not
 * rendered): package.json pins its exact version for that reason.
 * @internal
 */
export const RENDER_WORKER_SOURCE = `
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
// PDFium's (Emscripten's) messages are not the process's to print: stdout may be the caller's JSONL.
for (const k of ["log", "info", "warn", "error", "debug"]) console[k] = () => {};
let library;
const documents = new Map();
let nextHandle = 1;
function fail(message, kind) {
    const e = new Error(message);
    e.kind = kind;
    return e;
}
async function handle(m) {
    if (m.op === "spin" && workerData.testFaults) {
        const end = Date.now() + m.ms;
        while (Date.now() < end);
        return null;
    }
    if (library === undefined) {
        const { PDFiumLibrary } = require(workerData.pdfium);
        library = await PDFiumLibrary.init();
    }
    if (m.op === "open") {
        let doc;
        try {
            doc = await library.loadDocument(new Uint8Array(m.bytes));
        } catch (err) {
            const text = String(err && err.message);
            throw fail(text, /password|security/i.test(text) ? "password" : "format");
        }
        const handle = nextHandle++;
        documents.set(handle, doc);
        return { handle, pageCount: doc.getPageCount() };
    }
    const doc = documents.get(m.handle);
    if (doc === undefined) throw fail("unknown document handle", "other");
    if (m.op === "close") {
        documents.delete(m.handle);
        doc.destroy();
        return null;
    }
    const page = doc.getPage(m.index);
    if (m.op === "size") {
        try {
            const { originalWidth, originalHeight } = page.getOriginalSize();
            return { width: originalWidth, height: originalHeight };
        } finally {
            page.module._FPDF_ClosePage(page.pageIdx);
        }
    }
    if (m.op === "render") {
        // scale 1 with width/height: PDFium fits the page into exactly width × height pixels. render() closes the page.
        const r = await page.render({ scale: 1, width: m.width, height: m.height, render: "bitmap", colorSpace: "BGRA" });
        if (r.width !== m.width || r.height !== m.height) throw fail("rendered " + r.width + "x" + r.height, "other");
        return { data: r.data };
    }
    throw fail("unknown operation " + m.op, "other");
}
parentPort.on("message", (m) => {
    handle(m).then(
        (value) => {
            const transfer = value && value.data ? [value.data.buffer] : [];
            parentPort.postMessage({ id: m.id, ok: true, value }, transfer);
        },
        (err) => {
            parentPort.postMessage({
                id: m.id,
                ok: false,
                kind: (err && err.kind) || "other",
                message: String((err && err.message) || err),
            });
        },
    );
});
`;
