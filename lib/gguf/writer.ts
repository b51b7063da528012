/**
 * Streaming GGUF v3 writer. Metadata and the tensor directory are serialised in bounded chunks; tensor data is
 * generated, encoded and written chunk by chunk (two chunks in flight: one being encoded while the other is
 * written), so memory stays at a few chunks whatever the tensor sizes.
 */

import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, unlink } from "node:fs/promises";
import { rejectUnknownOptions } from "./options.js";
import { ENCODABLE_TYPES, encodeFloats } from "./quant.js";
import { tensorSeed, Xoshiro128 } from "./random.js";
import {
    GGML_MAX_DIMS,
    GGML_MAX_NAME,
    GGUF_ALIGNMENT_KEY,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGUF_VERSION,
    type GgmlType,
    type GgufArray,
    GgufType,
    type GgufValue,
    ggmlTypeInfo,
    ggmlTypeName,
    ggufTypeName,
    ggufTypeSize,
    validateValue,
} from "./types.js";

// ---------------------------------------------------------------------------------------------------------------------
// Tensor data sources

/**
 * Where a tensor's values come from. Float sources are encoded to the tensor's type (f32, f16, bf16, q8_0, q4_0,
 * q4_K); `bytes` is written as it is and works for any type.
 */
export type TensorData =
    | { readonly kind: "normal"; readonly mean: number; readonly std: number }
    | { readonly kind: "uniform"; readonly min: number; readonly max: number }
    | { readonly kind: "constant"; readonly value: number }
    | { readonly kind: "floats"; readonly values: Float32Array }
    | { readonly kind: "function"; readonly fill: TensorFill }
    | { readonly kind: "bytes"; readonly bytes: Uint8Array };

/**
 * Fills `out` with the values of elements `start .. start + out.length` of the tensor, in ggml order (ne[0]
 * fastest). Called with consecutive ranges; must depend only on the element indices for the file to be
 * reproducible.
 */
export type TensorFill = (out: Float32Array, start: number) => void;

/** Values ~ N(mean, std²), from the tensor's own seeded stream. */
export function normal(std: number, mean = 0): TensorData {
    if (!Number.isFinite(std) || std < 0) throw new RangeError(`Expected "std" to be a finite number >= 0, got ${std}`);
    if (!Number.isFinite(mean)) throw new RangeError(`Expected "mean" to be a finite number, got ${mean}`);
    return { kind: "normal", mean, std };
}

/** Values uniform in [min, max), from the tensor's own seeded stream. */
export function uniform(min: number, max: number): TensorData {
    if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) {
        throw new RangeError(`Expected finite "min" <= "max", got min ${min}, max ${max}`);
    }
    return { kind: "uniform", min, max };
}

/** Every value equal to `value`. */
export function constant(value: number): TensorData {
    if (typeof value !== "number") throw new TypeError(`Expected "value" to be a number, got ${typeof value}`);
    return { kind: "constant", value };
}

/** Explicit values (held in memory: for small tensors). */
export function fromFloats(values: Float32Array | readonly number[]): TensorData {
    return { kind: "floats", values: values instanceof Float32Array ? values : Float32Array.from(values) };
}

/** Values computed by `fill`, chunk by chunk. */
export function fromFunction(fill: TensorFill): TensorData {
    if (typeof fill !== "function") throw new TypeError(`Expected "fill" to be a function, got ${typeof fill}`);
    return { kind: "function", fill };
}

/** Already-encoded tensor bytes, written as they are. */
export function fromBytes(bytes: Uint8Array): TensorData {
    if (!(bytes instanceof Uint8Array)) throw new TypeError("Expected a Uint8Array of tensor bytes");
    return { kind: "bytes", bytes };
}

// ---------------------------------------------------------------------------------------------------------------------
// Writer

export interface GgufTensorSpec {
    /** Tensor name, unique in the file, shorter than 64 UTF-8 bytes (ggml's GGML_MAX_NAME). */
    readonly name: string;
    /** Dimensions in ggml order: ne[0] (contiguous, the row length) first; 1 to 4 positive integers. */
    readonly shape: readonly number[];
    /** Storage type; ne[0] must be a multiple of its block size (32 for q4_0/q8_0, 256 for q4_K). */
    readonly type: GgmlType;
    readonly data: TensorData;
}

