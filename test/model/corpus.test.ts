/**
 * The bad-input corpus (docs/reliability.md): every broken model file, hostile or odd image, bad prompt and bad
 * option value ends in its typed error or completes as documented, the process never crashes, and after each
 * one the same context still serves a good request with the same tokens as before.
 */
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTEXT_KEYS, REQUEST_KEYS } from "../../lib/context.js";
import { type ImageInput, prepareImage, resolveBudget } from "../../lib/images.js";
import {
    type CompletionRequest,
    type CompletionResult,
    type Context,
    LlamaVlmError,
    type LlamaVlmErrorCode,
    type LoadModelOptions,
    loadModel,
    type Model,
} from "../../lib/index.js";
import { LOAD_KEYS, PROJECTOR_KEYS } from "../../lib/model.js";
import {
    badOptions,
    externalSvgs,
    type ImageCorpus,
    type ModelCorpus,
    OPTION_CORPUS,
    type OptionScope,
    svgWithExternalDtd,
    svgz,
    writeImageCorpus,
    writeModelCorpus,
} from "../helpers/corpus.js";
import { type TestPair, testImages, tinyPair } from "../helpers/fixtures.js";

const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");

/** What a corpus input must end in: a typed error (with a message naming the problem), or a completion. */
type Outcome =
    | { code: LlamaVlmErrorCode; message?: RegExp }
    | { completes: (result: CompletionResult) => void | Promise<void> };

async function settle(run: () => Promise<unknown>): Promise<{ error?: unknown; result?: unknown }> {
    try {
        return { result: await run() };
    } catch (error) {
        return { error };
    }
}

async function expectOutcome(run: () => Promise<unknown>, outcome: Outcome): Promise<void> {
    const { error, result } = await settle(run);
    if ("code" in outcome) {
        expect(error, `expected a LlamaVlmError ${outcome.code}, got ${String(error ?? "a result")}`).toBeInstanceOf(
            LlamaVlmError,
        );
        expect((error as LlamaVlmError).code, (error as Error).message).toBe(outcome.code);
        if (outcome.message) expect((error as Error).message).toMatch(outcome.message);
    } else {
        expect(error, `expected a completion, got ${String(error)}`).toBeUndefined();
        await outcome.completes(result as CompletionResult);
    }
}

/**
 * Every case settles within 2 s on an idle machine (most in under 0.1 s; the slowest, 1000 images, decodes them
 * all), a few times that on a loaded 2-core one: a case that has not settled after a minute hangs. (A time bound catches nothing else here: each case's outcome says
 * why it failed, e.g. the decompression bomb's error names the maxInputPixels that refused it from its header.)
 */
const HANG_MS = 60_000;

