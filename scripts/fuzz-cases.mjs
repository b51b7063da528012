// The fuzzer's cases: a seeded generator of request shapes and sampler options (valid values, and faults whose
// error code the generator knows), and the checks a settled case must pass. Used by scripts/fuzz.mjs; kept free
// of the native addon so that a case can be generated and printed without loading it (the two modules of the
// compiled library it takes its lists from load no addon).
import { ERROR_CODES } from "../dist/errors.js";
import { SAMPLER_NAMES } from "../dist/sampling.js";
import { Rng, rawPixels } from "./script-fixtures.mjs";

export const MARKER = "<__media__>";
export const KNOWN_CODES = new Set(ERROR_CODES);

/** The two contexts cases run on: "main" (room for 3 images and output) and "small" (prompts may not fit). */
export const TARGETS = {
    main: { contextSize: 1024, parallel: 4 },
    small: { contextSize: 128, parallel: 2 },
};

const WORDS = ["the", "dose", "patient", "image", "describe", "tablet", "mg", "twice", "daily", "note", "7", "3.14"];
const ODD = [
    "héllo wörld",
    "日本語のテキスト",
    "🦙🔥👩‍⚕️",
    "\u200b\u200d\ufeff",
    "مرحبا بالعالم",
    "e\u0301\u0302",
    "\t\n\r\n",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|vision_start|><|image_pad|><|vision_end|>",
    "<__llama_vlm_image_0123456789abcdef__>",
    "{{ messages }}",
    "{% if x %}",
    "%s%n%x",
    '"quoted" \\ backslash',
    "</s><s>",
    "User:",
    "ASSISTANT:",
    "\uffff\ufffe",
];

/** Not text: a lone surrogate, or a NUL (which llama.cpp's C-string template API would cut at). */
const NOT_TEXT = ["\ud800", "\udfff lone", "a\u0000b"];
const notText = (s) =>
    typeof s === "string" &&
    (s.includes("\u0000") || /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s));

function text(rng, { markers = false } = {}) {
    const pieces = [];
    for (let n = rng.int(1, 10); n > 0; n--) {
        const roll = rng.float();
        if (roll < 0.006) pieces.push(rng.pick(NOT_TEXT));
        else pieces.push(markers && roll < 0.08 ? MARKER : roll < 0.3 ? rng.pick(ODD) : rng.pick(WORDS));
    }
    return pieces.join(rng.chance(0.8) ? " " : "");
}

