/**
 * Deterministic pseudo-random floats for synthetic weights: xoshiro128** (32-bit integer math only, so every
 * platform produces the same stream), seeded per tensor from (model seed, tensor name), and normal deviates by
 * table lookup (65,536 normal quantiles), which is several times faster than Box-Muller and plenty for random
 * weights.
 */

function rotl(x: number, k: number): number {
    return (x << k) | (x >>> (32 - k));
}

/** splitmix32 step: returns the next state and an output word. */
function splitmix32(state: number): [number, number] {
    const next = (state + 0x9e3779b9) | 0;
    let z = next;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return [next, (z ^ (z >>> 16)) >>> 0];
}

/** A xoshiro128** generator. Its state is four uint32 words, never all zero. */
export class Xoshiro128 {
    private s0: number;
    private s1: number;
    private s2: number;
    private s3: number;
    /** A pending 16-bit index for `fillNormal`; -1 when none. Keeps the output independent of chunk sizes. */
    private spare = -1;

    /** Seeds from a 32-bit value through splitmix32, or from four explicit state words. */
    constructor(seed: number | readonly [number, number, number, number]) {
        let words: number[];
        if (typeof seed === "number") {
            let s = seed | 0;
            words = [];
            for (let i = 0; i < 4; i++) {
                const [next, out] = splitmix32(s);
                s = next;
                words.push(out);
            }
        } else {
            words = seed.map((w) => w | 0);
        }
        if (!words.some((w) => w !== 0)) words[0] = 1;
        this.s0 = words[0]! | 0;
        this.s1 = words[1]! | 0;
        this.s2 = words[2]! | 0;
        this.s3 = words[3]! | 0;
    }

    /** Next uint32. */
    nextU32(): number {
        const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
        const t = this.s1 << 9;
        this.s2 ^= this.s0;
        this.s3 ^= this.s1;
        this.s1 ^= this.s2;
        this.s0 ^= this.s3;
        this.s2 ^= t;
        this.s3 = rotl(this.s3, 11);
        return result >>> 0;
    }

    /** Fills `out` with uniform values in [min, max), 24 random bits each. */
    fillUniform(out: Float32Array, min: number, max: number): void {
        let { s0, s1, s2, s3 } = this;
        const scale = (max - min) * 2 ** -24;
        for (let i = 0; i < out.length; i++) {
            const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
            const t = s1 << 9;
            s2 ^= s0;
            s3 ^= s1;
            s1 ^= s2;
            s0 ^= s3;
            s2 ^= t;
            s3 = rotl(s3, 11);
            out[i] = min + (r >>> 8) * scale;
        }
        this.s0 = s0;
        this.s1 = s1;
        this.s2 = s2;
        this.s3 = s3;
    }

    /** Fills `out` with approximately N(mean, std²) values; each uint32 drawn yields two of them. */
    fillNormal(out: Float32Array, mean: number, std: number): void {
        const table = normalTable();
        const n = out.length;
        let i = 0;
        if (n === 0) return;
        if (this.spare >= 0) {
            out[i++] = mean + std * table[this.spare]!;
            this.spare = -1;
        }
        const pairsEnd = i + ((n - i) & ~1);
        let { s0, s1, s2, s3 } = this;
        for (; i < pairsEnd; i += 2) {
            const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
            const t = s1 << 9;
            s2 ^= s0;
            s3 ^= s1;
            s1 ^= s2;
            s0 ^= s3;
            s2 ^= t;
            s3 = rotl(s3, 11);
            out[i] = mean + std * table[r & 0xffff]!;
            out[i + 1] = mean + std * table[r >>> 16]!;
        }
        this.s0 = s0;
        this.s1 = s1;
        this.s2 = s2;
        this.s3 = s3;
        if (i < n) {
            // Odd length: use half of the next draw now and keep the other half for the next call.
            const r = this.nextU32();
            out[i] = mean + std * table[r & 0xffff]!;
            this.spare = r >>> 16;
        }
    }
}

/**
 * Seed for one tensor, derived from the model seed and the tensor's name: adding or reordering tensors does not
 * change the others' values. `seed` may be any safe integer.
 */
