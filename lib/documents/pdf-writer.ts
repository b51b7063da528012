/**
 * A minimal PDF writer: pages of text (Helvetica, one of the 14 fonts every PDF reader has) and straight lines.
 * Enough for the demo's generated documents, the tests' and the benchmark's; not a general PDF library.
 */

/** Text drawn at (x, y) in points from the bottom-left corner. */
export interface PdfText {
    x: number;
    y: number;
    size: number;
    text: string;
    bold?: boolean;
}

/** A straight line from (x1, y1) to (x2, y2), in points. */
export interface PdfLine {
    x1: number;
    y1: number;
    x2: number;
    y2: number;
    width?: number;
}

export interface PdfPage {
    /** In points (1/72 inch). US Letter is 612 × 792, A4 595 × 842. */
    width: number;
    height: number;
    texts?: readonly PdfText[];
    lines?: readonly PdfLine[];
}

/** PDF string literal: backslash, parentheses escaped; characters outside Latin-1 become "?". */
function pdfString(s: string): string {
    return `(${s.replace(/[^\x20-\xff]/g, "?").replace(/[\\()]/g, (c) => `\\${c}`)})`;
}

function contentStream(page: PdfPage): string {
    const ops: string[] = [];
    for (const l of page.lines ?? []) ops.push(`${l.width ?? 1} w ${l.x1} ${l.y1} m ${l.x2} ${l.y2} l S`);
    for (const t of page.texts ?? []) {
        ops.push(`BT /${t.bold ? "F2" : "F1"} ${t.size} Tf ${t.x} ${t.y} Td ${pdfString(t.text)} Tj ET`);
    }
    return ops.join("\n");
}

/**
 * A PDF file from numbered objects (object i + 1 is `objects[i]`, without its `obj`/`endobj` lines) and the
 * trailer dictionary's entries (e.g. `/Root 1 0 R`). Writes a correct cross-reference table.
 */
export function pdfFromObjects(objects: readonly string[], trailer: string): Buffer {
    let body = "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    const offsets: number[] = [];
    for (const [i, obj] of objects.entries()) {
        offsets.push(Buffer.byteLength(body, "latin1"));
        body += `${i + 1} 0 obj\n${obj}\nendobj\n`;
    }
    const xref = Buffer.byteLength(body, "latin1");
    body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
    for (const o of offsets) body += `${String(o).padStart(10, "0")} 00000 n \n`;
    body += `trailer\n<< /Size ${objects.length + 1} ${trailer} >>\nstartxref\n${xref}\n%%EOF\n`;
    return Buffer.from(body, "latin1");
}

/** The objects of a document with these pages: 1 catalog, 2 page tree, 3–4 fonts, then page and content pairs. */
export function pdfObjects(pages: readonly PdfPage[]): string[] {
    const kids = pages.map((_, i) => `${5 + 2 * i} 0 R`).join(" ");
    const objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        `<< /Type /Pages /Kids [${kids}] /Count ${pages.length} >>`,
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    ];
    for (const [i, page] of pages.entries()) {
        const stream = contentStream(page);
        objects.push(
            `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${page.width} ${page.height}] ` +
                `/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents ${6 + 2 * i} 0 R >>`,
            `<< /Length ${Buffer.byteLength(stream, "latin1")} >>\nstream\n${stream}\nendstream`,
        );
    }
    return objects;
}

/** A PDF of these pages. */
export function writePdf(pages: readonly PdfPage[]): Buffer {
    return pdfFromObjects(pdfObjects(pages), "/Root 1 0 R");
}