export interface GgufWriterOptions {
    /** Model seed; each tensor's random stream is derived from it and the tensor's name. Default 0. */
    readonly seed?: number;
}

export interface GgufWriteOptions {
    /** Called after each chunk reaches the file, with bytes written so far and the final file size. */
    readonly onProgress?: (bytesWritten: number, totalBytes: number) => void;
    /** Aborts the write; the partial file is removed. */
    readonly signal?: AbortSignal;
    /**
     * Values generated and encoded per chunk (rounded up to the type's block size); memory use is about
     * 2 × (4 + encoded bytes per value) × this. Does not affect the file's bytes. Default 1,048,576.
     */
    readonly chunkElements?: number;
    /** Write to a temporary file beside `path` and rename it into place when complete. Default true. */
    readonly atomic?: boolean;
}

export interface GgufTensorLayout {
    readonly name: string;
    readonly shape: readonly number[];
    readonly type: GgmlType;
    readonly elementCount: number;
    /** Absolute file offset of the tensor's data. */
    readonly offset: number;
    readonly byteSize: number;
}

export interface GgufLayout {
    readonly alignment: number;
    /** Bytes of header, metadata and tensor directory, before the padding. */
    readonly headerSize: number;
    /** Absolute offset of the data section (headerSize rounded up to the alignment). */
    readonly dataOffset: number;
    /** Size of the complete file. */
    readonly fileSize: number;
    readonly tensors: readonly GgufTensorLayout[];
}

interface TensorEntry {
    readonly name: string;
    readonly nameBytes: number;
    readonly shape: readonly number[];
    readonly type: GgmlType;
    readonly data: TensorData;
    readonly elementCount: number;
    readonly byteSize: number;
}

const DEFAULT_CHUNK_ELEMENTS = 1 << 20;
const HEADER_CHUNK_BYTES = 4 << 20;

function padTo(n: number, alignment: number): number {
    return Math.ceil(n / alignment) * alignment;
}

/**
 * Builds a GGUF v3 file: metadata, then tensors whose data is produced while writing.
 *
 * ```ts
 * const w = new GgufWriter({ seed: 42 });
 * w.setMetadata("general.architecture", str("qwen2vl"));
 * w.addTensor({ name: "token_embd.weight", shape: [2048, 151936], type: GgmlType.Q4_0, data: normal(0.02) });
 * await w.write("model.gguf", { onProgress: (done, total) => {} });
 * ```
 */
export class GgufWriter {
    readonly seed: number;
    private readonly metadata = new Map<string, GgufValue>();
    private readonly tensors: TensorEntry[] = [];
    private readonly tensorNames = new Set<string>();

    constructor(options: GgufWriterOptions = {}) {
        rejectUnknownOptions(options, ["seed"], "GgufWriter options");
        const seed = options.seed ?? 0;
        if (!Number.isSafeInteger(seed)) throw new RangeError(`Expected "seed" to be a safe integer, got ${seed}`);
        this.seed = seed;
    }

    /** Sets (or replaces, keeping its position) a metadata key. */
    setMetadata(key: string, value: GgufValue): this {
        if (typeof key !== "string" || key.length === 0) throw new TypeError("Expected a non-empty metadata key");
        validateValue(value);
        if (key === GGUF_ALIGNMENT_KEY) {
            const n = value.value;
            if (value.type !== GgufType.UINT32 || typeof n !== "number" || n === 0 || (n & (n - 1)) !== 0) {
                throw new RangeError(
                    `Expected "${GGUF_ALIGNMENT_KEY}" to be a uint32 power of 2, got ${ggufTypeName(value.type)} ${String(n)}`,
                );
            }
        }
        this.metadata.set(key, value);
        return this;
    }

    getMetadata(key: string): GgufValue | undefined {
        return this.metadata.get(key);
    }

    deleteMetadata(key: string): boolean {
        return this.metadata.delete(key);
    }

    get metadataKeys(): string[] {
        return [...this.metadata.keys()];
    }

    get tensorCount(): number {
        return this.tensors.length;
    }

    /** Data alignment: `general.alignment` when set, else 32. */
    get alignment(): number {
        const v = this.metadata.get(GGUF_ALIGNMENT_KEY);
        return v === undefined ? GGUF_DEFAULT_ALIGNMENT : (v.value as number);
    }