// Every sampling option: a valid value and an invalid one (wrong type, out of range, NaN/Infinity, not an integer).
// Real-valued options are float32 natively: 1e39 does not fit. Integer counts past int32 mean "all" and are valid.
const BAD_INTS = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, "0.5", null, true, {}, [1]];
const BAD_NUMBERS = [...BAD_INTS, 1e39];
const count = (r, lo, hi) => (r.chance(0.1) ? r.pick([2 ** 31, 1e39]) : r.int(lo, hi));
const unit = (rng) => (rng.chance(0.2) ? rng.pick([0, 1]) : rng.float());
const SAMPLING = {
    temperature: { ok: (r) => (r.chance(0.3) ? 0 : r.real(0, 2)), bad: (r) => r.pick([-0.1, ...BAD_NUMBERS]) },
    dynatempRange: { ok: (r) => r.real(0, 1), bad: (r) => r.pick([-1, ...BAD_NUMBERS]) },
    dynatempExponent: { ok: (r) => r.real(0, 2), bad: (r) => r.pick([-0.5, ...BAD_NUMBERS]) },
    topK: { ok: (r) => count(r, 0, 100), bad: (r) => r.pick([-1, 2.5, ...BAD_INTS]) },
    topP: { ok: unit, bad: (r) => r.pick([1.5, -0.1, ...BAD_NUMBERS]) },
    minP: { ok: unit, bad: (r) => r.pick([1.01, -1, ...BAD_NUMBERS]) },
    typicalP: { ok: unit, bad: (r) => r.pick([2, -0.5, ...BAD_NUMBERS]) },
    tfsZ: { ok: unit, bad: (r) => r.pick([1.5, -0.1, ...BAD_NUMBERS]) },
    minKeep: { ok: (r) => count(r, 0, 5), bad: (r) => r.pick([-1, 0.5, ...BAD_INTS]) },
    repeatPenalty: { ok: (r) => r.real(0.5, 2), bad: (r) => r.pick([0, -1, ...BAD_NUMBERS]) },
    repeatLastN: { ok: (r) => count(r, -1, 128), bad: (r) => r.pick([-2, 1.5, ...BAD_INTS]) },
    frequencyPenalty: { ok: (r) => r.real(-2, 2), bad: (r) => r.pick(BAD_NUMBERS) },
    presencePenalty: { ok: (r) => r.real(-2, 2), bad: (r) => r.pick(BAD_NUMBERS) },
    penalizeNewline: { ok: (r) => r.chance(0.5), bad: (r) => r.pick([1, "true", null]) },
    dryMultiplier: { ok: (r) => r.real(0, 2), bad: (r) => r.pick([-1, ...BAD_NUMBERS]) },
    dryBase: { ok: (r) => r.real(1, 3), bad: (r) => r.pick([0.5, ...BAD_NUMBERS]) },
    dryAllowedLength: { ok: (r) => count(r, 0, 5), bad: (r) => r.pick([-1, 1.5, ...BAD_INTS]) },
    dryPenaltyLastN: { ok: (r) => count(r, -1, 128), bad: (r) => r.pick([-2, ...BAD_INTS]) },
    drySequenceBreakers: {
        ok: (r) => Array.from({ length: r.int(0, 4) }, () => r.pick(["", "\n", ":", ...ODD, ...WORDS])),
        bad: (r) => r.pick(["\n", [1], [null], {}]),
    },
    xtcProbability: { ok: unit, bad: (r) => r.pick([1.5, -0.1, ...BAD_NUMBERS]) },
    xtcThreshold: { ok: unit, bad: (r) => r.pick([2, -1, ...BAD_NUMBERS]) },
    topNSigma: { ok: (r) => r.real(-1, 3), bad: (r) => r.pick(BAD_NUMBERS) },
    mirostat: { ok: (r) => r.pick([0, 1, 2]), bad: (r) => r.pick([3, -1, "1", 1.5, null]) },
    mirostatTau: { ok: (r) => r.real(0, 10), bad: (r) => r.pick([-1, ...BAD_NUMBERS]) },
    mirostatEta: { ok: (r) => r.real(0, 1), bad: (r) => r.pick([-0.1, ...BAD_NUMBERS]) },
    seed: { ok: (r) => r.pick([0, r.u32(), 0xffffffff]), bad: (r) => r.pick([-1, 2 ** 32, 1.5, ...BAD_NUMBERS]) },
    samplerOrder: {
        ok: (r) => {
            const names = [...SAMPLER_NAMES];
            for (let i = names.length - 1; i > 0; i--) {
                const j = r.int(0, i);
                [names[i], names[j]] = [names[j], names[i]];
            }
            return names.slice(0, r.int(0, names.length));
        },
        bad: (r) => r.pick([["topK", "topK"], ["greedy"], "topK", [1]]),
    },
    logitBias: {
        ok: (r) => {
            const pairs = Array.from({ length: r.int(1, 4) }, () => [
                r.int(0, VOCAB - 1),
                r.chance(0.2) ? Number.NEGATIVE_INFINITY : r.real(-5, 5),
            ]);
            return r.chance(0.5) ? pairs : Object.fromEntries(pairs);
        },
        bad: (r) =>
            r.pick([
                [[VOCAB, 1]],
                [[-1, 1]],
                [[1, Number.NaN]],
                [[1, Number.POSITIVE_INFINITY]],
                [[1]],
                { 5: "x" },
                "x",
            ]),
    },
};
/** The tiny model's vocabulary size (the real Qwen2 vocabulary). */
const VOCAB = 151936;

/**
 * Grammars and JSON schemas, each with a name and a check of the text it allows: `check(text, complete)`. The text may be a prefix
 * of a sentence of the grammar (maxTokens, a stop string or an abort may cut it); `complete` is true when the
 * generation ended with an end-of-generation token, which the grammar allows only at the end of a sentence.
 */
