/**
 * GGUF (v2 and v3) header reader: metadata and tensor directory, through bounded buffered reads of a FileHandle.
 * Tensor data is never read. Validation follows the pinned ggml reader (ggml/src/gguf.cpp), so a file this
 * accepts is one llama.cpp can open, plus two stricter rules: dimensions must be >= 1 and arrays of arrays,
 * which gguf.cpp rejects, are accepted (the writer can produce them).
 */

import { isUtf8 } from "node:buffer";
import { type FileHandle, open } from "node:fs/promises";
import { GgufFormatError, type GgufFormatErrorCode } from "./errors.js";
import { rejectUnknownOptions } from "./options.js";
import {
    GGML_MAX_DIMS,
    GGML_MAX_NAME,
    GGUF_ALIGNMENT_KEY,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    type GgmlType,
    type GgufArray,
    type GgufJsValue,
    type GgufMetadataValue,
    GgufType,
    type GgufValue,
    ggmlTypeInfo,
    ggmlTypeName,
    ggufTypeName,
    ggufTypeSize,
    isGgufType,
} from "./types.js";
import type { GgufWriter } from "./writer.js";

export interface GgufTensorInfo {
    readonly name: string;
    /** Dimensions in ggml order, ne[0] first. */
    readonly shape: readonly number[];
    readonly type: GgmlType;
    /** ggml's name for the type, e.g. `"q4_0"`. */
    readonly typeName: string;
    readonly elementCount: number;
    /** Absolute file offset of the tensor's data. */
    readonly offset: number;
    readonly byteSize: number;
}

export interface GgufFile {
    readonly path: string;
    readonly version: number;
    readonly alignment: number;
    /** Metadata in file order. */
    readonly metadata: ReadonlyMap<string, GgufMetadataValue>;
    readonly tensors: readonly GgufTensorInfo[];
    /** Bytes of header, metadata and tensor directory. */
    readonly headerSize: number;
    /** Absolute offset of the data section. */
    readonly dataOffset: number;
    readonly fileSize: number;
}

export interface ReadGgufOptions {
    /**
     * Which metadata arrays to materialise: `true` all, `false` none, a number those with at most that many
     * elements. The others come back as `{ type: ARRAY, value: null, elementType, length }`. The limit applies to
     * top-level values; arrays nested in a materialised array are read whole. Default true.
     */
    readonly readArrays?: boolean | number;
}

/** ggml's GGUF_MAX_ARRAY_ELEMENTS. */
const MAX_ARRAY_ELEMENTS = 1024 * 1024 * 1024;
/** More keys or tensors than this is corruption, not a model. */
const MAX_COUNT = 2 ** 32;
/** Longest string accepted, in bytes (longer ones cannot be JS strings anyway). */
const MAX_STRING_BYTES = 256 * 1024 * 1024;
/** Arrays nested deeper than this are rejected rather than risk the stack. */
const MAX_ARRAY_DEPTH = 32;
const READ_CHUNK = 1 << 20;
// Smallest encodings, for rejecting counts that cannot fit in what is left of the file before looping over them.
const MIN_KV_BYTES = 8 + 1 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;

/** Reads the header (metadata and tensor directory) of a GGUF file. Throws `GgufFormatError` for a malformed one. */
export async function readGguf(path: string, options: ReadGgufOptions = {}): Promise<GgufFile> {
    rejectUnknownOptions(options, ["readArrays"], "readGguf options");
    const readArrays = options.readArrays ?? true;
    const maxArray =
        readArrays === true ? Number.POSITIVE_INFINITY : readArrays === false ? -1 : checkMaxArray(readArrays);
    const fh = await open(path, "r");
    try {
        const { size } = await fh.stat();
        const r = new BufferedReader(fh, size, path);
        return await parse(r, path, maxArray);
    } finally {
        await fh.close();
    }
}

function checkMaxArray(n: number): number {
    if (!Number.isInteger(n) || n < 0)
        throw new RangeError(`Expected "readArrays" to be a boolean or an integer >= 0, got ${n}`);
    return n;
}