    addTensor(spec: GgufTensorSpec): this {
        const { name, shape, type, data } = spec;
        if (typeof name !== "string" || name.length === 0) throw new TypeError("Expected a non-empty tensor name");
        const nameBytes = Buffer.byteLength(name, "utf8");
        if (nameBytes >= GGML_MAX_NAME) {
            throw new RangeError(
                `Tensor name "${name}" is ${nameBytes} bytes; ggml allows at most ${GGML_MAX_NAME - 1}`,
            );
        }
        if (this.tensorNames.has(name)) throw new Error(`Duplicate tensor name "${name}"`);
        if (!Array.isArray(shape) || shape.length < 1 || shape.length > GGML_MAX_DIMS) {
            throw new RangeError(`Expected the shape of "${name}" to have 1 to ${GGML_MAX_DIMS} dimensions`);
        }
        let elementCount = 1;
        for (const ne of shape) {
            if (!Number.isSafeInteger(ne) || ne < 1) {
                throw new RangeError(`Expected the dimensions of "${name}" to be positive integers, got [${shape}]`);
            }
            elementCount *= ne;
        }
        if (!Number.isSafeInteger(elementCount)) throw new RangeError(`Tensor "${name}" has too many elements`);
        const info = ggmlTypeInfo(type);
        if (info === undefined) throw new RangeError(`Unknown ggml type ${type} for tensor "${name}"`);
        if (shape[0]! % info.blockSize !== 0) {
            throw new RangeError(
                `Tensor "${name}": ne[0] = ${shape[0]} is not a multiple of the ${info.name} block size ${info.blockSize}`,
            );
        }
        const byteSize = (elementCount / info.blockSize) * info.typeSize;
        checkData(name, type, data, elementCount, byteSize);
        this.tensors.push({ name, nameBytes, shape: [...shape], type, data, elementCount, byteSize });
        this.tensorNames.add(name);
        return this;
    }

    /** Offsets and sizes the file will have, without writing it. */
    layout(): GgufLayout {
        const alignment = this.alignment;
        let headerSize = 4 + 4 + 8 + 8;
        for (const [key, value] of this.metadata) headerSize += stringSize(key) + 4 + valueSize(value);
        for (const t of this.tensors) headerSize += 8 + t.nameBytes + 4 + 8 * t.shape.length + 4 + 8;
        const dataOffset = padTo(headerSize, alignment);
        let offset = dataOffset;
        const tensors = this.tensors.map((t) => {
            const layout = {
                name: t.name,
                shape: t.shape,
                type: t.type,
                elementCount: t.elementCount,
                offset,
                byteSize: t.byteSize,
            };
            offset += padTo(t.byteSize, alignment);
            return layout;
        });
        return { alignment, headerSize, dataOffset, fileSize: offset, tensors };
    }

    /** Writes the file. Resolves with its layout once it is complete (and renamed into place). */
    async write(path: string, options: GgufWriteOptions = {}): Promise<GgufLayout> {
        rejectUnknownOptions(options, ["onProgress", "signal", "chunkElements", "atomic"], "write options");
        const chunkElements = options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
        if (!Number.isSafeInteger(chunkElements) || chunkElements < 1) {
            throw new RangeError(`Expected "chunkElements" to be a positive integer, got ${chunkElements}`);
        }
        const atomic = options.atomic ?? true;
        const layout = this.layout();
        const target = atomic ? `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp` : path;
        const signal = options.signal;
        signal?.throwIfAborted();
        const fh = await open(target, "w");
        let closed = false;
        try {
            const progress = new Progress(layout.fileSize, options.onProgress);
            await this.writeHeader(fh, layout, progress, signal);
            const chunks = new ChunkBuffers(chunkElements);
            for (let i = 0; i < this.tensors.length; i++) {
                signal?.throwIfAborted();
                const tensor = this.tensors[i]!;
                const place = layout.tensors[i]!;
                await this.writeTensor(fh, tensor, place.offset, chunks, progress, signal);
                const end = place.offset + tensor.byteSize;
                const padded = padTo(tensor.byteSize, layout.alignment) - tensor.byteSize;
                if (padded > 0) {
                    await writeFully(fh, new Uint8Array(padded), end);
                    progress.add(padded);
                }
            }
            await fh.close();
            closed = true;
            if (atomic) await rename(target, path);
            return layout;
        } catch (error) {
            if (!closed) await fh.close().catch(() => {});
            await unlink(target).catch(() => {});
            throw error;
        }
    }