const GRAMMARS = [
    {
        name: "yes-no",
        grammar: 'root ::= "yes" | "no"',
        check: (t, complete) => ["yes", "no"].some((w) => (complete ? t === w : w.startsWith(t))),
    },
    {
        name: "letters",
        grammar: "root ::= [a-z ]+",
        check: (t, complete) => (complete ? /^[a-z ]+$/ : /^[a-z ]*$/).test(t),
    },
    {
        name: "numbers",
        grammar: 'root ::= [0-9]+ ("," [0-9]+)*',
        check: (t, complete) => (complete ? /^[0-9]+(,[0-9]+)*$/ : /^(?:[0-9]+(,[0-9]+)*,?)?$/).test(t),
    },
];
/** JSON whitespace (llama.cpp's converter allows a bounded amount of it between tokens). */
const WS = "[ \\t\\n]*";
/** A character of a JSON string, as the converter's `char` rule has it, and a cut-off escape. */
const JSON_CHAR = '(?:[^"\\\\\\x00-\\x1F\\x7F]|\\\\(?:["\\\\bfnrt]|u[0-9a-fA-F]{4}))';
const JSON_CHAR_CUT = "\\\\(?:u[0-9a-fA-F]{0,3})?";
/** Every prefix of `{ "a": "<string>" }` with JSON whitespace between its tokens: a regular expression. */
const OBJECT_A_PREFIX = new RegExp(
    `^(?:\\{${WS}(?:"(?:a(?:"${WS}(?::${WS}(?:"${JSON_CHAR}*(?:${JSON_CHAR_CUT}|"${WS}(?:\\}${WS})?)?)?)?)?)?)?)?$`,
);
/** Whether `t` parses as JSON to a value that `is` accepts. */
const parsesTo = (t, is) => {
    try {
        return is(JSON.parse(t));
    } catch {
        return false;
    }
};
const SCHEMAS = [
    {
        name: "enum",
        jsonSchema: { type: "string", enum: ["red", "green"] },
        check: (t, complete) =>
            complete
                ? parsesTo(t, (v) => v === "red" || v === "green")
                : ['"red"', '"green"'].some((w) => w.startsWith(t.trimEnd()) || t.trim() === w),
    },
    {
        name: "integer",
        jsonSchema: { type: "integer" },
        check: (t, complete) => (complete ? parsesTo(t, Number.isInteger) : /^-?[0-9]*\s*$/.test(t)),
    },
    {
        // The one property, a string, and nothing else: the converter allows no other property when the schema
        // names its properties and says nothing of additionalProperties.
        name: "object",
        jsonSchema: { type: "object", properties: { a: { type: "string" } }, required: ["a"] },
        check: (t, complete) =>
            OBJECT_A_PREFIX.test(t) &&
            (!complete ||
                parsesTo(
                    t,
                    (v) =>
                        typeof v === "object" && v !== null && Object.keys(v).join() === "a" && typeof v.a === "string",
                )),
    },
];

/** Image descriptors; `code` is the error a bad one gives. */
const GOOD_IMAGES = ["pngFile", "png", "jpeg", "webp", "raw", "rawTiny", "rawRgba", "large"];
const BAD_IMAGES = [
    { kind: "randomBytes", code: "IMAGE_DECODE_FAILED" },
    { kind: "truncatedPng", code: "IMAGE_DECODE_FAILED" },
    { kind: "headerThenJunk", code: "IMAGE_DECODE_FAILED" },
    { kind: "empty", code: "IMAGE_DECODE_FAILED" },
    { kind: "missingFile", code: "FILE_NOT_FOUND" },
    { kind: "directory", code: "FILE_NOT_FOUND" },
    { kind: "rawWrongLength", code: "INVALID_OPTION" },
    { kind: "rawBadSize", code: "INVALID_OPTION" },
    { kind: "rawBadChannels", code: "INVALID_OPTION" },
    { kind: "notAnImage", code: "INVALID_OPTION" },
    { kind: "overBudget", code: "OVER_BUDGET" },
];