async function parse(r: BufferedReader, path: string, maxArray: number): Promise<GgufFile> {
    if (r.fileSize < 4) {
        // An empty file or a cut-off "GGUF" is a truncated GGUF file; anything else is not a GGUF file at all.
        await r.need(r.fileSize);
        const head = r.peek(r.fileSize);
        const truncated = Buffer.from("GGUF").subarray(0, head.length).equals(head);
        throw new GgufFormatError(
            truncated ? "GGUF_TRUNCATED" : "GGUF_BAD_MAGIC",
            r.fileSize === 0 ? "File is empty" : `File is ${r.fileSize} bytes, too short for a GGUF header`,
            { path, offset: 0 },
        );
    }
    await r.need(4);
    const magic = r.u32();
    if (magic !== GGUF_MAGIC) {
        const shown = Buffer.alloc(4);
        shown.writeUInt32LE(magic);
        throw new GgufFormatError(
            "GGUF_BAD_MAGIC",
            `Not a GGUF file: starts with ${JSON.stringify(shown.toString("latin1"))}`,
            {
                path,
                offset: 0,
            },
        );
    }
    await r.need(4);
    const version = r.u32();
    if (version !== 2 && version !== 3) {
        throw new GgufFormatError(
            "GGUF_UNSUPPORTED_VERSION",
            `GGUF version ${version} is not supported (2 and 3 are)`,
            {
                path,
                offset: 4,
            },
        );
    }
    await r.need(16);
    const tensorCount = r.count("tensor count");
    const kvCount = r.count("metadata key count");
    if (tensorCount > MAX_COUNT || kvCount > MAX_COUNT) {
        r.fail("GGUF_INVALID", `Implausible header: ${tensorCount} tensors, ${kvCount} metadata keys`, 8);
    }
    if (kvCount * MIN_KV_BYTES + tensorCount * MIN_TENSOR_INFO_BYTES > r.remaining) {
        r.fail(
            "GGUF_TRUNCATED",
            `Header announces ${tensorCount} tensors and ${kvCount} metadata keys, more than the remaining ` +
                `${r.remaining} bytes can hold`,
            8,
        );
    }

    const metadata = new Map<string, GgufMetadataValue>();
    for (let i = 0; i < kvCount; i++) {
        const at = r.position;
        const key = await r.string();
        if (key.length === 0) r.fail("GGUF_INVALID", `Metadata key ${i} is empty`, at);
        if (metadata.has(key)) r.fail("GGUF_INVALID", `Duplicate metadata key "${key}"`, at);
        await r.need(4);
        const typeAt = r.position;
        const type = r.u32();
        if (!isGgufType(type)) r.fail("GGUF_INVALID", `Metadata key "${key}" has unknown value type ${type}`, typeAt);
        metadata.set(key, await readValue(r, type, maxArray, 0));
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const alignValue = metadata.get(GGUF_ALIGNMENT_KEY);
    if (alignValue !== undefined) {
        if (alignValue.type !== GgufType.UINT32) {
            r.fail("GGUF_INVALID", `"${GGUF_ALIGNMENT_KEY}" must be a uint32, found ${ggufTypeName(alignValue.type)}`);
        }
        alignment = alignValue.value;
        if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
            r.fail("GGUF_INVALID", `"${GGUF_ALIGNMENT_KEY}" is ${alignment}, not a power of 2`);
        }
    }

    interface RawTensor {
        name: string;
        shape: number[];
        type: GgmlType;
        elementCount: number;
        byteSize: number;
        relative: number;
        at: number;
    }
    const raw: RawTensor[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
        const at = r.position;
        const name = await r.string();
        if (Buffer.byteLength(name) >= GGML_MAX_NAME) {
            r.fail("GGUF_INVALID", `Tensor name "${name}" is longer than ggml allows (${GGML_MAX_NAME - 1} bytes)`, at);
        }
        if (names.has(name)) r.fail("GGUF_INVALID", `Duplicate tensor name "${name}"`, at);
        names.add(name);
        await r.need(4);
        const nDims = r.u32();
        if (nDims < 1 || nDims > GGML_MAX_DIMS) {
            r.fail("GGUF_INVALID", `Tensor "${name}" has ${nDims} dimensions (1 to ${GGML_MAX_DIMS} allowed)`, at);
        }
        await r.need(8 * nDims + 4 + 8);
        const shape: number[] = [];
        let elementCount = 1;
        for (let d = 0; d < nDims; d++) {
            const ne = r.u64();
            if (ne < 1n || ne > BigInt(Number.MAX_SAFE_INTEGER)) {
                r.fail("GGUF_INVALID", `Tensor "${name}" has dimension ${d} = ${ne}`, at);
            }
            shape.push(Number(ne));
            elementCount *= Number(ne);
        }
        if (!Number.isSafeInteger(elementCount)) {
            r.fail("GGUF_INVALID", `Tensor "${name}" has too many elements: [${shape}]`, at);
        }
        const typeId = r.u32();
        const info = ggmlTypeInfo(typeId);
        if (info === undefined) r.fail("GGUF_INVALID", `Tensor "${name}" has unknown ggml type ${typeId}`, at);
        if (shape[0]! % info.blockSize !== 0) {
            r.fail(
                "GGUF_INVALID",
                `Tensor "${name}": ne[0] = ${shape[0]} is not a multiple of the ${info.name} block size ${info.blockSize}`,
                at,
            );
        }
        const relative = r.u64();
        if (relative > BigInt(Number.MAX_SAFE_INTEGER)) {
            r.fail("GGUF_INVALID", `Tensor "${name}" has data offset ${relative}`, at);
        }
        raw.push({
            name,
            shape,
            type: typeId as GgmlType,
            elementCount,
            byteSize: (elementCount / info.blockSize) * info.typeSize,
            relative: Number(relative),
            at,
        });
    }

    const headerSize = r.position;
    // ggml requires the data section only when there are tensors; a vocab-only file may end right here.
    const dataOffset = tensorCount > 0 ? Math.ceil(headerSize / alignment) * alignment : headerSize;
    const tensors: GgufTensorInfo[] = [];
    let expected = 0;
    for (const t of raw) {
        if (t.relative !== expected) {
            r.fail(
                "GGUF_INVALID",
                `Tensor "${t.name}" has data offset ${t.relative}, expected ${expected} (tensors must be stored in ` +
                    `directory order, each aligned to ${alignment} bytes)`,
                t.at,
            );
        }
        const offset = dataOffset + t.relative;
        if (offset + t.byteSize > r.fileSize) {
            r.fail(
                "GGUF_TRUNCATED",
                `Data of tensor "${t.name}" (${t.byteSize} bytes at offset ${offset}) extends past the end of the ` +
                    `file (${r.fileSize} bytes)`,
                t.at,
            );
        }
        tensors.push({
            name: t.name,
            shape: t.shape,
            type: t.type,
            typeName: ggmlTypeName(t.type),
            elementCount: t.elementCount,
            offset,
            byteSize: t.byteSize,
        });
        expected += Math.ceil(t.byteSize / alignment) * alignment;
    }
    return { path, version, alignment, metadata, tensors, headerSize, dataOffset, fileSize: r.fileSize };
}

