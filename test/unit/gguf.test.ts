import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
    arr,
    bool,
    constant,
    copyMetadata,
    decodeFloats,
    encodeFloats,
    f16ToF32,
    f32,
    f32ToBf16,
    f32ToF16,
    f64,
    fromBytes,
    fromFloats,
    fromFunction,
    GgmlType,
    GgufFormatError,
    type GgufFormatErrorCode,
    GgufType,
    type GgufValue,
    GgufWriter,
    getMetadata,
    i8,
    i16,
    i32,
    i64,
    makeArray,
    normal,
    readGguf,
    readTensorBytes,
    str,
    u8,
    u16,
    u32,
    u64,
    uniform,
    Xoshiro128,
} from "../../lib/gguf/index.js";
import { vendoredLlamaFile } from "../helpers/models.js";

let dir: string;
let fileCounter = 0;

beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-gguf-"));
});

afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
});

function tempPath(name = "file"): string {
    return path.join(dir, `${name}-${fileCounter++}.gguf`);
}

function sha256(file: string): string {
    return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

function sha256Bytes(bytes: Uint8Array): string {
    return createHash("sha256").update(bytes).digest("hex");
}

async function expectFormatError(file: string, code: GgufFormatErrorCode, message?: RegExp): Promise<void> {
    const error = await readGguf(file).then(
        () => undefined,
        (e: unknown) => e,
    );
    expect(error, `reading ${path.basename(file)} should fail with ${code}`).toBeInstanceOf(GgufFormatError);
    expect((error as GgufFormatError).code).toBe(code);
    if (message) expect((error as GgufFormatError).message).toMatch(message);
}

/** A small model-like file: metadata plus tensors of several types and odd sizes. */
function smallModel(seed: number, extra?: (w: GgufWriter) => void): GgufWriter {
    const w = new GgufWriter({ seed });
    w.setMetadata("general.architecture", str("test"));
    w.setMetadata("test.block_count", u32(2));
    w.addTensor({ name: "token_embd.weight", shape: [64, 40], type: GgmlType.Q4_0, data: normal(0.02) });
    extra?.(w);
    w.addTensor({ name: "blk.0.attn_q.weight", shape: [64, 64], type: GgmlType.Q8_0, data: normal(0.05, 0.01) });
    w.addTensor({ name: "blk.0.attn_q.bias", shape: [67], type: GgmlType.F32, data: uniform(-1, 1) });
    w.addTensor({ name: "blk.0.ffn_up.weight", shape: [256, 3], type: GgmlType.Q4_K, data: normal(1) });
    w.addTensor({ name: "blk.0.ffn_down.weight", shape: [33, 5], type: GgmlType.F16, data: normal(0.1) });
    w.addTensor({ name: "blk.0.attn_norm.weight", shape: [65], type: GgmlType.BF16, data: constant(1) });
    return w;
}

/** Deterministic test input independent of the library's own generator (an LCG), with edge-case blocks. */
function goldenInput(): Float32Array {
    const n = 8192;
    const out = new Float32Array(n);
    let s = 12345;
    for (let i = 0; i < n; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        const block = i >> 8;
        out[i] = (s / 2 ** 32 - 0.4) * 2 ** ((block % 9) - 4);
    }
    out.fill(0, 0, 32);
    out.fill(-0.75, 256, 512);
    for (let i = 512; i < 768; i++) out[i] = ((i % 16) - 8) * 0.25;
    for (let i = 768; i < 1024; i++) out[i] = (i % 32) * 2 ** -20;
    for (let i = 1024; i < 1280; i++) out[i] = ((i % 5) - 2) * 40000;
    return out;
}

describe("GGUF metadata", () => {
    it("round-trips every scalar type, including integer extremes, bigint 64-bit values and unicode", async () => {
        const values: Record<string, GgufValue> = {
            "t.u8.max": u8(255),
            "t.u8.min": u8(0),
            "t.i8.min": i8(-128),
            "t.i8.max": i8(127),
            "t.u16.max": u16(65535),
            "t.i16.min": i16(-32768),
            "t.i16.max": i16(32767),
            "t.u32.max": u32(4294967295),
            "t.i32.min": i32(-2147483648),
            "t.i32.max": i32(2147483647),
            "t.f32": f32(1e-6),
            "t.f32.neg_zero": f32(-0),
            "t.f32.inf": f32(Number.NEGATIVE_INFINITY),
            "t.f32.nan": f32(Number.NaN),
            "t.f64": f64(Math.PI),
            "t.f64.tiny": f64(Number.MIN_VALUE),
            "t.bool.true": bool(true),
            "t.bool.false": bool(false),
            "t.str.empty": str(""),
            "t.str.unicode": str("héllo wörld — 日本語 🦙 \u0000 end"),
            "t.u64.max": u64(2n ** 64n - 1n),
            "t.u64.zero": u64(0n),
            "t.u64.from_number": u64(5),
            "t.i64.min": i64(-(2n ** 63n)),
            "t.i64.max": i64(2n ** 63n - 1n),
            "t.ключ.🔑": str("unicode key"),
        };
        const w = new GgufWriter();
        for (const [key, value] of Object.entries(values)) w.setMetadata(key, value);
        const file = tempPath("scalars");
        await w.write(file);

        const g = await readGguf(file);
        expect(g.version).toBe(3);
        expect(g.tensors).toEqual([]);
        expect([...g.metadata.keys()]).toEqual(Object.keys(values));
        for (const [key, value] of Object.entries(values)) {
            const read = g.metadata.get(key)!;
            expect(read.type, key).toBe(value.type);
            if (value.type === GgufType.FLOAT32) {
                expect(Object.is(read.value, Math.fround(value.value)), key).toBe(true);
            } else {
                expect(Object.is(read.value, value.value), `${key}: ${String(read.value)}`).toBe(true);
            }
        }
        expect(getMetadata(g, "t.u64.max", GgufType.UINT64)).toBe(18446744073709551615n);
        expect(getMetadata(g, "t.f32", GgufType.FLOAT32)).toBe(Math.fround(1e-6));
    });

    it("round-trips arrays of every element type, arrays of strings, nested and empty arrays", async () => {
        const arrays: Record<string, GgufValue> = {
            "a.u8": arr(GgufType.UINT8, [0, 1, 255]),
            "a.i8": arr(GgufType.INT8, [-128, 0, 127]),
            "a.u16": arr(GgufType.UINT16, [0, 65535]),
            "a.i16": arr(GgufType.INT16, [-32768, 32767]),
            "a.u32": arr(GgufType.UINT32, [0, 4294967295]),
            "a.i32": arr(GgufType.INT32, Int32Array.from([-2147483648, -1, 0, 2147483647])),
            "a.f32": arr(GgufType.FLOAT32, [0.48145466, 0.4578275, 0.40821073, -0]),
            "a.f64": arr(GgufType.FLOAT64, [Math.E, -1e300]),
            "a.bool": arr(GgufType.BOOL, [true, false, true]),
            "a.str": arr(GgufType.STRING, ["", "a", "Ġthe", "<|im_end|>", "日本", "🦙🦙"]),
            "a.u64": arr(GgufType.UINT64, [0n, 2n ** 64n - 1n, 7]),
            "a.i64": arr(GgufType.INT64, [-(2n ** 63n), 2n ** 63n - 1n]),
            "a.empty_i32": arr(GgufType.INT32, []),
            "a.empty_str": arr(GgufType.STRING, []),
            "a.nested": arr(GgufType.ARRAY, [
                makeArray(GgufType.INT32, [1, 2, 3]),
                makeArray(GgufType.STRING, ["x", "yz"]),
                makeArray(GgufType.ARRAY, [makeArray(GgufType.UINT8, [9]), makeArray(GgufType.FLOAT32, [])]),
                makeArray(GgufType.BOOL, []),
            ]),
        };
        const w = new GgufWriter();
        for (const [key, value] of Object.entries(arrays)) w.setMetadata(key, value);
        const file = tempPath("arrays");
        const layout = await w.write(file);
        const g = await readGguf(file);
        expect(g.headerSize).toBe(layout.headerSize);
        expect(g.metadata.size).toBe(Object.keys(arrays).length);
        for (const [key, value] of Object.entries(arrays)) {
            expect(g.metadata.get(key), key).toEqual(value);
        }
        const f32s = getMetadata(g, "a.f32", GgufType.ARRAY);
        expect(f32s?.values).toBeInstanceOf(Float32Array);
        expect(Object.is((f32s!.values as Float32Array)[3], -0)).toBe(true);
        expect(getMetadata(g, "a.u64", GgufType.ARRAY)?.values).toEqual(BigUint64Array.from([0n, 2n ** 64n - 1n, 7n]));
    });

    it("skips arrays longer than readArrays, reporting their element type and length", async () => {
        const w = new GgufWriter();
        w.setMetadata("big", arr(GgufType.STRING, ["a", "bb", "ccc", "dddd"]));
        w.setMetadata("small", arr(GgufType.INT32, [1, 2]));
        w.setMetadata("nested", arr(GgufType.ARRAY, [makeArray(GgufType.STRING, ["q", "r", "s"])]));
        w.setMetadata("after", str("still read"));
        const file = tempPath("skip");
        await w.write(file);

        const limited = await readGguf(file, { readArrays: 2 });
        expect(limited.metadata.get("big")).toEqual({
            type: GgufType.ARRAY,
            value: null,
            elementType: GgufType.STRING,
            length: 4,
        });
        expect(limited.metadata.get("small")).toEqual(arr(GgufType.INT32, [1, 2]));
        // The limit applies to top-level values: arrays inside a read array are read whole.
        expect(limited.metadata.get("nested")).toEqual(
            arr(GgufType.ARRAY, [makeArray(GgufType.STRING, ["q", "r", "s"])]),
        );
        expect(limited.metadata.get("after")).toEqual(str("still read"));

        const none = await readGguf(file, { readArrays: false });
        expect(none.metadata.get("small")?.value).toBeNull();
        expect(none.metadata.get("after")).toEqual(str("still read"));
        expect(() => getMetadata(none, "big", GgufType.ARRAY)).toThrow(/not read/);
    });

    it("rejects values that do not fit their declared type instead of wrapping them", () => {
        expect(() => u8(256)).toThrow(RangeError);
        expect(() => i8(-129)).toThrow(RangeError);
        expect(() => u32(-1)).toThrow(RangeError);
        expect(() => i32(2 ** 31)).toThrow(RangeError);
        expect(() => u32(1.5)).toThrow(RangeError);
        expect(() => u64(-1n)).toThrow(RangeError);
        expect(() => u64(2n ** 64n)).toThrow(RangeError);
        expect(() => i64(2n ** 63n)).toThrow(RangeError);
        expect(() => u64(2 ** 60)).toThrow(RangeError);
        expect(() => arr(GgufType.UINT8, [1, 300])).toThrow(RangeError);
        expect(() => arr(GgufType.INT32, [1, 2.5])).toThrow(RangeError);
        const w = new GgufWriter();
        expect(() => w.setMetadata("x", { type: GgufType.UINT16, value: 70000 })).toThrow(RangeError);
        expect(() => w.setMetadata("x", { type: 13, value: 1 } as unknown as GgufValue)).toThrow(
            /Unknown GGUF value type/,
        );
        expect(() => w.setMetadata("general.alignment", u32(48))).toThrow(/power of 2/);
        expect(() => w.setMetadata("general.alignment", u64(64))).toThrow(/uint32/);
    });

    it("copyMetadata copies listed or selected keys and refuses missing keys and unread arrays", async () => {
        const src = new GgufWriter();
        src.setMetadata("general.architecture", str("x"));
        src.setMetadata("tokenizer.ggml.model", str("gpt2"));
        src.setMetadata("tokenizer.ggml.tokens", arr(GgufType.STRING, ["a", "b"]));
        src.setMetadata("tokenizer.ggml.eos_token_id", u32(1));
        const file = tempPath("copy-src");
        await src.write(file);
        const g = await readGguf(file);

        const w = new GgufWriter();
        expect(copyMetadata(g, w, (key) => key.startsWith("tokenizer."))).toEqual([
            "tokenizer.ggml.model",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.eos_token_id",
        ]);
        expect(w.getMetadata("tokenizer.ggml.tokens")).toEqual(arr(GgufType.STRING, ["a", "b"]));
        expect(w.getMetadata("general.architecture")).toBeUndefined();

        const w2 = new GgufWriter();
        expect(copyMetadata(g, w2, ["general.architecture"])).toEqual(["general.architecture"]);
        expect(() => copyMetadata(g, w2, ["tokenizer.missing"])).toThrow(/tokenizer\.missing/);

        const skipped = await readGguf(file, { readArrays: false });
        expect(() => copyMetadata(skipped, new GgufWriter(), ["tokenizer.ggml.tokens"])).toThrow(/not read/);
    });
});

describe("GGUF tensor data", () => {
    it("same seed gives byte-identical files, a different seed different bytes", async () => {
        const a = tempPath("seed-a");
        const b = tempPath("seed-b");
        const c = tempPath("seed-c");
        await smallModel(42).write(a);
        await smallModel(42).write(b);
        await smallModel(43).write(c);
        expect(sha256(a)).toBe(sha256(b));
        expect(sha256(a)).not.toBe(sha256(c));
        const [ga, gc] = await Promise.all([readGguf(a), readGguf(c)]);
        for (const t of ga.tensors) {
            const other = gc.tensors.find((x) => x.name === t.name)!;
            const same = sha256Bytes(await readTensorBytes(ga, t)) === sha256Bytes(await readTensorBytes(gc, other));
            // Only the constant tensor is seed-independent.
            expect(same, t.name).toBe(t.name === "blk.0.attn_norm.weight");
        }
    });

    it("chunk size does not change the bytes", async () => {
        const files = [256, 1000, 4096, 1 << 20].map((chunkElements) => ({ chunkElements, file: tempPath("chunk") }));
        for (const { chunkElements, file } of files) await smallModel(7).write(file, { chunkElements });
        const hashes = files.map(({ file }) => sha256(file));
        expect(new Set(hashes).size).toBe(1);
    });

    it("normal streams do not depend on how the output is split (odd chunk lengths included)", () => {
        const whole = new Float32Array(1001);
        new Xoshiro128(5).fillNormal(whole, 0, 1);
        const pieces = new Float32Array(1001);
        const rng = new Xoshiro128(5);
        let at = 0;
        for (const len of [1, 3, 0, 500, 497]) {
            rng.fillNormal(pieces.subarray(at, at + len), 0, 1);
            at += len;
        }
        expect(pieces).toEqual(whole);
    });

    it("each tensor's values depend only on the model seed and its name, not on other tensors", async () => {
        const plain = tempPath("plain");
        const more = tempPath("more");
        await smallModel(9).write(plain);
        await smallModel(9, (w) =>
            w.addTensor({ name: "extra.weight", shape: [32, 2], type: GgmlType.Q8_0, data: normal(1) }),
        ).write(more);
        const [gp, gm] = await Promise.all([readGguf(plain), readGguf(more)]);
        expect(gm.tensors.length).toBe(gp.tensors.length + 1);
        for (const t of gp.tensors) {
            const bytes = sha256Bytes(await readTensorBytes(gp, t));
            expect(sha256Bytes(await readTensorBytes(gm, t.name)), t.name).toBe(bytes);
        }
    });

    it("normal() and uniform() produce the requested distribution", () => {
        const n = 1 << 20;
        const x = new Float32Array(n);
        new Xoshiro128(1).fillNormal(x, 0.5, 2);
        let sum = 0;
        let sumSq = 0;
        let within1 = 0;
        for (const v of x) {
            sum += v;
            sumSq += v * v;
            if (Math.abs(v - 0.5) <= 2) within1++;
        }
        const mean = sum / n;
        const std = Math.sqrt(sumSq / n - mean * mean);
        expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
        expect(Math.abs(std - 2)).toBeLessThan(0.01);
        expect(within1 / n).toBeCloseTo(0.6827, 2);

        const u = new Float32Array(n);
        new Xoshiro128(2).fillUniform(u, -3, 1);
        let umin = Number.POSITIVE_INFINITY;
        let umax = Number.NEGATIVE_INFINITY;
        let usum = 0;
        for (const v of u) {
            umin = Math.min(umin, v);
            umax = Math.max(umax, v);
            usum += v;
        }
        expect(umin).toBeGreaterThanOrEqual(-3);
        expect(umax).toBeLessThan(1);
        expect(umin).toBeLessThan(-2.99);
        expect(umax).toBeGreaterThan(0.99);
        expect(Math.abs(usum / n + 1)).toBeLessThan(0.01);
    });

    it("writes given floats and bytes exactly and calls fill with consecutive element ranges", async () => {
        const values = Float32Array.from({ length: 96 }, (_, i) => i * 0.25 - 3);
        const raw = Uint8Array.from({ length: 10 }, (_, i) => i * 7);
        const calls: [number, number][] = [];
        const w = new GgufWriter();
        w.addTensor({ name: "floats", shape: [32, 3], type: GgmlType.F32, data: fromFloats(values) });
        w.addTensor({ name: "raw", shape: [10], type: GgmlType.I8, data: fromBytes(raw) });
        w.addTensor({
            name: "fn",
            shape: [100],
            type: GgmlType.F32,
            data: fromFunction((out, start) => {
                calls.push([start, out.length]);
                for (let i = 0; i < out.length; i++) out[i] = (start + i) * 2;
            }),
        });
        const file = tempPath("exact");
        await w.write(file, { chunkElements: 40 });
        const g = await readGguf(file);
        expect(decodeFloats(GgmlType.F32, await readTensorBytes(g, "floats"), 96)).toEqual(values);
        expect(await readTensorBytes(g, "raw")).toEqual(raw);
        expect(calls).toEqual([
            [0, 40],
            [40, 40],
            [80, 20],
        ]);
        expect(Array.from(decodeFloats(GgmlType.F32, await readTensorBytes(g, "fn"), 100))).toEqual(
            Array.from({ length: 100 }, (_, i) => i * 2),
        );
    });

    it("validates tensors when they are added", () => {
        const w = new GgufWriter();
        const data = normal(1);
        w.addTensor({ name: "a", shape: [32], type: GgmlType.Q4_0, data });
        expect(() => w.addTensor({ name: "a", shape: [32], type: GgmlType.F32, data })).toThrow(/Duplicate/);
        expect(() => w.addTensor({ name: "b", shape: [48], type: GgmlType.Q4_0, data })).toThrow(/multiple of/);
        expect(() => w.addTensor({ name: "c", shape: [128], type: GgmlType.Q4_K, data })).toThrow(/multiple of/);
        expect(() => w.addTensor({ name: "d", shape: [0, 2], type: GgmlType.F32, data })).toThrow(/positive/);
        expect(() => w.addTensor({ name: "e", shape: [1, 1, 1, 1, 1], type: GgmlType.F32, data })).toThrow(/1 to 4/);
        expect(() => w.addTensor({ name: "x".repeat(64), shape: [1], type: GgmlType.F32, data })).toThrow(/at most 63/);
        expect(() => w.addTensor({ name: "f", shape: [256], type: GgmlType.Q5_K, data })).toThrow(/fromBytes/);
        expect(() =>
            w.addTensor({ name: "g", shape: [4], type: GgmlType.F32, data: fromBytes(new Uint8Array(15)) }),
        ).toThrow(/needs 16 bytes/);
        expect(w.tensorCount).toBe(1);
    });

    it("rejects unknown option names, suggesting the intended one", async () => {
        expect(() => new GgufWriter({ sead: 1 } as never)).toThrow(/Unknown option "sead".*did you mean "seed"/);
        await expect(new GgufWriter().write(tempPath("typo"), { chunkElement: 4 } as never)).rejects.toThrow(
            /did you mean "chunkElements"/,
        );
        await expect(readGguf(tempPath("typo"), { readArray: false } as never)).rejects.toThrow(
            /did you mean "readArrays"/,
        );
    });

    it("aligns tensor data to general.alignment (default 32, here also 64)", async () => {
        for (const alignment of [undefined, 64]) {
            const w = new GgufWriter({ seed: 3 });
            if (alignment !== undefined) w.setMetadata("general.alignment", u32(alignment));
            w.setMetadata("general.name", str("odd header length"));
            w.addTensor({ name: "t0", shape: [3], type: GgmlType.F32, data: normal(1) });
            w.addTensor({ name: "t1", shape: [5, 1, 1], type: GgmlType.F16, data: normal(1) });
            w.addTensor({ name: "t2", shape: [32, 3], type: GgmlType.Q4_0, data: normal(1) });
            w.addTensor({ name: "t3", shape: [7], type: GgmlType.BF16, data: normal(1) });
            const file = tempPath("align");
            const layout = await w.write(file);
            const g = await readGguf(file);
            const expected = alignment ?? 32;
            expect(g.alignment).toBe(expected);
            expect(g.dataOffset % expected).toBe(0);
            expect(g.dataOffset).toBeGreaterThanOrEqual(g.headerSize);
            expect(g.dataOffset - g.headerSize).toBeLessThan(expected);
            expect(g.tensors.map((t) => t.offset)).toEqual(layout.tensors.map((t) => t.offset));
            for (const t of g.tensors) expect(t.offset % expected, t.name).toBe(0);
            expect(g.tensors.map((t) => t.byteSize)).toEqual([12, 10, 54, 14]);
            expect(g.fileSize).toBe(fs.statSync(file).size);
            expect(g.fileSize % expected).toBe(0);
            // The gaps between tensors are zero padding.
            const bytes = fs.readFileSync(file);
            for (const t of g.tensors) {
                const end = t.offset + t.byteSize;
                expect(bytes.subarray(end, Math.ceil(end / expected) * expected).every((b) => b === 0)).toBe(true);
            }
        }
    });

    it("reports progress up to the file size and leaves no file behind when aborted", async () => {
        const w = new GgufWriter();
        w.addTensor({ name: "big", shape: [1024, 256], type: GgmlType.F32, data: normal(1) });
        const seen: number[] = [];
        const totals = new Set<number>();
        const file = tempPath("progress");
        const layout = await w.write(file, {
            chunkElements: 4096,
            onProgress: (written, total) => {
                totals.add(total);
                seen.push(written);
            },
        });
        expect([...totals]).toEqual([layout.fileSize]);
        expect(fs.statSync(file).size).toBe(layout.fileSize);
        expect(seen.length).toBeGreaterThan(10);
        expect(seen.at(-1)).toBe(layout.fileSize);
        expect(seen.every((v, i) => i === 0 || v >= seen[i - 1]!)).toBe(true);

        const controller = new AbortController();
        const aborted = tempPath("aborted");
        const before = new Set(fs.readdirSync(dir));
        await expect(
            w.write(aborted, {
                chunkElements: 4096,
                signal: controller.signal,
                onProgress: (written) => {
                    if (written > 100_000) controller.abort(new Error("stop"));
                },
            }),
        ).rejects.toThrow("stop");
        expect(fs.readdirSync(dir).filter((f) => !before.has(f))).toEqual([]);
    });
});

describe("GGUF encodings", () => {
    it("converts float32 to IEEE half correctly at known values", () => {
        const cases: [number, number][] = [
            [0, 0x0000],
            [-0, 0x8000],
            [1, 0x3c00],
            [-2, 0xc000],
            [0.5, 0x3800],
            [65504, 0x7bff],
            [65519.99, 0x7bff], // rounds down to the largest half
            [65520, 0x7c00], // rounds up to infinity
            [1e6, 0x7c00],
            [Number.POSITIVE_INFINITY, 0x7c00],
            [Number.NEGATIVE_INFINITY, 0xfc00],
            [2 ** -14, 0x0400], // smallest normal
            [2 ** -24, 0x0001], // smallest subnormal
            [2 ** -25, 0x0000], // halfway to the smallest subnormal: ties to even (zero)
            [3 * 2 ** -26, 0x0001], // above halfway
            [1e-8, 0x0000],
            [6e-5, 0x03ef], // subnormal: 6e-5 / 2^-24 = 1006.63 -> 1007
            [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: to even
            [1 + 3 * 2 ** -11, 0x3c02], // tie: to even (up)
            [0.1, 0x2e66],
        ];
        for (const [x, h] of cases) {
            expect(f32ToF16(x).toString(16), String(x)).toBe(h.toString(16));
        }
        expect(f32ToF16(Number.NaN) & 0x7c00).toBe(0x7c00);
        expect(f32ToF16(Number.NaN) & 0x3ff).not.toBe(0);
        expect(Number.isNaN(f16ToF32(f32ToF16(Number.NaN)))).toBe(true);
        expect(f16ToF32(0x0001)).toBe(2 ** -24);
        expect(f16ToF32(0x7bff)).toBe(65504);
        expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
        // Every finite half converts back to itself.
        for (let h = 0; h < 0x10000; h++) {
            if ((h & 0x7c00) === 0x7c00) continue;
            if (f32ToF16(f16ToF32(h)) !== h) throw new Error(`half 0x${h.toString(16)} does not round-trip`);
        }
    });

    it("converts float32 to bfloat16 with round to nearest even", () => {
        expect(f32ToBf16(1)).toBe(0x3f80);
        expect(f32ToBf16(-2)).toBe(0xc000);
        expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie, to even
        expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, to even (up)
        expect(f32ToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
        expect(f32ToBf16(Number.POSITIVE_INFINITY)).toBe(0x7f80);
        expect(f32ToBf16(Number.NaN) & 0x7fc0).toBe(0x7fc0);
    });

    it("encodes a hand-worked Q4_0 block in ggml's layout", () => {
        // x[j] = j / 2: max = 15.5, d = max / -8 = -1.9375 (f16 0xbfc0), q[j] = min(15, trunc(x[j] / d + 8.5)):
        // q[0..15] = 8 8 7 7 7 7 6 6 6 6 5 5 5 5 4 4, q[16..31] = 4 4 3 3 3 3 2 2 2 2 1 1 1 1 0 0,
        // byte j = q[j] | q[j + 16] << 4.
        const x = Float32Array.from({ length: 32 }, (_, j) => j / 2);
        expect(Array.from(encodeFloats(GgmlType.Q4_0, x))).toEqual([
            0xc0, 0xbf, 0x48, 0x48, 0x37, 0x37, 0x37, 0x37, 0x26, 0x26, 0x26, 0x26, 0x15, 0x15, 0x15, 0x15, 0x04, 0x04,
        ]);
        // The largest magnitude is negative (-4): d = 0.5 (0x3800), 1 -> trunc(2 + 8.5) = 10, -4 -> 0.
        const y = Float32Array.from({ length: 32 }, (_, j) => (j === 5 ? -4 : 1));
        const expected = [0x00, 0x38, ...Array.from({ length: 16 }, (_, j) => (j === 5 ? 0xa0 : 0xaa))];
        expect(Array.from(encodeFloats(GgmlType.Q4_0, y))).toEqual(expected);
        expect(Array.from(decodeFloats(GgmlType.Q4_0, encodeFloats(GgmlType.Q4_0, y), 32))).toEqual(
            Array.from({ length: 32 }, (_, j) => (j === 5 ? -4 : 1)),
        );
        // An all-zero block stores d = -0 (max / -8) and q = 8.
        expect(Array.from(encodeFloats(GgmlType.Q4_0, new Float32Array(32)))).toEqual([
            0x00,
            0x80,
            ...new Array(16).fill(0x88),
        ]);
    });

    it("matches bytes produced by ggml's reference quantisers (quantize_row_*_ref, fp32_to_fp16/bf16)", () => {
        // SHA-256 of the output of the pinned ggml-base (quantize_row_q4_0_ref, quantize_row_q8_0_ref,
        // quantize_row_q4_K_ref, ggml_fp32_to_fp16_row, ggml_fp32_to_bf16_row_ref) for goldenInput().
        const golden: [GgmlType, string][] = [
            [GgmlType.Q4_0, "73f630f868df6e2473a299f38858116d39bc2d382bc232de502b9afeebd7d4ac"],
            [GgmlType.Q8_0, "1fb180d2244b27f9b916817cfb1a45a79c56c16a9c5e974e22ca18ea83a4c24f"],
            [GgmlType.Q4_K, "b812a7999d71fae70bf961c3df8dd3de590700834c8246104b9acb945cf76b2b"],
            [GgmlType.F16, "3ce7cbd3990849912050097ffcf2d46cbdb7a9087fdb2ecf4b046040ca2511c0"],
            [GgmlType.BF16, "f7c25607ebb1ed115a4ac638500557c3c3a8258747d231ea8677bccd3059efd4"],
        ];
        const x = goldenInput();
        for (const [type, hash] of golden) expect(sha256Bytes(encodeFloats(type, x)), `type ${type}`).toBe(hash);
    });

    it("Q8_0 and Q4_0 dequantise to the input within the quantisation step", () => {
        const x = new Float32Array(32 * 2048);
        new Xoshiro128(11).fillNormal(x, 0.1, 1.5);
        for (const [type, blockBytes, qmax] of [
            [GgmlType.Q8_0, 34, 127],
            [GgmlType.Q4_0, 18, 8],
        ] as const) {
            const bytes = encodeFloats(type, x);
            expect(bytes.length).toBe((x.length / 32) * blockBytes);
            const y = decodeFloats(type, bytes, x.length);
            let sqErr = 0;
            let sq = 0;
            for (let b = 0; b < x.length; b += 32) {
                const block = x.subarray(b, b + 32);
                const amax = Math.max(...Array.from(block, Math.abs));
                const d = amax / qmax;
                const d16 = Math.abs(
                    f16ToF32(bytes[(b / 32) * blockBytes]! | (bytes[(b / 32) * blockBytes + 1]! << 8)),
                );
                // Rounding costs half a step; Q4_0 clamps +8d to 7d (one step) on the side opposite its max.
                const bound = (type === GgmlType.Q8_0 ? 0.5 * d : d) + qmax * Math.abs(d - d16) + 1e-6;
                for (let j = 0; j < 32; j++) {
                    const err = Math.abs(block[j]! - y[b + j]!);
                    if (err > bound)
                        throw new Error(`type ${type} block ${b / 32}: |${block[j]} - ${y[b + j]}| > ${bound}`);
                    sqErr += err * err;
                    sq += block[j]! * block[j]!;
                }
            }
            const relRms = Math.sqrt(sqErr / sq);
            expect(relRms).toBeLessThan(type === GgmlType.Q8_0 ? 0.01 : 0.12);
        }
    });

    it("Q4_K round-trips in ggml's block layout with 4-bit accuracy", () => {
        const x = new Float32Array(256 * 64);
        new Xoshiro128(12).fillNormal(x, 0, 1);
        const bytes = encodeFloats(GgmlType.Q4_K, x);
        expect(bytes.length).toBe(64 * 144);
        const y = decodeFloats(GgmlType.Q4_K, bytes, x.length);
        let sqErr = 0;
        for (let i = 0; i < x.length; i++) sqErr += (x[i]! - y[i]!) ** 2;
        expect(Math.sqrt(sqErr / x.length)).toBeLessThan(0.12);
        // A constant block: sub-block scales are 0 and the f16 min carries the value (63 * f16(0.5 / 63)).
        const c = decodeFloats(GgmlType.Q4_K, encodeFloats(GgmlType.Q4_K, new Float32Array(256).fill(-0.5)), 256);
        expect(new Set(c).size).toBe(1);
        expect(c[0]).toBeCloseTo(-0.5, 3);
    });
});

describe("GGUF reader validation", () => {
    /** Bytes of a valid file with metadata and two tensors, and the offsets of its parts. */
    async function validFile() {
        const w = new GgufWriter({ seed: 1 });
        w.setMetadata("general.architecture", str("test"));
        w.setMetadata("test.list", arr(GgufType.STRING, ["alpha", "beta", "gamma"]));
        w.setMetadata("test.lisu", u32(7));
        // Names of equal length, so that one can be patched into the other.
        w.addTensor({ name: "first.weight", shape: [32, 4], type: GgmlType.Q8_0, data: normal(1) });
        w.addTensor({ name: "later.weight", shape: [5, 3], type: GgmlType.F32, data: normal(1) });
        const file = tempPath("valid");
        const layout = await w.write(file);
        const bytes = fs.readFileSync(file);
        return {
            bytes,
            layout,
            listAt: bytes.indexOf("test.list") - 8,
            lisuAt: bytes.indexOf("test.lisu") - 8,
            firstInfo: bytes.indexOf("first.weight") - 8,
            secondInfo: bytes.indexOf("later.weight") - 8,
        };
    }

    function save(bytes: Uint8Array, name: string): string {
        const file = tempPath(name);
        fs.writeFileSync(file, bytes);
        return file;
    }

    it("accepts the valid file it is derived from", async () => {
        const { bytes, layout } = await validFile();
        const g = await readGguf(save(bytes, "ok"));
        expect(g.tensors.map((t) => [t.name, t.shape, t.typeName, t.offset, t.byteSize])).toEqual([
            ["first.weight", [32, 4], "q8_0", layout.tensors[0]!.offset, 136],
            ["later.weight", [5, 3], "f32", layout.tensors[1]!.offset, 60],
        ]);
    });

    it("rejects an empty file and a cut-off magic as truncated, other bytes as a bad magic", async () => {
        await expectFormatError(save(new Uint8Array(0), "empty"), "GGUF_TRUNCATED", /empty/);
        await expectFormatError(save(Buffer.from("GG"), "gg"), "GGUF_TRUNCATED");
        await expectFormatError(save(Buffer.from("PK"), "pk"), "GGUF_BAD_MAGIC");
        const { bytes } = await validFile();
        const wrong = Buffer.from(bytes);
        wrong.write("GGML", 0, "latin1");
        await expectFormatError(save(wrong, "magic"), "GGUF_BAD_MAGIC", /GGML/);
    });

    it("rejects GGUF versions other than 2 and 3", async () => {
        const { bytes } = await validFile();
        for (const version of [1, 4, 0xffffffff]) {
            const b = Buffer.from(bytes);
            b.writeUInt32LE(version, 4);
            await expectFormatError(save(b, `v${version}`), "GGUF_UNSUPPORTED_VERSION", new RegExp(`${version}`));
        }
        const v2 = Buffer.from(bytes);
        v2.writeUInt32LE(2, 4);
        expect((await readGguf(save(v2, "v2"))).version).toBe(2);
    });

    it("reports a file cut short anywhere in header, metadata, tensor directory or data as truncated", async () => {
        const { bytes, layout, firstInfo, secondInfo, listAt } = await validFile();
        const cuts: [string, number][] = [
            ["inside the version", 6],
            ["inside the counts", 20],
            ["inside the first key length", 26],
            ["inside the first key", 36],
            ["inside a string array", listAt + 40],
            ["inside the first tensor name", firstInfo + 10],
            ["inside the second tensor's dims", secondInfo + 8 + 12 + 4 + 3],
            ["at the end of the tensor directory", layout.headerSize],
            ["inside the first tensor's data", layout.tensors[0]!.offset + 50],
            ["inside the last tensor's data", layout.fileSize - 40],
        ];
        for (const [where, at] of cuts) {
            await expect(
                expectFormatError(save(bytes.subarray(0, at), "cut"), "GGUF_TRUNCATED"),
                where,
            ).resolves.toBeUndefined();
        }
        // Only the padding after the last tensor missing is fine: the data is all there.
        const lastEnd = layout.tensors[1]!.offset + layout.tensors[1]!.byteSize;
        expect(lastEnd).toBeLessThan(layout.fileSize);
        await expect(readGguf(save(bytes.subarray(0, lastEnd), "no-pad"))).resolves.toBeDefined();
    });

    it("rejects impossible counts: as invalid beyond any sane size, as truncated beyond the file's size", async () => {
        const { bytes } = await validFile();
        const hugeTensors = Buffer.from(bytes);
        hugeTensors.writeBigUInt64LE(2n ** 40n, 8);
        await expectFormatError(save(hugeTensors, "huge-tensors"), "GGUF_INVALID", /tensors/);
        const negativeKv = Buffer.from(bytes);
        negativeKv.writeBigUInt64LE(2n ** 64n - 1n, 16);
        await expectFormatError(save(negativeKv, "negative-kv"), "GGUF_INVALID");
        const manyKv = Buffer.from(bytes);
        manyKv.writeBigUInt64LE(1_000_000n, 16);
        await expectFormatError(save(manyKv, "many-kv"), "GGUF_TRUNCATED", /1000000 metadata keys/);
    });

    it("rejects unknown value types, bad arrays, bad tensor entries and misplaced data as invalid", async () => {
        const { bytes, firstInfo, secondInfo, listAt, lisuAt } = await validFile();
        const firstDims = firstInfo + 8 + "first.weight".length + 4;
        const secondDims = secondInfo + 8 + "later.weight".length + 4;
        const cases: [string, (b: Buffer) => void, RegExp][] = [
            ["unknown value type", (b) => b.writeUInt32LE(13, 24 + 8 + "general.architecture".length), /value type 13/],
            ["unknown array element type", (b) => b.writeUInt32LE(99, listAt + 8 + 9 + 4), /element type 99/],
            ["array length beyond ggml's limit", (b) => b.writeBigUInt64LE(2n ** 31n, listAt + 8 + 9 + 8), /limit/],
            ["five dimensions", (b) => b.writeUInt32LE(5, firstDims - 4), /5 dimensions/],
            ["zero dimensions", (b) => b.writeUInt32LE(0, firstDims - 4), /0 dimensions/],
            ["a zero dimension", (b) => b.writeBigUInt64LE(0n, firstDims + 8), /dimension 1 = 0/],
            ["a negative dimension", (b) => b.writeBigInt64LE(-4n, firstDims), /dimension 0/],
            ["an unknown ggml type", (b) => b.writeUInt32LE(4, firstDims + 16), /unknown ggml type 4/],
            ["a row not a multiple of the block", (b) => b.writeBigUInt64LE(33n, firstDims), /block size/],
            ["a misaligned offset", (b) => b.writeBigUInt64LE(160n + 4n, secondDims + 16 + 4), /offset 164/],
            ["a duplicate tensor name", (b) => b.write("first.weight", secondInfo + 8, "latin1"), /Duplicate tensor/],
            [
                "a duplicate key",
                (b) => b.write("test.list", lisuAt + 8, "latin1"),
                /Duplicate metadata key "test.list"/,
            ],
            ["invalid UTF-8", (b) => b.writeUInt8(0xff, listAt + 8 + 9 + 16 + 8), /UTF-8/],
        ];
        for (const [what, patch, message] of cases) {
            const b = Buffer.from(bytes);
            patch(b);
            await expect(expectFormatError(save(b, "invalid"), "GGUF_INVALID", message), what).resolves.toBeUndefined();
        }
    });

    it("rejects a general.alignment that is not a uint32 power of two", async () => {
        // Built by hand: the writer refuses these values.
        for (const bad of [u64(32), u32(0), u32(24)]) {
            const key = Buffer.from("general.alignment");
            const file = Buffer.alloc(24 + 8 + key.length + 4 + (bad.type === GgufType.UINT64 ? 8 : 4));
            let at = file.write("GGUF", 0, "latin1");
            at = file.writeUInt32LE(3, at);
            at = file.writeBigUInt64LE(0n, at);
            at = file.writeBigUInt64LE(1n, at);
            at = file.writeBigUInt64LE(BigInt(key.length), at);
            at += key.copy(file, at);
            at = file.writeUInt32LE(bad.type, at);
            if (bad.type === GgufType.UINT64) file.writeBigUInt64LE(bad.value, at);
            else file.writeUInt32LE(bad.value as number, at);
            await expectFormatError(save(file, "align"), "GGUF_INVALID", /general\.alignment/);
        }
    });
});

describe("GGUF vendor vocab", () => {
    it("reads the Qwen2 vocab and re-writes its metadata byte for byte", async () => {
        const vocab = vendoredLlamaFile("models", "ggml-vocab-qwen2.gguf");
        const g = await readGguf(vocab);
        expect(g.tensors).toEqual([]);
        expect(getMetadata(g, "tokenizer.ggml.model", GgufType.STRING)).toBe("gpt2");
        expect(getMetadata(g, "tokenizer.ggml.pre", GgufType.STRING)).toBe("qwen2");
        const tokens = getMetadata(g, "tokenizer.ggml.tokens", GgufType.ARRAY);
        expect(tokens?.elementType).toBe(GgufType.STRING);
        expect(tokens!.values.length).toBeGreaterThanOrEqual(151_000);
        const tokenType = getMetadata(g, "tokenizer.ggml.token_type", GgufType.ARRAY);
        expect(tokenType?.values).toBeInstanceOf(Int32Array);
        expect(tokenType!.values.length).toBe(tokens!.values.length);
        const merges = getMetadata(g, "tokenizer.ggml.merges", GgufType.ARRAY);
        expect(merges!.values.length).toBeGreaterThan(100_000);
        expect((tokens!.values as string[])[151645]).toBe("<|im_end|>");

        // Copying every key into a writer reproduces the file (plus the trailing padding ggml's writer adds).
        const w = new GgufWriter();
        copyMetadata(g, w, () => true);
        const file = tempPath("qwen2-copy");
        await w.write(file);
        const original = fs.readFileSync(vocab);
        const copy = fs.readFileSync(file);
        expect(copy.length - original.length).toBeLessThan(32);
        expect(copy.subarray(0, original.length).equals(original)).toBe(true);
    });
});
