/**
 * GGUF value types and ggml tensor types, with a tagged representation of metadata values that keeps
 * the exact on-disk type (uint32 vs int32 vs float32 ...), so that a value read from one file is written
 * back byte-for-byte.
 *
 * Source of truth: ggml/include/gguf.h and ggml/include/ggml.h in the pinned llama.cpp.
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
/** Version this package writes; the reader also accepts 2 (same layout with 64-bit counts). */
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_ALIGNMENT_KEY = "general.alignment";
/** ggml's GGML_MAX_NAME: tensor names must be shorter than this many bytes. */
export const GGML_MAX_NAME = 64;
/** ggml's GGML_MAX_DIMS. */
export const GGML_MAX_DIMS = 4;

/** GGUF metadata value types (`enum gguf_type`). */
export const GgufType = {
    UINT8: 0,
    INT8: 1,
    UINT16: 2,
    INT16: 3,
    UINT32: 4,
    INT32: 5,
    FLOAT32: 6,
    BOOL: 7,
    STRING: 8,
    ARRAY: 9,
    UINT64: 10,
    INT64: 11,
    FLOAT64: 12,
} as const;
export type GgufType = (typeof GgufType)[keyof typeof GgufType];

const GGUF_TYPE_NAMES: Record<GgufType, string> = {
    0: "uint8",
    1: "int8",
    2: "uint16",
    3: "int16",
    4: "uint32",
    5: "int32",
    6: "float32",
    7: "bool",
    8: "string",
    9: "array",
    10: "uint64",
    11: "int64",
    12: "float64",
};

export function isGgufType(type: number): type is GgufType {
    return Number.isInteger(type) && type >= 0 && type <= 12;
}

/** Name of a GGUF value type, e.g. `"uint32"`; `"unknown(N)"` for an id that is not one. */
export function ggufTypeName(type: number): string {
    return isGgufType(type) ? GGUF_TYPE_NAMES[type] : `unknown(${type})`;
}

/** Size in bytes of one value of a fixed-size GGUF type; 0 for STRING and ARRAY. */
export function ggufTypeSize(type: GgufType): number {
    switch (type) {
        case GgufType.UINT8:
        case GgufType.INT8:
        case GgufType.BOOL:
            return 1;
        case GgufType.UINT16:
        case GgufType.INT16:
            return 2;
        case GgufType.UINT32:
        case GgufType.INT32:
        case GgufType.FLOAT32:
            return 4;
        case GgufType.UINT64:
        case GgufType.INT64:
        case GgufType.FLOAT64:
            return 8;
        default:
            return 0;
    }
}