async function readValue(
    r: BufferedReader,
    type: GgufType,
    maxArray: number,
    depth: number,
): Promise<GgufMetadataValue> {
    switch (type) {
        case GgufType.STRING:
            return { type, value: await r.string() };
        case GgufType.ARRAY: {
            const array = await readArray(r, maxArray, depth);
            return "values" in array ? { type, value: array } : array;
        }
        default:
            await r.need(ggufTypeSize(type));
            return r.scalar(type);
    }
}

type Skipped = Extract<GgufMetadataValue, { value: null }>;

async function readArray(r: BufferedReader, maxArray: number, depth: number): Promise<GgufArray | Skipped> {
    const at = r.position;
    if (depth >= MAX_ARRAY_DEPTH) r.fail("GGUF_INVALID", `Arrays nested more than ${MAX_ARRAY_DEPTH} deep`, at);
    await r.need(12);
    const elementType = r.u32();
    if (!isGgufType(elementType)) r.fail("GGUF_INVALID", `Array has unknown element type ${elementType}`, at);
    const length = r.count("array length");
    if (length > MAX_ARRAY_ELEMENTS) r.fail("GGUF_INVALID", `Array of ${length} elements exceeds ggml's limit`, at);
    const minElement =
        elementType === GgufType.STRING ? 8 : elementType === GgufType.ARRAY ? 12 : ggufTypeSize(elementType);
    if (length * minElement > r.remaining) {
        r.fail(
            "GGUF_TRUNCATED",
            `Array of ${length} ${ggufTypeName(elementType)} values runs past the end of the file`,
            at,
        );
    }
    const materialise = length <= maxArray;
    if (!materialise) {
        if (elementType === GgufType.STRING) {
            for (let i = 0; i < length; i++) await r.skipString();
        } else if (elementType === GgufType.ARRAY) {
            for (let i = 0; i < length; i++) await readArray(r, -1, depth + 1);
        } else {
            await r.skip(length * minElement);
        }
        return { type: GgufType.ARRAY, value: null, elementType, length };
    }
    switch (elementType) {
        case GgufType.STRING: {
            const values: string[] = new Array(length);
            for (let i = 0; i < length; i++) values[i] = r.stringInWindow() ?? (await r.string());
            return { elementType, values };
        }
        case GgufType.ARRAY: {
            const values: GgufArray[] = new Array(length);
            // The readArrays limit applies to top-level values: a nested array is read whole with its parent.
            for (let i = 0; i < length; i++) {
                values[i] = (await readArray(r, Number.POSITIVE_INFINITY, depth + 1)) as GgufArray;
            }
            return { elementType, values };
        }
        case GgufType.BOOL: {
            const bytes = new Uint8Array(length);
            await r.readInto(bytes);
            const values: boolean[] = new Array(length);
            for (let i = 0; i < length; i++) values[i] = bytes[i] !== 0;
            return { elementType, values };
        }
        default: {
            const values = newTypedArray(elementType, length);
            const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
            await r.readInto(bytes);
            if (!LITTLE_ENDIAN_HOST) swapBytes(bytes, ggufTypeSize(elementType));
            return { elementType, values } as GgufArray;
        }
    }
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function swapBytes(bytes: Uint8Array, width: number): void {
    if (width === 1) return;
    for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

function newTypedArray(type: GgufType, length: number) {
    switch (type) {
        case GgufType.UINT8:
            return new Uint8Array(length);
        case GgufType.INT8:
            return new Int8Array(length);
        case GgufType.UINT16:
            return new Uint16Array(length);
        case GgufType.INT16:
            return new Int16Array(length);
        case GgufType.UINT32:
            return new Uint32Array(length);
        case GgufType.INT32:
            return new Int32Array(length);
        case GgufType.FLOAT32:
            return new Float32Array(length);
        case GgufType.FLOAT64:
            return new Float64Array(length);
        case GgufType.UINT64:
            return new BigUint64Array(length);
        case GgufType.INT64:
            return new BigInt64Array(length);
        default:
            throw new RangeError(`Not a numeric GGUF type: ${ggufTypeName(type)}`);
    }
}

/**
 * Sequential reads through a window of the file. Values are decoded synchronously from the window; `need(n)`
 * (async) must have made n bytes available first, so the common case costs no await per value.
 */
class BufferedReader {
    private buf: Buffer = Buffer.alloc(READ_CHUNK);
    /** File offset of buf[0]. */
    private base = 0;
    /** Valid bytes in buf. */
    private end = 0;
    /** Read cursor within buf. */
    private pos = 0;

    constructor(
        private readonly fh: FileHandle,
        readonly fileSize: number,
        private readonly path: string,
    ) {}

    get position(): number {
        return this.base + this.pos;
    }

    get remaining(): number {
        return this.fileSize - this.position;
    }

    fail(code: GgufFormatErrorCode, message: string, offset: number = this.position): never {
        throw new GgufFormatError(code, message, { path: this.path, offset });
    }

    /** Makes n bytes available at the cursor, or throws GGUF_TRUNCATED. */
    async need(n: number): Promise<void> {
        if (this.end - this.pos >= n) return;
        if (n > this.remaining) {
            this.fail("GGUF_TRUNCATED", `File ends after ${this.remaining} more bytes, ${n} needed`);
        }
        const keep = this.end - this.pos;
        if (n > this.buf.length) {
            const bigger = Buffer.alloc(Math.max(n, this.buf.length * 2));
            this.buf.copy(bigger, 0, this.pos, this.end);
            this.buf = bigger;
        } else {
            this.buf.copy(this.buf, 0, this.pos, this.end);
        }
        this.base += this.pos;
        this.pos = 0;
        this.end = keep;
        const want = Math.min(this.buf.length, this.fileSize - this.base);
        while (this.end < n) {
            const { bytesRead } = await this.fh.read(this.buf, this.end, want - this.end, this.base + this.end);
            if (bytesRead === 0) this.fail("GGUF_TRUNCATED", "File ended while reading (it shrank during the read?)");
            this.end += bytesRead;
        }
    }

    async skip(n: number): Promise<void> {
        if (n > this.remaining)
            this.fail("GGUF_TRUNCATED", `File ends after ${this.remaining} more bytes, ${n} needed`);
        const inWindow = this.end - this.pos;
        if (n <= inWindow) {
            this.pos += n;
            return;
        }
        this.base += this.pos + n;
        this.pos = 0;
        this.end = 0;
    }

    /** Fills `out` from the file at the cursor. */
    async readInto(out: Uint8Array): Promise<void> {
        if (out.length > this.remaining) {
            this.fail("GGUF_TRUNCATED", `File ends after ${this.remaining} more bytes, ${out.length} needed`);
        }
        let done = 0;
        while (done < out.length) {
            if (this.pos === this.end) await this.need(Math.min(out.length - done, this.buf.length));
            const n = Math.min(out.length - done, this.end - this.pos);
            out.set(this.buf.subarray(this.pos, this.pos + n), done);
            this.pos += n;
            done += n;
        }
    }

    /** The next n bytes of the window, without consuming them. */
    peek(n: number): Buffer {
        return this.buf.subarray(this.pos, this.pos + n);
    }

    u32(): number {
        const v = this.buf.readUInt32LE(this.pos);
        this.pos += 4;
        return v;
    }

    u64(): bigint {
        const v = this.buf.readBigUInt64LE(this.pos);
        this.pos += 8;
        return v;
    }

    /** A uint64 count or length as a number; values beyond 2^53 are reported as corruption. */
    count(what: string): number {
        const lo = this.buf.readUInt32LE(this.pos);
        const hi = this.buf.readUInt32LE(this.pos + 4);
        if (hi >= 2 ** 21) this.fail("GGUF_INVALID", `Implausible ${what}: ${this.buf.readBigUInt64LE(this.pos)}`);
        this.pos += 8;
        return hi * 2 ** 32 + lo;
    }

    scalar(type: GgufType): GgufValue {
        const b = this.buf;
        const p = this.pos;
        this.pos += ggufTypeSize(type);
        switch (type) {
            case GgufType.UINT8:
                return { type, value: b.readUInt8(p) };
            case GgufType.INT8:
                return { type, value: b.readInt8(p) };
            case GgufType.UINT16:
                return { type, value: b.readUInt16LE(p) };
            case GgufType.INT16:
                return { type, value: b.readInt16LE(p) };
            case GgufType.UINT32:
                return { type, value: b.readUInt32LE(p) };
            case GgufType.INT32:
                return { type, value: b.readInt32LE(p) };
            case GgufType.FLOAT32:
                return { type, value: b.readFloatLE(p) };
            case GgufType.FLOAT64:
                return { type, value: b.readDoubleLE(p) };
            case GgufType.BOOL:
                return { type, value: b[p] !== 0 };
            case GgufType.UINT64:
                return { type, value: b.readBigUInt64LE(p) };
            case GgufType.INT64:
                return { type, value: b.readBigInt64LE(p) };
            default:
                this.pos = p;
                return this.fail("GGUF_INVALID", `Not a scalar GGUF type: ${ggufTypeName(type)}`);
        }
    }

    async string(): Promise<string> {
        const at = this.position;
        await this.need(8);
        const length = this.count("string length");
        if (length > MAX_STRING_BYTES) this.fail("GGUF_INVALID", `String of ${length} bytes`, at);
        await this.need(length);
        const s = this.decode(this.pos, length);
        this.pos += length;
        return s;
    }

    /** The next string when it lies entirely in the window (no await needed), else undefined. */
    stringInWindow(): string | undefined {
        if (this.end - this.pos < 8) return undefined;
        const length = this.buf.readUInt32LE(this.pos);
        if (this.buf.readUInt32LE(this.pos + 4) !== 0 || this.end - this.pos - 8 < length) return undefined;
        const start = this.pos + 8;
        this.pos = start + length;
        return this.decode(start, length);
    }

    /**
     * UTF-8 bytes of the window as a string. Invalid UTF-8 is rejected rather than replaced, so that copying
     * metadata never alters it silently; U+FFFD in the result is the cheap hint that a check is needed.
     */
    private decode(start: number, length: number): string {
        const s = this.buf.toString("utf8", start, start + length);
        if (s.includes("\uFFFD") && !isUtf8(this.buf.subarray(start, start + length))) {
            this.fail("GGUF_INVALID", "String is not valid UTF-8", this.base + start - 8);
        }
        return s;
    }

    async skipString(): Promise<void> {
        await this.need(8);
        await this.skip(this.count("string length"));
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers

/**
 * The value of `key` if present, checked to be of `type`; undefined when absent. Throws when the key holds
 * another type or is an array that was not read.
 */
export function getMetadata<T extends GgufType>(
    source: GgufFile | ReadonlyMap<string, GgufMetadataValue>,
    key: string,
    type: T,
): GgufJsValue<T> | undefined {
    const metadata = "metadata" in source ? source.metadata : source;
    const entry = metadata.get(key);
    if (entry === undefined) return undefined;
    if (entry.type !== type) {
        throw new TypeError(`Metadata "${key}" is a ${ggufTypeName(entry.type)}, expected ${ggufTypeName(type)}`);
    }
    if (entry.value === null) throw new Error(`Metadata array "${key}" was not read (see the "readArrays" option)`);
    return entry.value as GgufJsValue<T>;
}

/**
 * Copies metadata from a file read by `readGguf` into a writer: the listed keys (each must exist) or those
 * `select` accepts. Returns the keys copied, in source order.
 */
export function copyMetadata(
    from: GgufFile | ReadonlyMap<string, GgufMetadataValue>,
    to: GgufWriter,
    select: readonly string[] | ((key: string, value: GgufMetadataValue) => boolean),
): string[] {
    const metadata = "metadata" in from ? from.metadata : from;
    let keys: string[];
    if (typeof select === "function") {
        keys = [...metadata].filter(([key, value]) => select(key, value)).map(([key]) => key);
    } else {
        const missing = select.filter((key) => !metadata.has(key));
        if (missing.length > 0) throw new Error(`Metadata keys not in the source: ${missing.join(", ")}`);
        keys = [...select];
    }
    for (const key of keys) {
        const value = metadata.get(key)!;
        if (value.value === null) {
            throw new Error(
                `Cannot copy metadata array "${key}": it was not read (read the source with readArrays: true)`,
            );
        }
        to.setMetadata(key, value as GgufValue);
    }
    return keys;
}

/** Reads the data bytes of one tensor (all in memory: for small tensors and tests). */
export async function readTensorBytes(file: GgufFile, tensor: GgufTensorInfo | string): Promise<Uint8Array> {
    const info = typeof tensor === "string" ? file.tensors.find((t) => t.name === tensor) : tensor;
    if (info === undefined) throw new Error(`No tensor "${String(tensor)}" in ${file.path}`);
    const out = new Uint8Array(info.byteSize);
    const fh = await open(file.path, "r");
    try {
        let done = 0;
        while (done < out.length) {
            const { bytesRead } = await fh.read(out, done, out.length - done, info.offset + done);
            if (bytesRead === 0) {
                throw new GgufFormatError("GGUF_TRUNCATED", `Data of tensor "${info.name}" is cut short`, {
                    path: file.path,
                    offset: info.offset + done,
                });
            }
            done += bytesRead;
        }
    } finally {
        await fh.close();
    }
    return out;
}
