export { GgufFormatError, type GgufFormatErrorCode } from "./errors.js";
export { bf16ToF32, decodeFloats, ENCODABLE_TYPES, encodeFloats, f16ToF32, f32ToBf16, f32ToF16 } from "./quant.js";
export { inverseNormalCdf, normalTable, tensorSeed, Xoshiro128 } from "./random.js";
export {
    copyMetadata,
    type GgufFile,
    type GgufTensorInfo,
    getMetadata,
    type ReadGgufOptions,
    readGguf,
    readTensorBytes,
} from "./reader.js";
export * from "./types.js";
export {
    constant,
    fromBytes,
    fromFloats,
    fromFunction,
    type GgufLayout,
    type GgufTensorLayout,
    type GgufTensorSpec,
    type GgufWriteOptions,
    GgufWriter,
    type GgufWriterOptions,
    normal,
    type TensorData,
    type TensorFill,
    uniform,
} from "./writer.js";