/** ggml tensor types (`enum ggml_type`). Ids 4, 5 and 31–33, 36–38 were removed from ggml and are invalid. */
export const GgmlType = {
    F32: 0,
    F16: 1,
    Q4_0: 2,
    Q4_1: 3,
    Q5_0: 6,
    Q5_1: 7,
    Q8_0: 8,
    Q8_1: 9,
    Q2_K: 10,
    Q3_K: 11,
    Q4_K: 12,
    Q5_K: 13,
    Q6_K: 14,
    Q8_K: 15,
    IQ2_XXS: 16,
    IQ2_XS: 17,
    IQ3_XXS: 18,
    IQ1_S: 19,
    IQ4_NL: 20,
    IQ3_S: 21,
    IQ2_S: 22,
    IQ4_XS: 23,
    I8: 24,
    I16: 25,
    I32: 26,
    I64: 27,
    F64: 28,
    IQ1_M: 29,
    BF16: 30,
    TQ1_0: 34,
    TQ2_0: 35,
    MXFP4: 39,
    NVFP4: 40,
    Q1_0: 41,
    Q2_0: 42,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

export interface GgmlTypeInfo {
    /** ggml's name for the type, e.g. `"q4_0"`. */
    readonly name: string;
    /** Elements per block. */
    readonly blockSize: number;
    /** Bytes per block. */
    readonly typeSize: number;
}

// Block sizes and sizeof(block_*) from ggml-common.h of the pinned tree.
const GGML_TYPE_INFO: ReadonlyMap<number, GgmlTypeInfo> = new Map<number, GgmlTypeInfo>([
    [GgmlType.F32, { name: "f32", blockSize: 1, typeSize: 4 }],
    [GgmlType.F16, { name: "f16", blockSize: 1, typeSize: 2 }],
    [GgmlType.Q4_0, { name: "q4_0", blockSize: 32, typeSize: 18 }],
    [GgmlType.Q4_1, { name: "q4_1", blockSize: 32, typeSize: 20 }],
    [GgmlType.Q5_0, { name: "q5_0", blockSize: 32, typeSize: 22 }],
    [GgmlType.Q5_1, { name: "q5_1", blockSize: 32, typeSize: 24 }],
    [GgmlType.Q8_0, { name: "q8_0", blockSize: 32, typeSize: 34 }],
    [GgmlType.Q8_1, { name: "q8_1", blockSize: 32, typeSize: 36 }],
    [GgmlType.Q2_K, { name: "q2_K", blockSize: 256, typeSize: 84 }],
    [GgmlType.Q3_K, { name: "q3_K", blockSize: 256, typeSize: 110 }],
    [GgmlType.Q4_K, { name: "q4_K", blockSize: 256, typeSize: 144 }],
    [GgmlType.Q5_K, { name: "q5_K", blockSize: 256, typeSize: 176 }],
    [GgmlType.Q6_K, { name: "q6_K", blockSize: 256, typeSize: 210 }],
    [GgmlType.Q8_K, { name: "q8_K", blockSize: 256, typeSize: 292 }],
    [GgmlType.IQ2_XXS, { name: "iq2_xxs", blockSize: 256, typeSize: 66 }],
    [GgmlType.IQ2_XS, { name: "iq2_xs", blockSize: 256, typeSize: 74 }],
    [GgmlType.IQ3_XXS, { name: "iq3_xxs", blockSize: 256, typeSize: 98 }],
    [GgmlType.IQ1_S, { name: "iq1_s", blockSize: 256, typeSize: 50 }],
    [GgmlType.IQ4_NL, { name: "iq4_nl", blockSize: 32, typeSize: 18 }],
    [GgmlType.IQ3_S, { name: "iq3_s", blockSize: 256, typeSize: 110 }],
    [GgmlType.IQ2_S, { name: "iq2_s", blockSize: 256, typeSize: 82 }],
    [GgmlType.IQ4_XS, { name: "iq4_xs", blockSize: 256, typeSize: 136 }],
    [GgmlType.I8, { name: "i8", blockSize: 1, typeSize: 1 }],
    [GgmlType.I16, { name: "i16", blockSize: 1, typeSize: 2 }],
    [GgmlType.I32, { name: "i32", blockSize: 1, typeSize: 4 }],
    [GgmlType.I64, { name: "i64", blockSize: 1, typeSize: 8 }],
    [GgmlType.F64, { name: "f64", blockSize: 1, typeSize: 8 }],
    [GgmlType.IQ1_M, { name: "iq1_m", blockSize: 256, typeSize: 56 }],
    [GgmlType.BF16, { name: "bf16", blockSize: 1, typeSize: 2 }],
    [GgmlType.TQ1_0, { name: "tq1_0", blockSize: 256, typeSize: 54 }],
    [GgmlType.TQ2_0, { name: "tq2_0", blockSize: 256, typeSize: 66 }],
    [GgmlType.MXFP4, { name: "mxfp4", blockSize: 32, typeSize: 17 }],
    [GgmlType.NVFP4, { name: "nvfp4", blockSize: 64, typeSize: 36 }],
    [GgmlType.Q1_0, { name: "q1_0", blockSize: 128, typeSize: 18 }],
    [GgmlType.Q2_0, { name: "q2_0", blockSize: 64, typeSize: 18 }],
]);

export function isGgmlType(type: number): type is GgmlType {
    return GGML_TYPE_INFO.has(type);
}

/** Block size, bytes per block and name of a ggml type; undefined for an id ggml does not (or no longer) know. */
export function ggmlTypeInfo(type: number): GgmlTypeInfo | undefined {
    return GGML_TYPE_INFO.get(type);
}

/** ggml's name for a tensor type, e.g. `"q4_0"`; `"unknown(N)"` for an unknown id. */
export function ggmlTypeName(type: number): string {
    return GGML_TYPE_INFO.get(type)?.name ?? `unknown(${type})`;
}

/** Bytes taken by `elements` values of `type` (elements must be a multiple of the block size). */
export function ggmlByteSize(type: GgmlType, elements: number): number {
    const info = GGML_TYPE_INFO.get(type);
    if (info === undefined) throw new RangeError(`Unknown ggml type ${type}`);
    if (elements % info.blockSize !== 0) {
        throw new RangeError(
            `Expected the element count of a ${info.name} tensor to be a multiple of ${info.blockSize}, got ${elements}`,
        );
    }
    return (elements / info.blockSize) * info.typeSize;
}

// ---------------------------------------------------------------------------------------------------------------------
// Metadata values

/** JS representation of each scalar GGUF type. */
export interface GgufScalarValues {
    [GgufType.UINT8]: number;
    [GgufType.INT8]: number;
    [GgufType.UINT16]: number;
    [GgufType.INT16]: number;
    [GgufType.UINT32]: number;
    [GgufType.INT32]: number;
    [GgufType.FLOAT32]: number;
    [GgufType.BOOL]: boolean;
    [GgufType.STRING]: string;
    [GgufType.UINT64]: bigint;
    [GgufType.INT64]: bigint;
    [GgufType.FLOAT64]: number;
}

/**
 * JS representation of the elements of a GGUF array, by element type. Numeric arrays are typed arrays so that
 * 151k-entry vocab arrays cost one allocation, not 151k.
 */
export interface GgufArrayValues {
    [GgufType.UINT8]: Uint8Array;
    [GgufType.INT8]: Int8Array;
    [GgufType.UINT16]: Uint16Array;
    [GgufType.INT16]: Int16Array;
    [GgufType.UINT32]: Uint32Array;
    [GgufType.INT32]: Int32Array;
    [GgufType.FLOAT32]: Float32Array;
    [GgufType.BOOL]: boolean[];
    [GgufType.STRING]: string[];
    [GgufType.ARRAY]: GgufArray[];
    [GgufType.UINT64]: BigUint64Array;
    [GgufType.INT64]: BigInt64Array;
    [GgufType.FLOAT64]: Float64Array;
}

/**
 * A GGUF array: element type plus elements. Arrays of arrays are part of the GGUF format, but the pinned ggml
 * reader (gguf.cpp) rejects them, so llama.cpp will not load a file that contains one.
 */
export type GgufArray = {
    [T in keyof GgufArrayValues]: { readonly elementType: T; readonly values: GgufArrayValues[T] };
}[keyof GgufArrayValues];

type GgufValueByType = GgufScalarValues & { [GgufType.ARRAY]: GgufArray };

/** A metadata value tagged with its exact GGUF type. */
export type GgufValue = {
    [T in keyof GgufValueByType]: { readonly type: T; readonly value: GgufValueByType[T] };
}[keyof GgufValueByType];

/** The JS value held by a tagged value of GGUF type `T`, e.g. `number` for UINT32, `bigint` for UINT64. */
export type GgufJsValue<T extends GgufType> = GgufValueByType[T];

/** The tagged value type for one GGUF type, e.g. `GgufValueOf<typeof GgufType.UINT32>`. */
export type GgufValueOf<T extends GgufType> = Extract<GgufValue, { type: T }>;

/** The array type for one element type, e.g. `GgufArrayOf<typeof GgufType.STRING>` holds `string[]`. */
export type GgufArrayOf<T extends GgufType> = Extract<GgufArray, { elementType: T }>;

/**
 * An array the reader did not materialise (see `readArrays` in `readGguf`): only its element type and length
 * are known.
 */
export interface GgufSkippedArray {
    readonly type: typeof GgufType.ARRAY;
    readonly value: null;
    readonly elementType: GgufType;
    readonly length: number;
}

/** What the reader returns for a metadata key. */
export type GgufMetadataValue = GgufValue | GgufSkippedArray;

// ---------------------------------------------------------------------------------------------------------------------
// Constructors. They check ranges so that a value never wraps silently on its way to disk.

function checkInt(value: number, min: number, max: number, typeName: string): number {
    if (!Number.isInteger(value) || value < min || value > max) {
        throw new RangeError(`Expected a ${typeName} (an integer in [${min}, ${max}]), got ${value}`);
    }
    return value;
}

function checkBigInt(value: bigint, min: bigint, max: bigint, typeName: string): bigint {
    if (typeof value !== "bigint" || value < min || value > max) {
        throw new RangeError(`Expected a ${typeName} (a bigint in [${min}, ${max}]), got ${String(value)}`);
    }
    return value;
}

function checkNumber(value: number, typeName: string): number {
    if (typeof value !== "number") throw new TypeError(`Expected a ${typeName} (a number), got ${typeof value}`);
    return value;
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

export const u8 = (value: number): GgufValueOf<typeof GgufType.UINT8> => ({
    type: GgufType.UINT8,
    value: checkInt(value, 0, 0xff, "uint8"),
});
export const i8 = (value: number): GgufValueOf<typeof GgufType.INT8> => ({
    type: GgufType.INT8,
    value: checkInt(value, -0x80, 0x7f, "int8"),
});
export const u16 = (value: number): GgufValueOf<typeof GgufType.UINT16> => ({
    type: GgufType.UINT16,
    value: checkInt(value, 0, 0xffff, "uint16"),
});
export const i16 = (value: number): GgufValueOf<typeof GgufType.INT16> => ({
    type: GgufType.INT16,
    value: checkInt(value, -0x8000, 0x7fff, "int16"),
});
export const u32 = (value: number): GgufValueOf<typeof GgufType.UINT32> => ({
    type: GgufType.UINT32,
    value: checkInt(value, 0, 0xffffffff, "uint32"),
});
export const i32 = (value: number): GgufValueOf<typeof GgufType.INT32> => ({
    type: GgufType.INT32,
    value: checkInt(value, -0x80000000, 0x7fffffff, "int32"),
});
/** A float32; the value is rounded to float32 when written. */
export const f32 = (value: number): GgufValueOf<typeof GgufType.FLOAT32> => ({
    type: GgufType.FLOAT32,
    value: checkNumber(value, "float32"),
});
export const f64 = (value: number): GgufValueOf<typeof GgufType.FLOAT64> => ({
    type: GgufType.FLOAT64,
    value: checkNumber(value, "float64"),
});
export const bool = (value: boolean): GgufValueOf<typeof GgufType.BOOL> => {
    if (typeof value !== "boolean") throw new TypeError(`Expected a bool, got ${typeof value}`);
    return { type: GgufType.BOOL, value };
};
export const str = (value: string): GgufValueOf<typeof GgufType.STRING> => {
    if (typeof value !== "string") throw new TypeError(`Expected a string, got ${typeof value}`);
    return { type: GgufType.STRING, value };
};
/** A uint64; a number is accepted when it is a safe integer. */
export const u64 = (value: bigint | number): GgufValueOf<typeof GgufType.UINT64> => ({
    type: GgufType.UINT64,
    value: checkBigInt(toBigInt(value, "uint64"), 0n, U64_MAX, "uint64"),
});
/** An int64; a number is accepted when it is a safe integer. */
export const i64 = (value: bigint | number): GgufValueOf<typeof GgufType.INT64> => ({
    type: GgufType.INT64,
    value: checkBigInt(toBigInt(value, "int64"), I64_MIN, I64_MAX, "int64"),
});

function toBigInt(value: bigint | number, typeName: string): bigint {
    if (typeof value === "bigint") return value;
    if (!Number.isSafeInteger(value))
        throw new RangeError(`Expected a ${typeName} (a bigint or safe integer), got ${value}`);
    return BigInt(value);
}

/** What `arr()` accepts for each element type; plain arrays are range-checked and copied into typed arrays. */
export interface GgufArrayInputs {
    [GgufType.UINT8]: Uint8Array | readonly number[];
    [GgufType.INT8]: Int8Array | readonly number[];
    [GgufType.UINT16]: Uint16Array | readonly number[];
    [GgufType.INT16]: Int16Array | readonly number[];
    [GgufType.UINT32]: Uint32Array | readonly number[];
    [GgufType.INT32]: Int32Array | readonly number[];
    [GgufType.FLOAT32]: Float32Array | readonly number[];
    [GgufType.BOOL]: readonly boolean[];
    [GgufType.STRING]: readonly string[];
    [GgufType.ARRAY]: readonly GgufArray[];
    [GgufType.UINT64]: BigUint64Array | readonly (bigint | number)[];
    [GgufType.INT64]: BigInt64Array | readonly (bigint | number)[];
    [GgufType.FLOAT64]: Float64Array | readonly number[];
}

const INT_RANGES: Partial<Record<GgufType, readonly [number, number]>> = {
    [GgufType.UINT8]: [0, 0xff],
    [GgufType.INT8]: [-0x80, 0x7f],
    [GgufType.UINT16]: [0, 0xffff],
    [GgufType.INT16]: [-0x8000, 0x7fff],
    [GgufType.UINT32]: [0, 0xffffffff],
    [GgufType.INT32]: [-0x80000000, 0x7fffffff],
};

/** Builds the `GgufArray` for `values` (typed arrays are kept as they are, not copied). */
export function makeArray<T extends keyof GgufArrayInputs>(elementType: T, values: GgufArrayInputs[T]): GgufArrayOf<T> {
    const array = toArrayValues(elementType, values as GgufArrayInputs[keyof GgufArrayInputs]);
    return { elementType, values: array } as unknown as GgufArrayOf<T>;
}

/** A metadata array value, e.g. `arr(GgufType.INT32, [1, 2, 3])` or `arr(GgufType.STRING, tokens)`. */
export function arr<T extends keyof GgufArrayInputs>(
    elementType: T,
    values: GgufArrayInputs[T],
): GgufValueOf<typeof GgufType.ARRAY> & { readonly value: GgufArrayOf<T> } {
    return { type: GgufType.ARRAY, value: makeArray(elementType, values) };
}

function toArrayValues(elementType: GgufType, values: GgufArrayInputs[keyof GgufArrayInputs]): GgufArray["values"] {
    const name = ggufTypeName(elementType);
    const range = INT_RANGES[elementType];
    switch (elementType) {
        case GgufType.UINT8:
        case GgufType.INT8:
        case GgufType.UINT16:
        case GgufType.INT16:
        case GgufType.UINT32:
        case GgufType.INT32: {
            const Ctor = INT_ARRAY_CTORS[elementType];
            if (values instanceof Ctor) return values;
            if (!Array.isArray(values)) throw new TypeError(`Expected a ${Ctor.name} or an array of ${name} values`);
            const [min, max] = range!;
            const out = new Ctor(values.length);
            for (let i = 0; i < values.length; i++) out[i] = checkInt(values[i] as number, min, max, name);
            return out;
        }
        case GgufType.FLOAT32:
        case GgufType.FLOAT64: {
            const Ctor = elementType === GgufType.FLOAT32 ? Float32Array : Float64Array;
            if (values instanceof Ctor) return values;
            if (!Array.isArray(values)) throw new TypeError(`Expected a ${Ctor.name} or an array of ${name} values`);
            const out = new Ctor(values.length);
            for (let i = 0; i < values.length; i++) out[i] = checkNumber(values[i] as number, name);
            return out;
        }
        case GgufType.UINT64:
        case GgufType.INT64: {
            const unsigned = elementType === GgufType.UINT64;
            const Ctor = unsigned ? BigUint64Array : BigInt64Array;
            if (values instanceof Ctor) return values;
            if (!Array.isArray(values)) throw new TypeError(`Expected a ${Ctor.name} or an array of ${name} values`);
            const out = new Ctor(values.length);
            for (let i = 0; i < values.length; i++) {
                const v = values[i] as bigint | number;
                out[i] = unsigned ? u64(v).value : i64(v).value;
            }
            return out;
        }
        case GgufType.BOOL:
            if (!Array.isArray(values)) throw new TypeError("Expected an array of booleans");
            for (const v of values) bool(v as boolean);
            return values as boolean[];
        case GgufType.STRING:
            if (!Array.isArray(values)) throw new TypeError("Expected an array of strings");
            for (const v of values) {
                if (typeof v !== "string") throw new TypeError(`Expected an array of strings, found a ${typeof v}`);
            }
            return values as string[];
        case GgufType.ARRAY:
            if (!Array.isArray(values)) throw new TypeError("Expected an array of GGUF arrays");
            for (const v of values) validateArray(v as GgufArray);
            return values as GgufArray[];
        default:
            throw new RangeError(`Unknown GGUF element type ${String(elementType)}`);
    }
}

const INT_ARRAY_CTORS = {
    [GgufType.UINT8]: Uint8Array,
    [GgufType.INT8]: Int8Array,
    [GgufType.UINT16]: Uint16Array,
    [GgufType.INT16]: Int16Array,
    [GgufType.UINT32]: Uint32Array,
    [GgufType.INT32]: Int32Array,
} as const;

const ARRAY_CTORS: Partial<Record<GgufType, { new (n: number): unknown; name: string }>> = {
    ...INT_ARRAY_CTORS,
    [GgufType.FLOAT32]: Float32Array,
    [GgufType.FLOAT64]: Float64Array,
    [GgufType.UINT64]: BigUint64Array,
    [GgufType.INT64]: BigInt64Array,
};

/** Throws unless `array` has a known element type and values of the matching JS representation. */
export function validateArray(array: GgufArray): void {
    if (typeof array !== "object" || array === null) throw new TypeError("Expected a GGUF array object");
    const { elementType, values } = array;
    if (!isGgufType(elementType)) throw new RangeError(`Unknown GGUF array element type ${String(elementType)}`);
    const Ctor = ARRAY_CTORS[elementType];
    if (Ctor !== undefined) {
        if (!(values instanceof (Ctor as unknown as typeof Uint8Array))) {
            throw new TypeError(`Expected the values of a ${ggufTypeName(elementType)} array to be a ${Ctor.name}`);
        }
        return;
    }
    // Strings, bools and nested arrays are plain arrays and need a per-element check.
    toArrayValues(elementType, values as unknown as readonly never[]);
}

/** Throws unless `value` is a well-formed tagged value whose JS value fits its GGUF type. */
export function validateValue(value: GgufValue): void {
    if (typeof value !== "object" || value === null)
        throw new TypeError("Expected a tagged GGUF value { type, value }");
    const v = value.value;
    switch (value.type) {
        case GgufType.UINT8:
            u8(v as number);
            return;
        case GgufType.INT8:
            i8(v as number);
            return;
        case GgufType.UINT16:
            u16(v as number);
            return;
        case GgufType.INT16:
            i16(v as number);
            return;
        case GgufType.UINT32:
            u32(v as number);
            return;
        case GgufType.INT32:
            i32(v as number);
            return;
        case GgufType.FLOAT32:
            f32(v as number);
            return;
        case GgufType.FLOAT64:
            f64(v as number);
            return;
        case GgufType.BOOL:
            bool(v as boolean);
            return;
        case GgufType.STRING:
            str(v as string);
            return;
        case GgufType.UINT64:
            if (typeof v !== "bigint") throw new TypeError(`Expected a uint64 value to be a bigint, got ${typeof v}`);
            u64(v);
            return;
        case GgufType.INT64:
            if (typeof v !== "bigint") throw new TypeError(`Expected an int64 value to be a bigint, got ${typeof v}`);
            i64(v);
            return;
        case GgufType.ARRAY:
            validateArray(v as GgufArray);
            return;
        default:
            throw new RangeError(`Unknown GGUF value type ${String((value as { type: unknown }).type)}`);
    }
}
