/**
 * Float encoders for ggml tensor types, bit-exact ports of ggml's reference code in the pinned tree:
 * `ggml_compute_fp32_to_fp16` / `ggml_compute_fp32_to_bf16` (ggml-impl.h) and `quantize_row_q4_0_ref`,
 * `quantize_row_q8_0_ref`, `quantize_row_q4_K_ref` (ggml-quants.c), plus the matching dequantisers.
 *
 * C evaluates these in float32. Every float operation here is wrapped in Math.fround: a +, -, *, / or sqrt of
 * two float32 values computed in double and rounded once to float32 is the correctly rounded float32 result
 * (53 >= 2 * 24 + 2), so the ports produce the bytes the C code produces (built without FMA contraction).
 * All multi-byte values are written little-endian, as GGUF requires.
 */

import { GgmlType, ggmlByteSize, ggmlTypeName } from "./types.js";

const F = Math.fround;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 bit pattern of `x` (after rounding it to float32). */
export function f32Bits(x: number): number {
    scratchF32[0] = x;
    return scratchU32[0]!;
}

/** The float32 whose bit pattern is `bits`. */
export function f32FromBits(bits: number): number {
    scratchU32[0] = bits;
    return scratchF32[0]!;
}

/**
 * IEEE half bits of a float32 bit pattern: round to nearest even, overflow to infinity, subnormal halves kept,
 * NaN to a quiet NaN with the sign kept (what ggml's portable converter does).
 */
function f16FromF32Bits(x: number): number {
    const sign = (x >>> 16) & 0x8000;
    const e = (x >>> 23) & 0xff;
    const m = x & 0x7fffff;
    if (e === 0xff) return m !== 0 ? sign | 0x7e00 : sign | 0x7c00;
    if (e > 142) return sign | 0x7c00;
    if (e >= 113) {
        // Normal half; a carry out of the mantissa bumps the exponent, up to infinity (0x7c00) past 65504.
        let h = ((e - 112) << 10) | (m >>> 13);
        const rest = m & 0x1fff;
        if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
        return sign | h;
    }
    if (e < 102) return sign;
    // Subnormal half: units of 2^-24. The full 24-bit mantissa is worth M * 2^(e-150).
    const full = m | 0x800000;
    const shift = 126 - e;
    let h = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && (h & 1) !== 0)) h++;
    return sign | h;
}

/** IEEE half bits of `x` (rounded to float32 first, as C would on the way in). */
export function f32ToF16(x: number): number {
    return f16FromF32Bits(f32Bits(x));
}

let f16Table: Float32Array | undefined;

function halfTable(): Float32Array {
    if (f16Table !== undefined) return f16Table;
    const table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
        const sign = h & 0x8000 ? -1 : 1;
        const e = (h >>> 10) & 0x1f;
        const m = h & 0x3ff;
        let v: number;
        if (e === 0) v = m * 2 ** -24;
        else if (e === 31) v = m === 0 ? Number.POSITIVE_INFINITY : Number.NaN;
        else v = (1 + m / 1024) * 2 ** (e - 15);
        table[h] = sign * v;
    }
    f16Table = table;
    return table;
}

/** The value of IEEE half bits `h`. */
export function f16ToF32(h: number): number {
    return halfTable()[h & 0xffff]!;
}

/** bfloat16 bits of `x`: round to nearest even, NaN forced quiet (ggml_compute_fp32_to_bf16). */
export function f32ToBf16(x: number): number {
    return bf16FromF32Bits(f32Bits(x));
}

function bf16FromF32Bits(u: number): number {
    if ((u & 0x7fffffff) >>> 0 > 0x7f800000) return ((u >>> 16) | 64) & 0xffff;
    return ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16) & 0xffff;
}

/** The value of bfloat16 bits `h`. */
export function bf16ToF32(h: number): number {
    return f32FromBits((h & 0xffff) << 16);
}

/** Types `encodeFloats` can produce. */
export const ENCODABLE_TYPES: ReadonlySet<GgmlType> = new Set<GgmlType>([
    GgmlType.F32,
    GgmlType.F16,
    GgmlType.BF16,
    GgmlType.Q8_0,
    GgmlType.Q4_0,
    GgmlType.Q4_K,
]);

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkedOut(type: GgmlType, count: number, out: Uint8Array | undefined): Uint8Array {
    const size = ggmlByteSize(type, count);
    if (out === undefined) return new Uint8Array(size);
    if (out.length < size) {
        throw new RangeError(
            `Expected an output buffer of at least ${size} bytes for ${count} ${ggmlTypeName(type)} values`,
        );
    }
    return out;
}