/** Runs `run`, failing with a message when it has not settled after HANG_MS. */
async function noHang(run: () => Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not settled after ${HANG_MS / 1000} s: a hang`)), HANG_MS);
    });
    try {
        await Promise.race([run(), hang]);
    } finally {
        clearTimeout(timer);
    }
}

/** A case's test title: its input and the outcome it proves. */
function titled<T extends [string, ...unknown[]]>(cases: T[]): T[] {
    return cases.map(([name, ...rest]) => {
        const outcome = rest.at(-1) as Outcome;
        return [`${name}: ${"code" in outcome ? outcome.code : "completes"}`, ...rest] as T;
    });
}

const fails = (code: LlamaVlmErrorCode, message?: RegExp): Outcome => ({ code, ...(message ? { message } : {}) });
const completes = (check: (result: CompletionResult) => void | Promise<void> = () => {}): Outcome => ({
    completes: async (result) => {
        expect(result.tokens.length).toBeGreaterThan(0);
        await check(result);
    },
});

let tmp: string;
let qwen: TestPair;
let smol: TestPair;
let goodImage: string;
/** A 32×32 PNG: cheap to decode 1000 times. */
let smallImage: Buffer;
let model: Model;
let context: Context;
let reference: CompletionResult;

const good = (ctx: Context = context) =>
    ctx.complete({ prompt: "<__media__>Describe.", images: [goodImage], temperature: 0, maxTokens: 4 });

/** The same context serves a good request, with the tokens it gave before the corpus. */
async function stillServes(): Promise<void> {
    expect((await good()).tokens).toEqual(reference.tokens);
}

beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-corpus-"));
    qwen = await tinyPair("qwen2.5-vl");
    smol = await tinyPair("smolvlm");
    goodImage = (await testImages())[1]!;
    smallImage = await sharp(fs.readFileSync(goodImage)).resize(32, 32).png().toBuffer();
    model = await loadModel({ model: qwen.model, projector: qwen.projector });
    context = await model.createContext({ contextSize: 1024 });
    reference = await good();
});

afterAll(async () => {
    await model?.dispose();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------

const MODEL_CASES: [name: string, options: (m: ModelCorpus) => LoadModelOptions, outcome: Outcome][] = [
    ["zero bytes", (m) => ({ model: m.zeroBytes }), fails("INVALID_MODEL", /File is empty/)],
    ["wrong magic", (m) => ({ model: m.wrongMagic }), fails("INVALID_MODEL", /GGUF_BAD_MAGIC/)],
    ["truncated header", (m) => ({ model: m.truncatedHeader }), fails("INVALID_MODEL", /GGUF_TRUNCATED/)],
    ["truncated metadata", (m) => ({ model: m.truncatedMetadata }), fails("INVALID_MODEL", /GGUF_TRUNCATED/)],
    ["truncated tensor directory", (m) => ({ model: m.truncatedTensorInfo }), fails("INVALID_MODEL", /TRUNCATED/)],
    ["truncated tensor data", (m) => ({ model: m.truncatedTensorData }), fails("INVALID_MODEL", /past the end/)],
    ["absurd tensor dimensions (2^40)", (m) => ({ model: m.absurdDimensions }), fails("INVALID_MODEL", /past the end/)],
    ["tensor dimensions swapped", (m) => ({ model: m.swappedDimensions }), fails("INVALID_MODEL", /wrong shape/)],
    [
        "unknown architecture",
        (m) => ({ model: m.unknownArchitecture }),
        fails("INVALID_MODEL", /unknown model architecture/),
    ],
    ["metadata value of the wrong type", (m) => ({ model: m.wrongMetadataType }), fails("INVALID_MODEL", /wrong type/)],
    ["zero layers", (m) => ({ model: m.zeroLayers }), fails("INVALID_MODEL", /block_count = 0/)],
    ["a directory instead of a file", (m) => ({ model: m.directory }), fails("FILE_NOT_FOUND", /not a file/)],
    [
        "a directory as projector",
        (m) => ({ model: qwen.model, projector: m.directory }),
        fails("FILE_NOT_FOUND", /not a file/),
    ],
    [
        "truncated projector",
        (m) => ({ model: qwen.model, projector: m.truncatedProjector }),
        fails("INVALID_MODEL", /Projector .*GGUF_TRUNCATED/),
    ],
    [
        "projector of another family (smolvlm's for qwen2.5-vl)",
        () => ({ model: qwen.model, projector: smol.projector }),
        fails("PROJECTOR_MISMATCH", /not a pair/),
    ],
    [
        "projector of another family (qwen2.5-vl's for smolvlm)",
        () => ({ model: smol.model, projector: qwen.projector }),
        fails("PROJECTOR_MISMATCH", /not a pair/),
    ],
    [
        "text model passed as projector",
        () => ({ model: qwen.model, projector: qwen.model }),
        fails("INVALID_MODEL", /not a projector/),
    ],
    ["projector passed as text model", () => ({ model: qwen.projector }), fails("INVALID_MODEL", /is a projector/)],
    [
        "projector tensor dimensions swapped",
        (m) => ({ model: qwen.model, projector: m.swappedProjectorDimensions }),
        fails("INVALID_MODEL", /ffn_gate\.weight is \[128, 64\], expected \[64, 128\]/),
    ],
    [
        "projector width that its tensors do not have",
        (m) => ({ model: qwen.model, projector: m.projectorWrongWidth }),
        fails("INVALID_MODEL", /v\.patch_embd\.weight/),
    ],
    [
        "projector head count that does not divide its width",
        (m) => ({ model: qwen.model, projector: m.projectorBadHeadCount }),
        fails("INVALID_MODEL", /head count 3/),
    ],
    [
        "projector patch size that its kernel does not have",
        (m) => ({ model: qwen.model, projector: m.projectorBadPatchSize }),
        fails("INVALID_MODEL", /expected \[7, 7, 3, 64\]/),
    ],
    [
        "projector image size 0",
        (m) => ({ model: qwen.model, projector: m.projectorZeroImageSize }),
        fails("INVALID_MODEL", /image_size 0/),
    ],
    [
        "projector merge size 3",
        (m) => ({ model: qwen.model, projector: m.projectorBadMerge }),
        fails("INVALID_MODEL", /spatial_merge_size is 3/),
    ],
    [
        "projector scale factor 3 (smolvlm)",
        (m) => ({ model: smol.model, projector: m.smolProjectorBadScale }),
        fails("INVALID_MODEL", /mm\.model\.fc\.weight/),
    ],
    [
        "unknown projector type (smolvlm)",
        (m) => ({ model: smol.model, projector: m.smolProjectorUnknownType }),
        fails("INVALID_MODEL", /unknown projector type/),
    ],
];

describe("models", () => {
    let files: ModelCorpus;
    beforeAll(async () => {
        files = await writeModelCorpus(path.join(tmp, "models"), qwen, smol);
    });

    it.each(titled(MODEL_CASES))("%s, and the context still serves", async (_, options, outcome) => {
        await expectOutcome(() => loadModel(options(files)), outcome);
        await stillServes();
    });
});

// ---------------------------------------------------------------------------------------------------------------

/** Decoded pixels of an image, as the encoder gets them. */
const pixels = (input: ImageInput) => prepareImage(input, 0, resolveBudget());

async function samePixels(a: ImageInput, b: ImageInput): Promise<void> {
    const [x, y] = await Promise.all([pixels(a), pixels(b)]);
    expect([x.width, x.height]).toEqual([y.width, y.height]);
    expect(Buffer.compare(Buffer.from(x.data), Buffer.from(y.data))).toBe(0);
}

let images: ImageCorpus;
let origin: string;
let requests: string[];
let server: http.Server;
/** A file next to the SVGs that reference it by a relative path. */
let secret: string;

const IMAGE_CASES: [name: string, input: () => ImageInput, outcome: Outcome][] = [
    ["truncated PNG", () => images.truncatedPng, fails("IMAGE_DECODE_FAILED", /truncated\.png/)],
    ["truncated JPEG", () => images.truncatedJpeg, fails("IMAGE_DECODE_FAILED", /premature end/i)],
    ["random bytes", () => images.randomBytes, fails("IMAGE_DECODE_FAILED", /unsupported image format/)],
    ["a text file named .png", () => images.textAsPng, fails("IMAGE_DECODE_FAILED", /text\.png/)],
    ["empty bytes", () => new Uint8Array(0), fails("IMAGE_DECODE_FAILED", /empty/)],
    ["a directory", () => tmp, fails("FILE_NOT_FOUND", /not a file/)],
    ["PNG named .jpg", () => images.pngNamedJpg, completes(() => samePixels(images.pngNamedJpg, images.base))],
    ["JPEG named .png", () => images.jpegNamedPng, completes()],
    ["0×0 PNG", () => images.zeroByZero, fails("IMAGE_DECODE_FAILED", /zero-by-zero\.png/)],
    ["0×0 raw pixels", () => ({ data: new Uint8Array(0), width: 0, height: 0 }), fails("INVALID_OPTION", /width/)],
    ["1×1", () => images.onePixel, completes((r) => expect(r.timings.imageTokens).toBeGreaterThan(0))],
    ["1×200", () => images.oneByTwoHundred, completes((r) => expect(r.timings.imageTokens).toBeGreaterThan(0))],
    ["200×1", () => images.twoHundredByOne, completes((r) => expect(r.timings.imageTokens).toBeGreaterThan(0))],
    ["1×20000", () => images.oneByTwentyThousand, fails("IMAGE_DECODE_FAILED", /1×20000.*200:1/)],
    ["20000×1", () => images.twentyThousandByOne, fails("IMAGE_DECODE_FAILED", /20000×1.*200:1/)],
    ["30000×30000 decompression bomb", () => images.bomb, fails("OVER_BUDGET", /maxInputPixels 100000000/)],
    ["16-bit PNG", () => images.sixteenBit, completes(() => samePixels(images.sixteenBit, images.base))],
    [
        "CMYK JPEG",
        () => images.cmykJpeg,
        completes(async () => {
            const [cmyk, rgb] = await Promise.all([pixels(images.cmykJpeg), pixels(images.base)]);
            let diff = 0;
            for (let i = 0; i < rgb.data.length; i++) diff += Math.abs(cmyk.data[i]! - rgb.data[i]!);
            expect(diff / rgb.data.length).toBeLessThan(12); // converted to sRGB, not read as RGB
        }),
    ],
    ["palette PNG", () => images.palette, completes(() => samePixels(images.palette, images.paletteAsRgb))],
    ["alpha PNG", () => images.alpha, completes(() => samePixels(images.alpha, images.alphaOnWhite))],
    [
        "animated GIF",
        () => images.animatedGif,
        completes(async () => {
            const first = await pixels(images.animatedGif);
            expect([first.width, first.height]).toEqual([64, 48]);
            expect(Math.max(...first.data)).toBeLessThan(0x40); // the dark first frame, not the light second
        }),
    ],
    [
        "EXIF-rotated JPEG",
        () => images.exifRotated,
        completes(async () => {
            const rotated = await pixels(images.exifRotated);
            expect([rotated.width, rotated.height]).toEqual([48, 64]);
        }),
    ],
    ["self-contained SVG", () => images.svgSelfContained, completes()],
    [
        "SVG whose DOCTYPE names an external DTD",
        () => Buffer.from(svgWithExternalDtd(origin)),
        completes(() => expect(requests).toEqual([])),
    ],
    [
        "SVG file referencing a file next to it",
        () => svgFile("relative.svg", externalSvgs(origin, secret)["image href relative path"]!),
        fails("IMAGE_DECODE_FAILED", /references "secret\.png"/),
    ],
    [
        "SVG file referencing a URL",
        () => svgFile("url.svg", externalSvgs(origin, secret)["image href http"]!),
        fails("IMAGE_DECODE_FAILED", /references "http:\/\/127\.0\.0\.1/),
    ],
    [
        "gzip-compressed SVG (.svgz) referencing a URL",
        () => svgz(externalSvgs(origin, secret)["use href http"]!),
        fails("IMAGE_DECODE_FAILED", /references/),
    ],
    ...Object.keys(externalSvgs("http://x", "/x")).map((name): [string, () => ImageInput, Outcome] => [
        `SVG with an external reference: ${name}`,
        () => Buffer.from(externalSvgs(origin, secret)[name]!),
        fails("IMAGE_DECODE_FAILED", /is an SVG that references/),
    ]),
];

function svgFile(name: string, svg: string): string {
    const file = path.join(path.dirname(secret), name);
    fs.writeFileSync(file, svg);
    return file;
}

describe("images", () => {
    beforeAll(async () => {
        images = await writeImageCorpus(path.join(tmp, "images"));
        secret = path.join(tmp, "images", "secret.png");
        fs.copyFileSync(images.base, secret);
        requests = [];
        server = http.createServer((req, res) => {
            requests.push(req.url ?? "");
            res.end();
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => {
        server?.close();
    });

    it.each(titled(IMAGE_CASES))("%s, and the context still serves", async (_, input, outcome) => {
        await noHang(() =>
            expectOutcome(
                () =>
                    context.complete({
                        prompt: "<__media__>Describe.",
                        images: [input()],
                        temperature: 0,
                        maxTokens: 4,
                    }),
                outcome,
            ),
        );
        expect(requests).toEqual([]);
        await stillServes();
    });

    it("the local server works, and nothing in the corpus reached it", async () => {
        expect(requests).toEqual([]);
        await fetch(`${origin}/probe`);
        expect(requests).toEqual(["/probe"]);
    });

    describe("smolvlm (encoder that scales the longest side to a fixed size)", () => {
        let smolModel: Model;
        let smolContext: Context;
        let smolReference: CompletionResult;
        beforeAll(async () => {
            smolModel = await loadModel({ model: smol.model, projector: smol.projector });
            smolContext = await smolModel.createContext({ contextSize: 1024 });
            smolReference = await good(smolContext);
        });
        afterAll(async () => {
            await smolModel?.dispose();
        });

        it.each(
            titled([
                ["1×1", () => images.onePixel, completes((r) => expect(r.timings.imageTokens).toBeGreaterThan(0))],
                ["1×200", () => images.oneByTwoHundred, completes()],
                ["200×1", () => images.twoHundredByOne, completes()],
                ["1×20000", () => images.oneByTwentyThousand, fails("IMAGE_DECODE_FAILED", /200:1/)],
                ["EXIF-rotated JPEG", () => images.exifRotated, completes()],
            ] as [string, () => ImageInput, Outcome][]),
        )("%s, and the context still serves", async (_, input, outcome) => {
            await expectOutcome(
                () =>
                    smolContext.complete({
                        prompt: "<__media__>Describe.",
                        images: [input()],
                        temperature: 0,
                        maxTokens: 4,
                    }),
                outcome,
            );
            expect((await good(smolContext)).tokens).toEqual(smolReference.tokens);
        });
    });
});

// ---------------------------------------------------------------------------------------------------------------

const MARKER = "<__media__>";

const PROMPT_CASES: [name: string, request: () => CompletionRequest, outcome: Outcome][] = [
    ["empty, no images", () => ({ prompt: "" }), fails("INVALID_OPTION", /"prompt" is empty/)],
    [
        "empty, one image",
        () => ({ prompt: "", images: [goodImage] }),
        completes((r) => expect(r.timings.imageTokens).toBeGreaterThan(0)),
    ],
    ["a single space", () => ({ prompt: " " }), completes((r) => expect(r.timings.promptTokens).toBe(1))],
    [
        "only an image marker, nothing after it",
        () => ({ prompt: MARKER, images: [goodImage] }),
        completes((r) => expect(r.timings.imageTokens).toBeGreaterThan(0)),
    ],
    [
        "over the context",
        () => ({ prompt: "word ".repeat(3000) }),
        fails("OVER_CONTEXT", /needs \d+ tokens .* holds 1024/),
    ],
    ["a lone high surrogate", () => ({ prompt: "ab\uD800c" }), fails("INVALID_OPTION", /U\+D800\) at index 2/)],
    ["a lone low surrogate", () => ({ prompt: "\uDC00" }), fails("INVALID_OPTION", /U\+DC00\) at index 0/)],
    [
        "a lone surrogate in a message part",
        () => ({ messages: [{ role: "user", content: ["ok", "x\uD83D"] }] }),
        fails("INVALID_OPTION", /"messages\[0\]\.content\[1\]" has a lone UTF-16 surrogate/),
    ],
    ["a surrogate pair (emoji)", () => ({ prompt: "Describe 😀." }), completes()],
    ["an embedded NUL", () => ({ prompt: "abc\0def" }), fails("INVALID_OPTION", /NUL character at index 3/)],
    [
        "an embedded NUL in a message, built-in template",
        () => ({ messages: [{ role: "user", content: "abc\0def" }], chatTemplate: "vicuna" }),
        fails("INVALID_OPTION", /"messages\[0\]\.content" has a NUL character at index 3/),
    ],
    [
        "the media marker typed in a prompt without images",
        () => ({ prompt: `What does ${MARKER} mean?` }),
        fails("INVALID_OPTION", /1 image marker\(s\) .* but 0 image\(s\)/),
    ],
    [
        "the media marker typed in a message",
        () => ({ messages: [{ role: "user", content: `What does ${MARKER} mean?` }] }),
        completes((r) => expect(r.timings.imageTokens).toBe(0)),
    ],
    [
        "more images than markers",
        () => ({ prompt: `${MARKER}Compare.`, images: [goodImage, goodImage] }),
        fails("INVALID_OPTION", /1 image marker\(s\) .* but 2 image\(s\)/),
    ],
    [
        "more markers than images",
        () => ({ prompt: `${MARKER}${MARKER}Compare.`, images: [goodImage] }),
        fails("INVALID_OPTION", /2 image marker\(s\) .* but 1 image\(s\)/),
    ],
    [
        "images and no marker (they go first)",
        () => ({ prompt: "Compare.", images: [goodImage, goodImage] }),
        completes((r) => expect(r.timings.imageTokens).toBe(2 * reference.timings.imageTokens)),
    ],
    [
        "1000 images",
        () => ({ prompt: `${MARKER.repeat(1000)}Compare.`, images: Array(1000).fill(smallImage) }),
        fails("OVER_CONTEXT", /of them for images\) but a sequence holds 1024/),
    ],
    [
        "5000 images that do not exist (refused before any is read)",
        () => ({ prompt: "Compare.", images: Array(5000).fill(path.join(os.tmpdir(), "no-such-image.png")) }),
        fails("OVER_CONTEXT", /5000 images/),
    ],
    ["no messages", () => ({ messages: [] }), fails("INVALID_OPTION", /"messages"/)],
    [
        "a message with empty content",
        () => ({ messages: [{ role: "user", content: "" }] }),
        completes((r) => expect(r.timings.promptTokens).toBeGreaterThan(1)),
    ],
];

describe("prompts", () => {
    it.each(titled(PROMPT_CASES))("%s, and the context still serves", async (_, request, outcome) => {
        await noHang(() =>
            expectOutcome(() => context.complete({ temperature: 0, maxTokens: 4, ...request() }), outcome),
        );
        await stillServes();
    });
});

// ---------------------------------------------------------------------------------------------------------------

/** Aliases: their errors may name the option they stand for. */
const CANONICAL: Record<string, string> = {
    nGpuLayers: "gpuLayers",
    nCtx: "contextSize",
    nPredict: "maxTokens",
    stopStrings: "stop",
    penalizeNl: "penalizeNewline",
};

function attempt(scope: OptionScope, options: Record<string, unknown>): Promise<unknown> {
    switch (scope) {
        case "loadModel":
            return loadModel({ model: qwen.model, projector: qwen.projector, ...options } as LoadModelOptions);
        case "projectorOptions":
            return loadModel({ model: qwen.model, projector: qwen.projector, projectorOptions: options });
        case "createContext":
            return model.createContext(options);
        case "request": {
            const useMessages = "messages" in options || "chatTemplate" in options;
            const base: Record<string, unknown> = useMessages
                ? { messages: [{ role: "user", content: [{ image: goodImage }, "Describe."] }] }
                : { prompt: `${MARKER}Describe.`, images: [goodImage] };
            if (!("nPredict" in options)) base.maxTokens = 2;
            return context.complete({ ...base, ...options } as CompletionRequest);
        }
    }
}

const SCOPE_KEYS: Record<OptionScope, readonly string[]> = {
    loadModel: LOAD_KEYS,
    projectorOptions: PROJECTOR_KEYS,
    createContext: CONTEXT_KEYS,
    request: [...REQUEST_KEYS],
};

describe("options", () => {
    it("the corpus covers exactly the options lib/ validates", () => {
        for (const scope of Object.keys(SCOPE_KEYS) as OptionScope[]) {
            expect(Object.keys(OPTION_CORPUS[scope]).sort(), scope).toEqual([...SCOPE_KEYS[scope]].sort());
        }
    });

    describe.each(Object.keys(OPTION_CORPUS) as OptionScope[])("%s", (scope) => {
        it.each(Object.entries(OPTION_CORPUS[scope]))(
            "%s: wrong type, NaN, ±Infinity, out of range and misspelled are INVALID_OPTION; the context still serves",
            async (key, spec) => {
                for (const bad of badOptions(key, spec)) {
                    const what = `${scope}.${key}: ${bad.label}`;
                    const { error } = await settle(() => attempt(scope, { ...bad.with, [bad.key]: bad.value }));
                    expect(error, what).toBeInstanceOf(LlamaVlmError);
                    expect((error as LlamaVlmError).code, `${what}: ${(error as Error).message}`).toBe(
                        "INVALID_OPTION",
                    );
                    const message = (error as Error).message;
                    if (bad.misspelledFrom !== undefined) {
                        expect(message, what).toContain(`Unknown option "${bad.key}"`);
                        expect(message, what).toContain(`did you mean "${bad.misspelledFrom}"`);
                    } else if (bad.label === "wrong type" || bad.label.endsWith("Infinity") || bad.label === "NaN") {
                        const names = [key, CANONICAL[key]].filter((n) => n !== undefined);
                        expect(
                            names.some((n) => message.includes(`"${n}`)),
                            `${what}: ${message}`,
                        ).toBe(true);
                    }
                }
                await stillServes();
            },
        );
    });
});

// ---------------------------------------------------------------------------------------------------------------

describe("docs/reliability.md", () => {
    it("lists every corpus input", () => {
        const doc = fs.readFileSync(path.join(REPO_ROOT, "docs", "reliability.md"), "utf8");
        const names = [...MODEL_CASES, ...IMAGE_CASES, ...PROMPT_CASES].map(([name]) => name);
        const missing = names.filter((name) => !doc.includes(`| ${name} |`));
        for (const scope of Object.keys(OPTION_CORPUS) as OptionScope[]) {
            for (const key of Object.keys(OPTION_CORPUS[scope])) {
                if (!doc.includes(`| \`${key}\` |`)) missing.push(`${scope}.${key}`);
            }
        }
        expect(missing).toEqual([]);
    });
});
