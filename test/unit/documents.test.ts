import { afterAll, describe, expect, it } from "vitest";
import { mergeClinical } from "../../lib/clinical.js";
import { documentInfo, documentPages, parsePageRanges, selectPages } from "../../lib/documents/pages.js";
import { MAX_DOCUMENT_PAGES, setRenderTimeout, spinRenderWorker, stopRenderWorker } from "../../lib/documents/pdf.js";
import { ERROR_CODES, type LlamaVlmError } from "../../lib/errors.js";
import { prepareImage, resolveBudget } from "../../lib/images.js";
import {
    encryptedPdf,
    hugePagePdf,
    hundredThousandPagePdf,
    threePagePdf,
    threePageTiff,
    truncatedPdf,
} from "../helpers/pdf.js";

afterAll(() => stopRenderWorker());

async function codeOf(p: Promise<unknown>): Promise<string> {
    try {
        await p;
    } catch (err) {
        return (err as LlamaVlmError).code;
    }
    return "completed";
}

/** The size docs/documents (README, pageRenderSize's JSDoc) promise for a page of w × h points and budget P. */
function promised(wPt: number, hPt: number, maxPixels: number) {
    const s = Math.sqrt(maxPixels / (wPt * hPt));
    return { width: Math.floor(wPt * s), height: Math.floor(hPt * s), dpi: 72 * s };
}

describe("page selection", () => {
    it("reads all, single pages, ranges and lists, in the order given, without duplicates", () => {
        expect(selectPages("all", 3)).toEqual([1, 2, 3]);
        expect(selectPages("2", 3)).toEqual([2]);
        expect(selectPages("1-3", 5)).toEqual([1, 2, 3]);
        expect(selectPages("4, 1-2,2", 5)).toEqual([4, 1, 2]);
        expect(selectPages([3, 1], 3)).toEqual([3, 1]);
        expect(parsePageRanges("1-3,7")).toEqual([
            [1, 3],
            [7, 7],
        ]);
    });

    it("refuses bad selections and pages past the end with INVALID_OPTION", () => {
        for (const bad of ["0", "3-1", "x", "1-", "", "1.5"]) {
            expect(() => selectPages(bad, 3), bad).toThrow(expect.objectContaining({ code: "INVALID_OPTION" }));
        }
        expect(() => selectPages("4", 3)).toThrow(/has 3 pages/);
        expect(() => selectPages([0], 3)).toThrow(expect.objectContaining({ code: "INVALID_OPTION" }));
        expect(() => selectPages([], 3)).toThrow(expect.objectContaining({ code: "INVALID_OPTION" }));
    });
});