/**
 * Encodes `src` as `type` into `out` (allocated when omitted) and returns it; `src.length` must be a multiple of
 * the type's block size. Quantised types follow ggml's reference quantisers byte for byte.
 */
export function encodeFloats(type: GgmlType, src: Float32Array, out?: Uint8Array): Uint8Array {
    const n = src.length;
    const dst = checkedOut(type, n, out);
    switch (type) {
        case GgmlType.F32:
            if (!LITTLE_ENDIAN_HOST) throw new Error("Writing GGUF tensors needs a little-endian host");
            dst.set(new Uint8Array(src.buffer, src.byteOffset, n * 4));
            break;
        case GgmlType.F16:
        case GgmlType.BF16: {
            const bits = new Uint32Array(src.buffer, src.byteOffset, n);
            const convert = type === GgmlType.F16 ? f16FromF32Bits : bf16FromF32Bits;
            for (let i = 0, o = 0; i < n; i++, o += 2) {
                const h = convert(bits[i]!);
                dst[o] = h & 0xff;
                dst[o + 1] = h >>> 8;
            }
            break;
        }
        case GgmlType.Q8_0:
            quantizeQ8_0(src, dst);
            break;
        case GgmlType.Q4_0:
            quantizeQ4_0(src, dst);
            break;
        case GgmlType.Q4_K:
            quantizeQ4K(src, dst);
            break;
        default:
            throw new RangeError(
                `Cannot encode floats as ${ggmlTypeName(type)}: supported are f32, f16, bf16, q8_0, q4_0 and q4_K`,
            );
    }
    return dst;
}

/** Decodes `count` values of `type` from `bytes` (the inverse of `encodeFloats`, as ggml dequantises). */
export function decodeFloats(type: GgmlType, bytes: Uint8Array, count: number): Float32Array {
    const size = ggmlByteSize(type, count);
    if (bytes.length < size) throw new RangeError(`Expected ${size} bytes for ${count} ${ggmlTypeName(type)} values`);
    const out = new Float32Array(count);
    const u16 = (o: number) => bytes[o]! | (bytes[o + 1]! << 8);
    switch (type) {
        case GgmlType.F32: {
            const view = new DataView(bytes.buffer, bytes.byteOffset, size);
            for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
            break;
        }
        case GgmlType.F16:
            for (let i = 0; i < count; i++) out[i] = f16ToF32(u16(i * 2));
            break;
        case GgmlType.BF16:
            for (let i = 0; i < count; i++) out[i] = bf16ToF32(u16(i * 2));
            break;
        case GgmlType.Q8_0:
            for (let b = 0, o = 0; b < count; b += 32, o += 34) {
                const d = f16ToF32(u16(o));
                for (let j = 0; j < 32; j++) out[b + j] = F(((bytes[o + 2 + j]! << 24) >> 24) * d);
            }
            break;
        case GgmlType.Q4_0:
            for (let b = 0, o = 0; b < count; b += 32, o += 18) {
                const d = f16ToF32(u16(o));
                for (let j = 0; j < 16; j++) {
                    const q = bytes[o + 2 + j]!;
                    out[b + j] = F(((q & 0xf) - 8) * d);
                    out[b + j + 16] = F(((q >>> 4) - 8) * d);
                }
            }
            break;
        case GgmlType.Q4_K:
            for (let b = 0, o = 0; b < count; b += 256, o += 144) {
                const d = f16ToF32(u16(o));
                const dmin = f16ToF32(u16(o + 2));
                const scales = bytes.subarray(o + 4, o + 16);
                for (let j = 0, is = 0, q = o + 16; j < 256; j += 64, is += 2, q += 32) {
                    const [sc1, m1] = scaleMinK4(is, scales);
                    const [sc2, m2] = scaleMinK4(is + 1, scales);
                    const d1 = F(d * sc1);
                    const mm1 = F(dmin * m1);
                    const d2 = F(d * sc2);
                    const mm2 = F(dmin * m2);
                    for (let l = 0; l < 32; l++) {
                        out[b + j + l] = F(F(d1 * (bytes[q + l]! & 0xf)) - mm1);
                        out[b + j + 32 + l] = F(F(d2 * (bytes[q + l]! >>> 4)) - mm2);
                    }
                }
            }
            break;
        default:
            throw new RangeError(`Cannot decode ${ggmlTypeName(type)}`);
    }
    return out;
}