const ERROR_BUDGET = { maxPixels: 50_000, overBudget: "error" };

function image(rng, bad) {
    if (bad) return { ...rng.pick(BAD_IMAGES) };
    const kind = rng.pick(GOOD_IMAGES);
    if (kind === "raw" || kind === "rawRgba") {
        return { kind, width: rng.int(8, 300), height: rng.int(8, 300), seed: rng.int(0, 3) };
    }
    if (kind === "rawTiny") return { kind, width: rng.int(1, 4), height: rng.int(1, 40), seed: 0 };
    return { kind };
}

/**
 * Case `index` of seed `seed`: a plain description (`request` holds image descriptors, the abort plan is apart)
 * and what must happen: `expect.codes` (the rejections allowed) and `expect.ok` (whether it may complete).
 */
export function makeCase(seed, index) {
    const rng = new Rng(seed, `fuzz case ${index}`);
    const c = {
        seed,
        index,
        newGroup: index === 0 || rng.chance(0.35),
        delayMs: rng.chance(0.6) ? 0 : rng.int(1, 15),
        target: rng.chance(0.15) ? "small" : "main",
        mode: rng.pick(["complete", "complete", "complete", "stream", "stream", "batch"]),
        abort: undefined,
        request: {},
        faults: [],
        grammar: undefined,
        maybeOverContext: false,
    };
    const r = c.request;
    // `field` names what a fault lives in, so that a later fault rewriting it drops the earlier one.
    const fault = (stage, code, what, field) => c.faults.push({ stage, code, what, field });
    const faulty = rng.chance(0.3);

    // Shape: prompt (+ images, markers) or messages (images in content parts).
    const nImages = c.target === "small" ? rng.int(0, 1) : rng.pick([0, 0, 1, 1, 1, 2, 2, 3]);
    const images = [];
    for (let i = 0; i < nImages; i++) images.push(image(rng, rng.chance(0.12)));
    const long = rng.chance(0.03);
    if (long) {
        r.prompt = `${rng.pick(WORDS)} `.repeat(4000);
        if (images.length > 0) r.images = images;
        fault("native", "OVER_CONTEXT", "a prompt longer than the context", "shape");
    } else if (rng.chance(0.45)) {
        let prompt = text(rng, { markers: true });
        if (images.length > 0 && rng.chance(0.6)) {
            const parts = prompt.split(MARKER).join(" ").split(" ");
            prompt = "";
            for (let i = 0; i < images.length; i++) prompt += `${parts[i] ?? ""}${MARKER}`;
            prompt += rng.chance(0.9) ? ` ${text(rng)}` : "";
        }
        r.prompt = prompt;
        if (images.length > 0 || rng.chance(0.1)) r.images = images;
        const markers = prompt.split(MARKER).length - 1;
        if (markers > 0 && markers !== images.length) {
            fault("sync", "INVALID_OPTION", "image markers do not match the images", "shape");
        } else if (images.length === 0 && prompt.length === 0) {
            fault("sync", "INVALID_OPTION", "an empty prompt", "shape");
        }
    } else {
        const messages = [];
        const n = rng.int(1, 3);
        let left = [...images];
        for (let i = 0; i < n; i++) {
            const role = i === n - 1 ? "user" : rng.pick(["system", "user", "assistant"]);
            const parts = [];
            const take = i === n - 1 ? left.length : rng.int(0, left.length);
            const mine = left.slice(0, take);
            left = left.slice(take);
            for (const img of mine) {
                if (rng.chance(0.5)) parts.push(text(rng, { markers: true }));
                parts.push({ image: img });
            }
            parts.push(text(rng, { markers: true }));
            messages.push({ role, content: mine.length === 0 && rng.chance(0.5) ? parts.join("") : parts });
        }
        r.messages = messages;
        if (rng.chance(0.15)) r.chatTemplate = rng.pick(["chatml", "vicuna"]);
    }
    const texts = [
        r.prompt,
        ...(r.messages ?? []).flatMap((m) => (Array.isArray(m.content) ? m.content : [m.content])),
    ];
    if (texts.some(notText)) fault("sync", "INVALID_OPTION", "text with a NUL or a lone surrogate", "shape");
    if (c.target === "small" && (images.length > 0 || r.messages || (r.prompt?.length ?? 0) > 30)) {
        c.maybeOverContext = true;
    }
    for (const img of images) if (img.code) fault("image", img.code, `a bad image (${img.kind})`, "shape");
    // The 1200×900 image is downscaled to a budget, or over one that asks for an error (so are most others then).
    if (images.some((img) => img.kind === "overBudget")) r.imageBudget = ERROR_BUDGET;
    else if (images.some((img) => img.kind === "large")) r.imageBudget = { maxPixels: rng.int(20_000, 90_000) };

    // Generation length, stop strings, probabilities, sampling options: valid values.
    // Unbounded (-1, or past int32) only where the context is small: such a request ends when it is full.
    r.maxTokens =
        c.target === "small" && rng.chance(0.3)
            ? rng.pick([-1, -1, 2 ** 31])
            : rng.pick([0, 1, rng.int(1, 8), rng.int(1, 32)]);
    if (rng.chance(0.1)) {
        r.nPredict = r.maxTokens;
        delete r.maxTokens;
    }
    if (rng.chance(0.3)) {
        r[rng.chance(0.1) ? "stopStrings" : "stop"] = Array.from({ length: rng.int(0, 3) }, () =>
            rng.pick([" ", "e", "\n", "\ud800", ...WORDS, ...ODD]),
        );
    }
    if (rng.chance(0.3)) r.nProbs = rng.chance(0.05) ? 1000 : rng.int(0, 5);
    for (const [name, gen] of Object.entries(SAMPLING)) if (rng.chance(0.12)) r[name] = gen.ok(rng);
    if (rng.chance(0.05)) r.penalizeNl = rng.chance(0.5);
    if (r.penalizeNl !== undefined) delete r.penalizeNewline;
    if (rng.chance(0.25)) {
        const g = rng.pick([...GRAMMARS, ...SCHEMAS]);
        if (g.grammar) r.grammar = g.grammar;
        else r.jsonSchema = g.jsonSchema;
        c.grammar = g;
    }

    // Faults whose code the generator knows.
    if (faulty) {
        for (let n = rng.chance(0.8) ? 1 : 2; n > 0; n--) injectFault(rng, c, fault);
    }

    // Aborts: before the call, at a random time after it, at the first streamed chunk.
    const a = rng.float();
    if (a < 0.06) c.abort = { at: "before" };
    else if (a < 0.22) c.abort = { at: "delay", ms: rng.int(0, 40) };
    else if (a < 0.27 && c.mode === "stream") c.abort = { at: "firstChunk" };
    // A consumer that stops reading a stream early: the request itself must still settle.
    c.breakLoop = c.mode === "stream" && c.abort === undefined && rng.chance(0.1);
    c.expect = expectation(c);
    return c;
}