describe("PDF pages", () => {
    it("a 3-page PDF has 3 pages, and documentPages lists the selected ones", async () => {
        const pdf = threePagePdf();
        expect(await documentInfo(pdf)).toEqual({ kind: "pdf", pageCount: 3 });
        expect((await documentPages(pdf)).map((p) => p.page)).toEqual([1, 2, 3]);
        expect(await documentPages(pdf, { pages: "2", dpi: 100 })).toEqual([{ document: pdf, page: 2, dpi: 100 }]);
    });

    it.each([250_000, 1_000_000, 2_000_000])(
        "a page rendered for maxPixels %i has the promised size (±1 px) and shows its text and table",
        async (maxPixels) => {
            const image = await prepareImage({ document: threePagePdf(), page: 2 }, 0, resolveBudget({ maxPixels }));
            const want = promised(612, 792, maxPixels);
            expect(Math.abs(image.width - want.width)).toBeLessThanOrEqual(1);
            expect(Math.abs(image.height - want.height)).toBeLessThanOrEqual(1);
            expect(image.width * image.height).toBeLessThanOrEqual(maxPixels);
            expect(image.dpi).toBeCloseTo(want.dpi, 6);
            const s = image.width / 612;
            const row = (yPt: number) => Math.round((792 - yPt) * s);
            const dark = (y: number, x0: number, x1: number) => {
                let n = 0;
                for (let x = Math.round(x0 * s); x < Math.round(x1 * s); x++) {
                    const i = (y * image.width + x) * 3;
                    if (image.data[i]! + image.data[i + 1]! + image.data[i + 2]! < 3 * 160) n++;
                }
                return n / (Math.round(x1 * s) - Math.round(x0 * s));
            };
            // The table's top rule (y = 640 pt) is a dark line across the table; above the title is white paper.
            const rule = Math.max(...[-1, 0, 1].map((d) => dark(row(640) + d, 60, 550)));
            expect(rule).toBeGreaterThan(0.9);
            expect(dark(row(775), 50, 560)).toBe(0);
            // The title's glyphs: some dark pixels on its middle line, not a solid bar.
            const title = Math.max(...[0, 1, 2, 3].map((d) => dark(row(745) + d, 50, 300)));
            expect(title).toBeGreaterThan(0.05);
            expect(title).toBeLessThan(0.9);
        },
    );

    it("a forced dpi renders at that resolution; a PDF given as plain bytes is its first page", async () => {
        const forced = await prepareImage(
            { document: threePagePdf(), page: 1, dpi: 100 },
            0,
            resolveBudget({ maxPixels: 4_000_000 }),
        );
        expect([forced.width, forced.height, forced.dpi]).toEqual([850, 1100, 100]);
        const plain = await prepareImage(threePagePdf(), 0, resolveBudget({ maxPixels: 500_000 }));
        const first = await prepareImage(
            { document: threePagePdf(), page: 1 },
            0,
            resolveBudget({ maxPixels: 500_000 }),
        );
        expect(plain.id).toBe(first.id);
        const second = await prepareImage(
            { document: threePagePdf(), page: 2 },
            0,
            resolveBudget({ maxPixels: 500_000 }),
        );
        expect(second.id).not.toBe(first.id);
    });

    it("hostile PDFs get coded errors and the renderer goes on", async () => {
        const budget = resolveBudget({ maxPixels: 250_000 });
        const render = (document: Buffer, page = 1) => prepareImage({ document, page }, 0, budget);
        expect(await codeOf(render(encryptedPdf()))).toBe("DOCUMENT_ENCRYPTED");
        expect(await codeOf(render(truncatedPdf()))).toBe("DOCUMENT_CORRUPT");
        expect(await codeOf(render(Buffer.from("%PDF-1.7\nnot really")))).toBe("DOCUMENT_CORRUPT");
        expect(await codeOf(documentInfo(hundredThousandPagePdf()))).toBe("TOO_MANY_PAGES");
        expect(await codeOf(render(hundredThousandPagePdf()))).toBe("TOO_MANY_PAGES");
        expect(MAX_DOCUMENT_PAGES).toBeLessThan(100_000);
        expect(await codeOf(render(hugePagePdf()))).toBe("PAGE_TOO_LARGE");
        expect(await codeOf(render(threePagePdf(), 4))).toBe("INVALID_OPTION");
        const forced = prepareImage(
            { document: threePagePdf(), page: 1, dpi: 2400 },
            0,
            resolveBudget({ maxInputPixels: 10_000_000 }),
        );
        expect(await codeOf(forced)).toBe("OVER_BUDGET");
        expect(await codeOf(prepareImage({ document: "/nonexistent.pdf", page: 1 }, 0, budget))).toBe("FILE_NOT_FOUND");
        expect(await codeOf(render(threePagePdf(), 2))).toBe("completed");
        for (const code of ["DOCUMENT_ENCRYPTED", "DOCUMENT_CORRUPT", "TOO_MANY_PAGES", "PAGE_TOO_LARGE"]) {
            expect(ERROR_CODES).toContain(code);
        }
    });

    it("a render that runs past its time is stopped with DOCUMENT_CORRUPT, and the next one works", async () => {
        process.env.LLAMA_VLM_TEST_FAULTS = "1";
        await stopRenderWorker(); // the next worker starts with the test fault enabled
        setRenderTimeout(500);
        try {
            const spin = spinRenderWorker(60_000);
            await expect(spin).rejects.toMatchObject({ code: "DOCUMENT_CORRUPT", message: /did not finish/ });
        } finally {
            setRenderTimeout(60_000);
            delete process.env.LLAMA_VLM_TEST_FAULTS;
        }
        const image = await prepareImage(
            { document: threePagePdf(), page: 3 },
            0,
            resolveBudget({ maxPixels: 100_000 }),
        );
        expect(image.width * image.height).toBeLessThanOrEqual(100_000);
    });
});

describe("multi-page images", () => {
    it("a 3-page TIFF has 3 pages and each page decodes to its own pixels", async () => {
        const tiff = await threePageTiff();
        expect(await documentInfo(tiff)).toEqual({ kind: "image", pageCount: 3 });
        const budget = resolveBudget();
        for (const page of [1, 2, 3]) {
            const image = await prepareImage({ document: tiff, page }, 0, budget);
            expect([image.width, image.height]).toEqual([300, 200]);
            const at = (y: number) => [...image.data.subarray(y * 300 * 3, y * 300 * 3 + 3)];
            const bar = 40 + 50 * (page - 1) + 10;
            expect(Math.max(...at(bar))).toBeLessThan(40);
            const paper = at(bar === 150 ? 20 : 150);
            expect(paper.indexOf(Math.max(...paper))).toBe(page - 1); // red, green, blue
        }
        expect(await codeOf(prepareImage({ document: tiff, page: 4 }, 0, budget))).toBe("INVALID_OPTION");
    });
});

describe("clinical merge", () => {
    it("takes the first named patient, and the union of conditions and medications without duplicates", () => {
        const med = (name: string, dose = "500 mg") => ({
            name,
            dose,
            route: "oral",
            frequency: "daily",
            duration: "30 days",
        });
        const merged = mergeClinical([
            {
                patient: { name: " ", age: 0, sex: "unknown" },
                conditions: ["Hypertension"],
                medications: [med("Metformin")],
            },
            {
                patient: { name: "Jane Doe", age: 67, sex: "female" },
                conditions: ["hypertension ", "Asthma"],
                medications: [med("metformin"), med("Salbutamol", "100 mcg")],
            },
            {
                patient: { name: "J. Doe", age: 66, sex: "female" },
                conditions: [],
                medications: [med("Metformin", "1 g")],
            },
        ]);
        expect(merged).toEqual({
            patient: { name: "Jane Doe", age: 67, sex: "female" },
            conditions: ["Hypertension", "Asthma"],
            medications: [med("Metformin"), med("Salbutamol", "100 mcg"), med("Metformin", "1 g")],
        });
    });
});