/** quantize_row_q8_0_ref: per 32 values, d = amax / 127 (stored as f16), q = round(x / d). */
function quantizeQ8_0(src: Float32Array, dst: Uint8Array): void {
    const n = src.length;
    for (let b = 0, o = 0; b < n; b += 32, o += 34) {
        let amax = 0;
        for (let j = 0; j < 32; j++) {
            const a = Math.abs(src[b + j]!);
            amax = Math.max(amax, a);
        }
        const d = F(amax / 127);
        const id = d !== 0 ? F(1 / d) : 0;
        const h = f16FromF32Bits(f32Bits(d));
        dst[o] = h & 0xff;
        dst[o + 1] = h >>> 8;
        for (let j = 0; j < 32; j++) {
            const x = F(src[b + j]! * id);
            // roundf: halves away from zero.
            const q = x >= 0 ? Math.floor(x + 0.5) : -Math.floor(0.5 - x);
            dst[o + 2 + j] = q & 0xff;
        }
    }
}

/**
 * quantize_row_q4_0_ref: per 32 values, `max` is the value of largest magnitude (sign kept), d = max / -8
 * (stored as f16), q = min(15, trunc(x / d + 8.5)); byte j holds q[j] in its low nibble and q[j + 16] in its high.
 */
function quantizeQ4_0(src: Float32Array, dst: Uint8Array): void {
    const n = src.length;
    for (let b = 0, o = 0; b < n; b += 32, o += 18) {
        let amax = 0;
        let max = 0;
        for (let j = 0; j < 32; j++) {
            const v = src[b + j]!;
            const a = Math.abs(v);
            if (amax < a) {
                amax = a;
                max = v;
            }
        }
        const d = F(max / -8);
        const id = d !== 0 ? F(1 / d) : 0;
        const h = f16FromF32Bits(f32Bits(d));
        dst[o] = h & 0xff;
        dst[o + 1] = h >>> 8;
        for (let j = 0; j < 16; j++) {
            // (int8_t)(x + 8.5f) truncates toward zero; the sum is in [0.5, 16.5] here.
            const q0 = F(F(src[b + j]! * id) + 8.5) | 0;
            const q1 = F(F(src[b + 16 + j]! * id) + 8.5) | 0;
            dst[o + 2 + j] = Math.min(q0, 15) | (Math.min(q1, 15) << 4);
        }
    }
}

/** nearest_int from ggml-quants.c: round a float32 to the nearest integer, ties to even, via the 1.5·2^23 trick. */
function nearestInt(x: number): number {
    return F(x + 12582912) - 12582912;
}

function scaleMinK4(j: number, q: Uint8Array): [number, number] {
    if (j < 4) return [q[j]! & 63, q[j + 4]! & 63];
    return [(q[j + 4]! & 0xf) | ((q[j - 4]! >>> 6) << 4), (q[j + 4]! >>> 4) | ((q[j]! >>> 6) << 4)];
}

const kL = new Uint8Array(256);
const kLaux = new Uint8Array(32);
const kWeights = new Float32Array(32);
const kScales = new Float32Array(8);
const kMins = new Float32Array(8);
const kBlockScales = new Uint8Array(12);
let kTheMin = 0;
const RDELTA = F(0.1);