    private async writeHeader(
        fh: FileHandle,
        layout: GgufLayout,
        progress: Progress,
        signal: AbortSignal | undefined,
    ): Promise<void> {
        const out = new ByteSink(HEADER_CHUNK_BYTES);
        let position = 0;
        const flush = async (force: boolean) => {
            if (!force && out.pendingBytes < HEADER_CHUNK_BYTES) return;
            for (const chunk of out.take()) {
                await writeFully(fh, chunk, position);
                position += chunk.length;
                progress.add(chunk.length);
            }
            signal?.throwIfAborted();
        };
        out.u32(GGUF_MAGIC);
        out.u32(GGUF_VERSION);
        out.u64(this.tensors.length);
        out.u64(this.metadata.size);
        for (const [key, value] of this.metadata) {
            out.string(key);
            out.u32(value.type);
            writeValue(out, value);
            await flush(false);
        }
        for (let i = 0; i < this.tensors.length; i++) {
            const t = this.tensors[i]!;
            out.string(t.name);
            out.u32(t.shape.length);
            for (const ne of t.shape) out.u64(ne);
            out.u32(t.type);
            // Offsets in the tensor directory are relative to the start of the data section.
            out.u64(layout.tensors[i]!.offset - layout.dataOffset);
            await flush(false);
        }
        out.zeros(layout.dataOffset - layout.headerSize);
        await flush(true);
        if (position !== layout.dataOffset) {
            throw new Error(`Internal error: wrote a ${position}-byte header, expected ${layout.dataOffset}`);
        }
    }

    private async writeTensor(
        fh: FileHandle,
        tensor: TensorEntry,
        offset: number,
        buffers: ChunkBuffers,
        progress: Progress,
        signal: AbortSignal | undefined,
    ): Promise<void> {
        const { data, type, elementCount } = tensor;
        if (data.kind === "bytes") {
            for (let pos = 0; pos < data.bytes.length; pos += BYTES_CHUNK) {
                signal?.throwIfAborted();
                const part = data.bytes.subarray(pos, pos + BYTES_CHUNK);
                await writeFully(fh, part, offset + pos);
                progress.add(part.length);
            }
            return;
        }
        const info = ggmlTypeInfo(type)!;
        const chunkElements = Math.ceil(buffers.elements / info.blockSize) * info.blockSize;
        const chunkBytes = (chunkElements / info.blockSize) * info.typeSize;
        const rng =
            data.kind === "normal" || data.kind === "uniform"
                ? new Xoshiro128(tensorSeed(this.seed, tensor.name))
                : undefined;
        // Two slots: one is encoded while the other's write is in flight.
        const pending: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
        let position = offset;
        let failure: unknown;
        try {
            for (let start = 0, k = 0; start < elementCount; start += chunkElements, k ^= 1) {
                signal?.throwIfAborted();
                await pending[k];
                const count = Math.min(chunkElements, elementCount - start);
                const slot = buffers.slot(k, chunkElements, chunkBytes);
                const floats = slot.floats.subarray(0, count);
                switch (data.kind) {
                    case "normal":
                        rng!.fillNormal(floats, data.mean, data.std);
                        break;
                    case "uniform":
                        rng!.fillUniform(floats, data.min, data.max);
                        break;
                    case "constant":
                        floats.fill(data.value);
                        break;
                    case "floats":
                        floats.set(data.values.subarray(start, start + count));
                        break;
                    case "function":
                        data.fill(floats, start);
                        break;
                }
                const length = (count / info.blockSize) * info.typeSize;
                const bytes = encodeFloats(type, floats, slot.bytes).subarray(0, length);
                const at = position;
                position += length;
                pending[k] = writeFully(fh, bytes, at).then(() => progress.add(length));
            }
        } catch (error) {
            failure = error;
        }
        // Settle both writes before the buffers are reused or the file is closed, even after a failure.
        const settled = await Promise.allSettled(pending);
        if (failure !== undefined) throw failure;
        for (const r of settled) if (r.status === "rejected") throw r.reason;
    }
}

