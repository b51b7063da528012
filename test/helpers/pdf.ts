/**
 * PDFs for the document tests, written here (lib/documents/pdf-writer.ts writes the objects; the hostile ones are
 * built by editing them): a 3-page letter with text and a drawn table on each page, and the bad ones.
 */
import sharp from "sharp";
import { type PdfPage, pdfFromObjects, pdfObjects, writePdf } from "../../lib/documents/pdf-writer.js";

/** US Letter, with a title, a paragraph and a 4 × 5 table of ruled cells. */
export function letterPage(n: number): PdfPage {
    const texts = [
        { x: 50, y: 740, size: 18, text: `Discharge summary, page ${n}`, bold: true },
        { x: 50, y: 710, size: 11, text: `Patient: Jane Doe, 67, female. Diagnosis ${n}: hypertension.` },
        { x: 50, y: 694, size: 11, text: "Medications continued at discharge are listed in the table below." },
    ];
    const lines = [];
    const top = 640;
    const cols = [50, 200, 300, 420, 560];
    for (let r = 0; r <= 5; r++) lines.push({ x1: 50, y1: top - r * 24, x2: 560, y2: top - r * 24 });
    for (const x of cols) lines.push({ x1: x, y1: top, x2: x, y2: top - 5 * 24 });
    for (const [c, h] of ["Medication", "Dose", "Route", "Frequency"].entries()) {
        texts.push({ x: cols[c]! + 6, y: top - 17, size: 11, text: h, bold: true });
    }
    for (let r = 1; r < 5; r++) {
        for (const [c, v] of ["Metformin", "500 mg", "oral", "twice daily"].entries()) {
            texts.push({ x: cols[c]! + 6, y: top - r * 24 - 17, size: 11, text: `${v}${c === 0 ? ` ${n}.${r}` : ""}` });
        }
    }
    return { width: 612, height: 792, texts, lines };
}

export function threePagePdf(): Buffer {
    return writePdf([letterPage(1), letterPage(2), letterPage(3)]);
}

/** A standard-security /Encrypt dictionary (RC4, 128 bits) whose passwords match nothing. */
export function encryptedPdf(): Buffer {
    const objects = pdfObjects([letterPage(1)]);
    objects.push(`<< /Filter /Standard /V 2 /R 3 /Length 128 /P -4 /O <${"11".repeat(32)}> /U <${"22".repeat(32)}> >>`);
    const id = "33".repeat(16);
    return pdfFromObjects(objects, `/Root 1 0 R /Encrypt ${objects.length} 0 R /ID [<${id}> <${id}>]`);
}

/** The 3-page PDF cut in half. */
export function truncatedPdf(): Buffer {
    const pdf = threePagePdf();
    return pdf.subarray(0, Math.floor(pdf.length / 2));
}

/** A page tree that lists one page 100,000 times: a PDF that declares 100,000 pages (about 600 KB). */
export function hundredThousandPagePdf(): Buffer {
    const objects = pdfObjects([letterPage(1)]);
    objects[1] = `<< /Type /Pages /Kids [${"5 0 R ".repeat(100_000)}] /Count 100000 >>`;
    return pdfFromObjects(objects, "/Root 1 0 R");
}

/** One page of 20,000 × 20,000 points. */
export function hugePagePdf(): Buffer {
    return writePdf([{ width: 20_000, height: 20_000, texts: [{ x: 50, y: 19_000, size: 200, text: "huge" }] }]);
}

/** A 3-page TIFF: 300×200 pages, red, green and blue, each with a dark bar 20 px high at a different height. */
export async function threePageTiff(): Promise<Buffer> {
    const pages = await Promise.all(
        ["#cc2222", "#22cc22", "#2222cc"].map(async (colour, i) => {
            const bar = await sharp({
                create: { width: 300, height: 20, channels: 3, background: "#101010" },
            })
                .png()
                .toBuffer();
            return sharp({ create: { width: 300, height: 200, channels: 3, background: colour } })
                .composite([{ input: bar, top: 40 + 50 * i, left: 0 }])
                .png()
                .toBuffer();
        }),
    );
    return sharp(pages, { join: { animated: true } })
        .tiff()
        .toBuffer();
}