function injectFault(rng, c, fault) {
    const r = c.request;
    const rewrite = (field) => {
        c.faults = c.faults.filter((f) => f.field !== field);
    };
    const pick = rng.int(0, 13);
    const names = Object.keys(SAMPLING);
    if (pick <= 3) {
        const name = rng.pick(names);
        r[name] = SAMPLING[name].bad(rng);
        fault("sync", "INVALID_OPTION", `an invalid ${name}`);
    } else if (pick === 4) {
        r[rng.pick(["temprature", "top_k", "max_tokens", "images2", "Stop"])] = 1;
        fault("sync", "INVALID_OPTION", "an unknown option");
    } else if (pick === 5) {
        const [a, b, v] = rng.pick([
            ["maxTokens", "nPredict", 4],
            ["stop", "stopStrings", ["x"]],
            ["penalizeNewline", "penalizeNl", true],
        ]);
        r[a] = v;
        r[b] = v;
        fault("sync", "INVALID_OPTION", `both ${a} and its alias ${b}`);
    } else if (pick === 6) {
        delete r.nPredict;
        r.maxTokens = rng.pick([-2, 1.5, "5", Number.NaN, Number.POSITIVE_INFINITY, true]);
        fault("sync", "INVALID_OPTION", "an invalid maxTokens");
    } else if (pick === 7) {
        if (rng.chance(0.5)) r.nProbs = rng.pick([-1, 1001, 2.5, "2", Number.NaN]);
        else {
            delete r.stopStrings;
            r.stop = rng.pick(["x", [1], [null], {}, [""], ["a", ""]]);
        }
        fault("sync", "INVALID_OPTION", "an invalid nProbs or stop");
    } else if (pick === 8) {
        const how = rng.int(0, 3);
        delete r.grammar;
        delete r.jsonSchema;
        c.grammar = undefined;
        rewrite("grammar");
        if (how === 0) {
            r.grammar = GRAMMARS[0].grammar;
            r.jsonSchema = SCHEMAS[0].jsonSchema;
            fault("sync", "INVALID_OPTION", "both grammar and jsonSchema", "grammar");
        } else if (how === 1) {
            r.grammar = rng.pick(["", 5, ["root"]]);
            fault("sync", "INVALID_OPTION", "a grammar that is not a non-empty string", "grammar");
        } else if (how === 2) {
            r.grammar = rng.pick(["root ::= (", 'start ::= "a"', "root ::= [a-", "root ::= undefined-rule"]);
            fault("native", "INVALID_OPTION", "a grammar that does not parse", "grammar");
        } else {
            r.jsonSchema = rng.pick([{ type: 5 }, "x", [], { $ref: "#/nowhere" }]);
            fault("sync", "INVALID_OPTION", "an invalid jsonSchema", "grammar");
        }
    } else if (pick === 9) {
        const how = rng.int(0, 6);
        if (how === 0) r.messages = [{ role: "user", content: "both" }];
        if (how === 0 && r.prompt === undefined) r.prompt = "both";
        if (how === 1) {
            delete r.prompt;
            delete r.messages;
            delete r.images;
        }
        if (how === 2)
            r.messages = rng.pick([[], "hi", [{ role: "tool", content: "x" }], [{ role: "user", content: [5] }]]);
        if (how === 2) delete r.prompt;
        if (how === 2) delete r.images;
        if (how === 3) r[r.messages ? "images" : "chatTemplate"] = r.messages ? [] : "chatml";
        if (how === 4) {
            if (r.messages) r.chatTemplate = "{{ broken";
            else r.images = "not an array";
        }
        if (how === 5) r.prompt = r.messages ? "both" : 42;
        if (how === 6) c.requestIs = rng.pick([null, "a prompt", [1], 5]);
        fault("sync", "INVALID_OPTION", `a malformed request shape (${how})`, how === 6 ? "requestIs" : "shape");
    } else if (pick === 10) {
        r.imageBudget = rng.pick([
            { maxPixels: 0 },
            { overBudget: "shrink" },
            { maxInputPixels: -1 },
            { maxPixels: 1.5 },
            { maxPixel: 1000 },
            "small",
            null,
        ]);
        fault("sync", "INVALID_OPTION", "an invalid imageBudget", "imageBudget");
    } else if (pick === 11) {
        c.invalidSignal = true;
        fault("sync", "INVALID_OPTION", "a signal that is not an AbortSignal");
    } else if (pick === 12) {
        const name = rng.pick(names);
        r[name] = SAMPLING[name].bad(rng);
        fault("sync", "INVALID_OPTION", `an invalid ${name}`);
    } else {
        const slot = Array.isArray(r.images) ? r.images : undefined;
        const bad = image(rng, true);
        if (slot !== undefined && slot.length > 0) {
            slot[rng.int(0, slot.length - 1)] = bad;
            if (bad.kind === "overBudget") {
                rewrite("imageBudget");
                r.imageBudget = ERROR_BUDGET;
            }
            fault("image", bad.code, `a bad image (${bad.kind})`);
        } else {
            delete r.prompt;
            rewrite("shape");
            r.messages = [{ role: "user", content: [{ image: bad }, "what is this?"] }];
            delete r.images;
            delete r.chatTemplate;
            if (bad.kind === "overBudget") {
                rewrite("imageBudget");
                r.imageBudget = ERROR_BUDGET;
            }
            fault("image", bad.code, `a bad image (${bad.kind})`);
        }
    }
}