/** make_qkx2_quants(32, 15, x + xo, weights, L + lo, &the_min, Laux, -1, 0.1, 20, false); the_min goes to kTheMin. */
function makeQkx2Quants(x: Float32Array, xo: number, lo: number): number {
    const n = 32;
    const nmax = 15;
    const w = kWeights;
    const L = kL;
    let min = x[xo]!;
    let max = x[xo]!;
    let sumW = w[0]!;
    let sumX = F(sumW * x[xo]!);
    for (let i = 1; i < n; i++) {
        const xi = x[xo + i]!;
        if (xi < min) min = xi;
        if (xi > max) max = xi;
        const wi = w[i]!;
        sumW = F(sumW + wi);
        sumX = F(sumX + F(wi * xi));
    }
    if (min > 0) min = 0;
    if (max === min) {
        L.fill(0, lo, lo + n);
        kTheMin = -min;
        return 0;
    }
    let iscale = F(nmax / F(max - min));
    let scale = F(1 / iscale);
    let bestError = 0;
    for (let i = 0; i < n; i++) {
        const xi = x[xo + i]!;
        let l = nearestInt(F(iscale * F(xi - min)));
        l = l < 0 ? 0 : Math.min(l, nmax);
        L[lo + i] = l;
        const diff = F(F(F(scale * l) + min) - xi);
        bestError = F(bestError + F(w[i]! * F(diff * diff)));
    }
    for (let is = 0; is <= 20; is++) {
        // `min` changes when a better fit is found, and later steps start from it (as in C).
        iscale = F(F(F(-1 + F(RDELTA * is)) + nmax) / F(max - min));
        let sumL = 0;
        let sumL2 = 0;
        let sumXL = 0;
        for (let i = 0; i < n; i++) {
            const xi = x[xo + i]!;
            let l = nearestInt(F(iscale * F(xi - min)));
            l = l < 0 ? 0 : Math.min(l, nmax);
            kLaux[i] = l;
            const wl = F(w[i]! * l);
            sumL = F(sumL + wl);
            sumL2 = F(sumL2 + F(wl * l));
            sumXL = F(sumXL + F(wl * xi));
        }
        const D = F(F(sumW * sumL2) - F(sumL * sumL));
        if (D > 0) {
            let thisScale = F(F(F(sumW * sumXL) - F(sumX * sumL)) / D);
            let thisMin = F(F(F(sumL2 * sumX) - F(sumL * sumXL)) / D);
            if (thisMin > 0) {
                thisMin = 0;
                thisScale = F(sumXL / sumL2);
            }
            let curError = 0;
            for (let i = 0; i < n; i++) {
                const diff = F(F(F(thisScale * kLaux[i]!) + thisMin) - x[xo + i]!);
                curError = F(curError + F(w[i]! * F(diff * diff)));
            }
            if (curError < bestError) {
                L.set(kLaux, lo);
                bestError = curError;
                scale = thisScale;
                min = thisMin;
            }
        }
    }
    kTheMin = -min;
    return scale;
}

/** quantize_row_q4_K_ref: super-blocks of 256 = 8 sub-blocks of 32 with 6-bit scales and mins. */
function quantizeQ4K(src: Float32Array, dst: Uint8Array): void {
    const n = src.length;
    const L = kL;
    const q = kBlockScales;
    for (let b = 0, o = 0; b < n; b += 256, o += 144) {
        let maxScale = 0;
        let maxMin = 0;
        for (let j = 0; j < 8; j++) {
            const xo = b + 32 * j;
            let sumX2 = 0;
            for (let l = 0; l < 32; l++) sumX2 = F(sumX2 + F(src[xo + l]! * src[xo + l]!));
            const avX = F(Math.sqrt(F(sumX2 / 32)));
            for (let l = 0; l < 32; l++) kWeights[l] = F(avX + Math.abs(src[xo + l]!));
            const scale = makeQkx2Quants(src, xo, 32 * j);
            kScales[j] = scale;
            kMins[j] = kTheMin;
            if (scale > maxScale) maxScale = scale;
            if (kTheMin > maxMin) maxMin = kTheMin;
        }
        const invScale = maxScale > 0 ? F(63 / maxScale) : 0;
        const invMin = maxMin > 0 ? F(63 / maxMin) : 0;
        for (let j = 0; j < 8; j++) {
            let ls = nearestInt(F(invScale * kScales[j]!)) & 0xff;
            let lm = nearestInt(F(invMin * kMins[j]!)) & 0xff;
            ls = Math.min(ls, 63);
            lm = Math.min(lm, 63);
            if (j < 4) {
                q[j] = ls;
                q[j + 4] = lm;
            } else {
                q[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
                q[j - 4]! |= (ls >>> 4) << 6;
                q[j]! |= (lm >>> 4) << 6;
            }
        }
        const dBits = f16FromF32Bits(f32Bits(F(maxScale / 63)));
        const dminBits = f16FromF32Bits(f32Bits(F(maxMin / 63)));
        const dAll = f16ToF32(dBits);
        const dminAll = f16ToF32(dminBits);
        for (let j = 0; j < 8; j++) {
            const [sc, m] = scaleMinK4(j, q);
            const d = F(dAll * sc);
            if (d === 0) continue;
            const dm = F(dminAll * m);
            const xo = b + 32 * j;
            for (let ii = 0; ii < 32; ii++) {
                const l = nearestInt(F(F(src[xo + ii]! + dm) / d));
                L[32 * j + ii] = l < 0 ? 0 : Math.min(l, 15);
            }
        }
        dst[o] = dBits & 0xff;
        dst[o + 1] = dBits >>> 8;
        dst[o + 2] = dminBits & 0xff;
        dst[o + 3] = dminBits >>> 8;
        dst.set(q, o + 4);
        for (let j = 0, p = o + 16; j < 256; j += 64, p += 32) {
            for (let l = 0; l < 32; l++) dst[p + l] = L[j + l]! | (L[j + l + 32]! << 4);
        }
    }
}