export function tensorSeed(seed: number, name: string): [number, number, number, number] {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Expected "seed" to be a safe integer, got ${seed}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    // Two independent FNV-1a style hashes over the UTF-8 bytes of the name, keyed by the seed.
    let h1 = (0x811c9dc5 ^ lo) | 0;
    let h2 = (0x9e3779b9 ^ hi ^ Math.imul(lo, 0x85ebca6b)) | 0;
    const bytes = Buffer.from(name, "utf8");
    for (const b of bytes) {
        h1 = Math.imul(h1 ^ b, 0x01000193);
        h2 = Math.imul(h2 ^ b, 0x5bd1e995);
        h2 ^= h2 >>> 15;
    }
    h1 = Math.imul(h1 ^ bytes.length, 0x01000193);
    let state = h1 ^ rotl(h2, 16);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
        const [next, out] = splitmix32(state ^ (i === 2 ? h2 : 0));
        state = next;
        words.push(out);
    }
    return [words[0]!, words[1]!, words[2]!, words[3]!];
}

let table: Float32Array | undefined;

/** 65,536 standard normal quantiles at (k + 0.5) / 65536, rescaled to unit variance. */
export function normalTable(): Float32Array {
    if (table !== undefined) return table;
    const n = 65536;
    const values = new Float64Array(n);
    let sumSq = 0;
    for (let k = 0; k < n; k++) {
        const z = inverseNormalCdf((k + 0.5) / n);
        values[k] = z;
        sumSq += z * z;
    }
    const scale = 1 / Math.sqrt(sumSq / n);
    table = new Float32Array(n);
    for (let k = 0; k < n; k++) table[k] = values[k]! * scale;
    return table;
}

// Coefficients of AS241 (Wichura 1988), lowest degree first, as the nearest doubles.
const AS241_A = [
    3.3871328727963665, 133.14166789178438, 1971.5909503065513, 13731.69376550946, 45921.95393154987, 67265.7709270087,
    33430.57558358813, 2509.0809287301227,
];
const AS241_B = [
    1.0, 42.31333070160091, 687.1870074920579, 5394.196021424751, 21213.794301586597, 39307.89580009271,
    28729.085735721943, 5226.495278852854,
];
const AS241_C = [
    1.4234371107496835, 4.630337846156546, 5.769497221460691, 3.6478483247632045, 1.2704582524523684,
    0.2417807251774506, 0.022723844989269184, 0.0007745450142783414,
];
const AS241_D = [
    1.0, 2.053191626637759, 1.6763848301838038, 0.6897673349851, 0.14810397642748008, 0.015198666563616457,
    0.0005475938084995345, 1.0507500716444169e-9,
];
const AS241_E = [
    6.657904643501103, 5.463784911164114, 1.7848265399172913, 0.29656057182850487, 0.026532189526576124,
    0.0012426609473880784, 2.7115555687434876e-5, 2.0103343992922881e-7,
];
const AS241_F = [
    1.0, 0.599832206555888, 0.1369298809227358, 0.014875361290850615, 0.0007868691311456133, 1.8463183175100548e-5,
    1.421511758316446e-7, 2.0442631033899397e-15,
];

function poly(c: readonly number[], x: number): number {
    let y = 0;
    for (let i = c.length - 1; i >= 0; i--) y = y * x + c[i]!;
    return y;
}

/** Inverse of the standard normal CDF for p in (0, 1): Wichura's algorithm AS241 (PPND16), ~1e-16 relative. */
export function inverseNormalCdf(p: number): number {
    if (!(p > 0 && p < 1)) {
        if (p === 0) return Number.NEGATIVE_INFINITY;
        if (p === 1) return Number.POSITIVE_INFINITY;
        return Number.NaN;
    }
    const q = p - 0.5;
    if (Math.abs(q) <= 0.425) {
        const r = 0.180625 - q * q;
        return (q * poly(AS241_A, r)) / poly(AS241_B, r);
    }
    const r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p));
    const x = r <= 5 ? poly(AS241_C, r - 1.6) / poly(AS241_D, r - 1.6) : poly(AS241_E, r - 5) / poly(AS241_F, r - 5);
    return q < 0 ? -x : x;
}