/**
 * What a case may end in. A fault the request carries decides: it must reject, with the code of one of its
 * faults. An abort adds ABORTED, or a completion with stopReason "abort".
 */
function expectation(c) {
    const codes = new Set(c.faults.map((f) => f.code));
    let ok = codes.size === 0;
    if (c.maybeOverContext && codes.size === 0) codes.add("OVER_CONTEXT");
    const syncFault = c.faults.some((f) => f.stage === "sync");
    if (c.abort?.at === "before" && !syncFault) {
        codes.clear();
        codes.add("ABORTED");
        ok = false;
    } else if (c.abort && !syncFault) {
        codes.add("ABORTED");
    }
    // Faults the engine finds after submission lose the race to an abort: the request ends with stopReason "abort".
    const abortOnly = !ok && c.abort !== undefined && c.faults.every((f) => f.stage === "native");
    return { codes: [...codes].sort(), ok, abortOnly };
}

/**
 * Builds the request of a case: image descriptors become images, the abort plan an AbortController.
 * `assets` is scriptImages()'s result.
 */
export function buildRequest(c, assets) {
    if (c.requestIs !== undefined) return { request: c.requestIs, controller: undefined };
    const materialize = (img) => {
        switch (img.kind) {
            case "raw":
            case "rawTiny":
            case "rawRgba": {
                const channels = img.kind === "rawRgba" ? 4 : 3;
                return {
                    data: rawPixels(img.width, img.height, channels, img.seed),
                    width: img.width,
                    height: img.height,
                    channels,
                };
            }
            case "empty":
                return new Uint8Array(0);
            case "rawWrongLength":
                return { data: new Uint8Array(10), width: 4, height: 4 };
            case "rawBadSize":
                return { data: new Uint8Array(12), width: 0, height: 4 };
            case "rawBadChannels":
                return { data: new Uint8Array(32), width: 4, height: 4, channels: 2 };
            case "notAnImage":
                return 42;
            case "overBudget":
                return assets.large;
            default:
                return assets[img.kind];
        }
    };
    const request = structuredClone({ ...c.request });
    if (Array.isArray(c.request.images)) request.images = c.request.images.map(materialize);
    if (Array.isArray(c.request.messages)) {
        request.messages = c.request.messages.map((m) =>
            Array.isArray(m?.content)
                ? {
                      ...m,
                      content: m.content.map((p) =>
                          p && typeof p === "object" && p.image ? { image: materialize(p.image) } : p,
                      ),
                  }
                : m,
        );
    }
    let controller;
    if (c.invalidSignal) request.signal = { aborted: false };
    else if (c.abort) {
        controller = new AbortController();
        request.signal = controller.signal;
        if (c.abort.at === "before") controller.abort();
    }
    return { request, controller };
}