const BYTES_CHUNK = 4 << 20;

/** The two reusable (floats, encoded bytes) buffer pairs of a write. */
class ChunkBuffers {
    private readonly slots: { floats: Float32Array; bytes: Uint8Array }[] = [];

    constructor(readonly elements: number) {}

    slot(k: number, elements: number, bytes: number): { floats: Float32Array; bytes: Uint8Array } {
        let s = this.slots[k];
        if (s === undefined || s.floats.length < elements || s.bytes.length < bytes) {
            s = {
                floats: new Float32Array(Math.max(elements, s?.floats.length ?? 0)),
                bytes: new Uint8Array(Math.max(bytes, s?.bytes.length ?? 0)),
            };
            this.slots[k] = s;
        }
        return s;
    }
}

class Progress {
    private written = 0;

    constructor(
        private readonly total: number,
        private readonly callback: ((bytesWritten: number, totalBytes: number) => void) | undefined,
    ) {}

    add(bytes: number): void {
        this.written += bytes;
        this.callback?.(this.written, this.total);
    }
}

async function writeFully(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
        if (bytesWritten <= 0) throw new Error(`Short write at offset ${position + done}`);
        done += bytesWritten;
    }
}

function checkData(name: string, type: GgmlType, data: TensorData, elementCount: number, byteSize: number): void {
    if (typeof data !== "object" || data === null) {
        throw new TypeError(`Expected "data" of tensor "${name}" to be a TensorData (normal(), constant(), ...)`);
    }
    if (data.kind === "bytes") {
        if (data.bytes.length !== byteSize) {
            throw new RangeError(
                `Tensor "${name}" needs ${byteSize} bytes of ${ggmlTypeName(type)}, got ${data.bytes.length}`,
            );
        }
        return;
    }
    if (!ENCODABLE_TYPES.has(type)) {
        throw new RangeError(
            `Cannot generate ${ggmlTypeName(type)} data for tensor "${name}": float data can be encoded as f32, f16, ` +
                "bf16, q8_0, q4_0 or q4_K; supply encoded bytes with fromBytes() for other types",
        );
    }
    if (data.kind === "floats" && data.values.length !== elementCount) {
        throw new RangeError(`Tensor "${name}" has ${elementCount} elements, got ${data.values.length} values`);
    }
    if (!["normal", "uniform", "constant", "floats", "function"].includes(data.kind)) {
        throw new TypeError(`Unknown tensor data kind "${String((data as { kind: unknown }).kind)}" for "${name}"`);
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Serialisation

/** Appends little-endian values to a list of buffers of `chunkSize` bytes (bigger when one value needs it). */
class ByteSink {
    private readonly done: Buffer[] = [];
    private doneBytes = 0;
    private buf: Buffer;
    private pos = 0;

    constructor(private readonly chunkSize: number) {
        this.buf = Buffer.allocUnsafe(chunkSize);
    }

    get pendingBytes(): number {
        return this.doneBytes + this.pos;
    }

    /** Hands over everything written so far. */
    take(): Buffer[] {
        const out = this.done.splice(0);
        if (this.pos > 0) out.push(this.buf.subarray(0, this.pos));
        this.doneBytes = 0;
        this.buf = Buffer.allocUnsafe(this.chunkSize);
        this.pos = 0;
        return out;
    }

    private reserve(n: number): void {
        if (this.pos + n <= this.buf.length) return;
        if (this.pos > 0) {
            this.done.push(this.buf.subarray(0, this.pos));
            this.doneBytes += this.pos;
        }
        this.buf = Buffer.allocUnsafe(Math.max(n, this.chunkSize));
        this.pos = 0;
    }

    u8(v: number): void {
        this.reserve(1);
        this.buf[this.pos++] = v;
    }

    u32(v: number): void {
        this.reserve(4);
        this.pos = this.buf.writeUInt32LE(v, this.pos);
    }

    /** A uint64 from a safe integer. */
    u64(v: number): void {
        this.reserve(8);
        this.pos = this.buf.writeUInt32LE(v % 2 ** 32, this.pos);
        this.pos = this.buf.writeUInt32LE(Math.floor(v / 2 ** 32), this.pos);
    }

    scalar(type: GgufType, v: number | bigint | boolean): void {
        switch (type) {
            case GgufType.UINT8:
                this.reserve(1);
                this.pos = this.buf.writeUInt8(v as number, this.pos);
                return;
            case GgufType.INT8:
                this.reserve(1);
                this.pos = this.buf.writeInt8(v as number, this.pos);
                return;
            case GgufType.UINT16:
                this.reserve(2);
                this.pos = this.buf.writeUInt16LE(v as number, this.pos);
                return;
            case GgufType.INT16:
                this.reserve(2);
                this.pos = this.buf.writeInt16LE(v as number, this.pos);
                return;
            case GgufType.UINT32:
                this.reserve(4);
                this.pos = this.buf.writeUInt32LE(v as number, this.pos);
                return;
            case GgufType.INT32:
                this.reserve(4);
                this.pos = this.buf.writeInt32LE(v as number, this.pos);
                return;
            case GgufType.FLOAT32:
                this.reserve(4);
                this.pos = this.buf.writeFloatLE(v as number, this.pos);
                return;
            case GgufType.FLOAT64:
                this.reserve(8);
                this.pos = this.buf.writeDoubleLE(v as number, this.pos);
                return;
            case GgufType.BOOL:
                this.reserve(1);
                this.buf[this.pos++] = v ? 1 : 0;
                return;
            case GgufType.UINT64:
                this.reserve(8);
                this.pos = this.buf.writeBigUInt64LE(v as bigint, this.pos);
                return;
            case GgufType.INT64:
                this.reserve(8);
                this.pos = this.buf.writeBigInt64LE(v as bigint, this.pos);
                return;
            default:
                throw new RangeError(`Not a scalar GGUF type: ${ggufTypeName(type)}`);
        }
    }

    /** uint64 byte length, then the UTF-8 bytes. */
    string(s: string): void {
        // At most 3 UTF-8 bytes per UTF-16 code unit: reserve that, write, then fill in the real length.
        this.reserve(8 + 3 * s.length);
        const start = this.pos;
        const length = this.buf.write(s, start + 8, "utf8");
        this.buf.writeUInt32LE(length, start);
        this.buf.writeUInt32LE(0, start + 4);
        this.pos = start + 8 + length;
    }

    bytes(src: Uint8Array): void {
        for (let done = 0; done < src.length; ) {
            if (this.pos === this.buf.length) this.reserve(this.chunkSize);
            const n = Math.min(src.length - done, this.buf.length - this.pos);
            this.buf.set(src.subarray(done, done + n), this.pos);
            this.pos += n;
            done += n;
        }
    }

    zeros(n: number): void {
        this.reserve(n);
        this.buf.fill(0, this.pos, this.pos + n);
        this.pos += n;
    }
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function writeValue(out: ByteSink, value: GgufValue): void {
    if (value.type === GgufType.STRING) out.string(value.value);
    else if (value.type === GgufType.ARRAY) writeArray(out, value.value);
    else out.scalar(value.type, value.value);
}

function writeArray(out: ByteSink, array: GgufArray): void {
    out.u32(array.elementType);
    out.u64(array.values.length);
    switch (array.elementType) {
        case GgufType.STRING:
            for (const s of array.values) out.string(s);
            return;
        case GgufType.BOOL:
            for (const b of array.values) out.u8(b ? 1 : 0);
            return;
        case GgufType.ARRAY:
            for (const a of array.values) writeArray(out, a);
            return;
        default: {
            const values = array.values;
            if (LITTLE_ENDIAN_HOST) {
                out.bytes(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
            } else {
                for (const v of values) out.scalar(array.elementType, v);
            }
        }
    }
}

function stringSize(s: string): number {
    return 8 + Buffer.byteLength(s, "utf8");
}

function valueSize(value: GgufValue): number {
    if (value.type === GgufType.STRING) return stringSize(value.value);
    if (value.type === GgufType.ARRAY) return arraySize(value.value);
    return ggufTypeSize(value.type);
}

function arraySize(array: GgufArray): number {
    let size = 4 + 8;
    switch (array.elementType) {
        case GgufType.STRING:
            for (const s of array.values) size += stringSize(s);
            return size;
        case GgufType.ARRAY:
            for (const a of array.values) size += arraySize(a);
            return size;
        default:
            return size + array.values.length * ggufTypeSize(array.elementType);
    }
}