/** Problems with a completed case's result (empty when none). `chunks` is the streamed text, for stream mode. */
export function checkResult(c, result, chunks) {
    const problems = [];
    const r = c.request;
    const maxTokens = r.maxTokens ?? r.nPredict ?? -1;
    if (typeof result?.text !== "string" || !Array.isArray(result.tokens)) return ["the result has no text or tokens"];
    if (!c.expect.ok && !(c.expect.abortOnly && result.stopReason === "abort")) {
        problems.push(
            `expected a rejection with ${c.expect.codes.join(" or ")}, got a completion (${result.stopReason})`,
        );
    }
    if (!["eos", "stop", "length", "abort", "context"].includes(result.stopReason))
        problems.push(`stopReason ${result.stopReason}`);
    // A consumer that stops reading a stream ends its request as an abort does (docs/reliability.md).
    const aborted = c.abort !== undefined || c.breakLoop;
    if (result.stopReason === "abort" && !aborted) problems.push('stopReason "abort" without an abort');
    const stops = (r.stop ?? r.stopStrings ?? []).filter((s) => s.length > 0);
    if (result.stopReason === "stop" && stops.length === 0) problems.push('stopReason "stop" without stop strings');
    for (const s of stops)
        if (result.text.includes(s)) problems.push(`the text contains the stop string ${JSON.stringify(s)}`);
    if (maxTokens >= 0 && result.tokens.length > maxTokens)
        problems.push(`${result.tokens.length} tokens for maxTokens ${maxTokens}`);
    if (result.stopReason === "length" && result.tokens.length !== maxTokens) {
        problems.push(`stopReason "length" after ${result.tokens.length} tokens, maxTokens ${maxTokens}`);
    }
    const unbounded = maxTokens === -1 || maxTokens > TARGETS[c.target].contextSize;
    if (unbounded && !aborted && !["context", "eos", "stop"].includes(result.stopReason)) {
        problems.push(`maxTokens ${maxTokens} ended with ${result.stopReason}`);
    }
    const nProbs = r.nProbs ?? 0;
    if (nProbs > 0) {
        if (!Array.isArray(result.probs) || result.probs.length !== result.tokens.length) {
            problems.push(`probs for ${result.probs?.length} of ${result.tokens.length} tokens`);
        } else {
            for (const top of result.probs) {
                const ps = top.map((t) => t.probability);
                if (top.length < 1 || top.length > nProbs)
                    problems.push(`${top.length} probabilities for nProbs ${nProbs}`);
                if (ps.some((p) => !(p >= 0 && p <= 1 + 1e-6))) problems.push(`a probability out of [0, 1]: ${ps}`);
                if (ps.some((p, i) => i > 0 && p > ps[i - 1] + 1e-6))
                    problems.push("probabilities not in descending order");
                if (ps.reduce((s, p) => s + p, 0) > 1 + 1e-3) problems.push("probabilities sum over 1");
                if (problems.length > 0) break;
            }
            // In the default order topK comes before every sampler that only drops candidates (mirostat has its own
            // truncation): no more than topK are left, whatever minKeep says.
            const topK = Math.min(r.topK ?? 40, 2 ** 31 - 1);
            if (r.samplerOrder === undefined && (r.mirostat ?? 0) === 0 && topK > 0) {
                const most = Math.max(...result.probs.map((top) => top.length));
                if (most > topK) problems.push(`${most} candidates left after topK ${topK}`);
            }
        }
    } else if (result.probs !== undefined) problems.push("probs without nProbs");
    if (c.grammar && !c.grammar.check(result.text, result.stopReason === "eos"))
        problems.push(`${JSON.stringify(result.text)} breaks the grammar`);
    if (chunks !== undefined && !c.breakLoop && chunks !== result.text) {
        problems.push(`streamed ${JSON.stringify(chunks)} but the result says ${JSON.stringify(result.text)}`);
    }
    const t = result.timings;
    for (const key of ["imageEncodeMs", "imageTokens", "promptMs", "promptTokens", "generateMs", "generatedTokens"]) {
        if (!(Number.isFinite(t?.[key]) && t[key] >= 0)) problems.push(`timings.${key} is ${t?.[key]}`);
    }
    return problems;
}

/** Problems with a rejected case (empty when none). */
export function checkError(c, error) {
    if (error?.name !== "LlamaVlmError" || !KNOWN_CODES.has(error.code)) {
        return [`rejected with an untyped error: ${error?.name}: ${error?.message}`];
    }
    if (!c.expect.codes.includes(error.code)) {
        const wanted = c.expect.ok
            ? `completion${c.expect.codes.length > 0 ? ` or ${c.expect.codes.join(" or ")}` : ""}`
            : c.expect.codes.join(" or ");
        return [`expected ${wanted}, got ${error.code}: ${error.message}`];
    }
    return [];
}

/** A case as one line of JSON (NaN, Infinity and undefined spelled out). */
export function describeCase(c) {
    return JSON.stringify(
        { ...c, grammar: c.grammar?.grammar ?? c.grammar?.jsonSchema, expect: c.expect },
        (_key, value) => {
            if (typeof value === "number" && !Number.isFinite(value)) return String(value);
            if (typeof value === "string" && value.length > 200)
                return `${value.slice(0, 40)}… (${value.length} chars)`;
            return value === undefined ? "undefined" : value;
        },
    );
}
