export {
    type CompletionRequest,
    type CompletionResult,
    type CompletionStream,
    Context,
    type ContextOptions,
    type KvCacheType,
    type StopReason,
    type StreamChunk,
    type Timings,
    type TokenProbability,
} from "./context.js";
export {
    type DocumentInfo,
    type DocumentPage,
    documentInfo,
    documentPages,
    type PageSelection,
    type PageSize,
    pageRenderSize,
    selectPages,
} from "./documents/pages.js";
export { MAX_DOCUMENT_PAGES, MAX_PAGE_POINTS } from "./documents/pdf.js";
export { LlamaVlmError, type LlamaVlmErrorCode } from "./errors.js";
export type { ImageBudget, ImageInput, RawImage } from "./images.js";
export {
    type LoadModelOptions,
    loadModel,
    Model,
    type ModelInfo,
    type ProjectorOptions,
} from "./model.js";
export type { Placement } from "./placement.js";
export type { ChatMessage, ContentPart, Role } from "./request/messages.js";
export { DEFAULT_SAMPLER_ORDER, SAMPLER_NAMES, type SamplerName, type SamplingOptions } from "./sampling.js";
export { StopMatcher } from "./stop.js";
export {
    type Device,
    defaultLogger,
    devices,
    type Logger,
    type LogLevel,
    physicalCores,
    setLogger,
    systemInfo,
    type VersionInfo,
    version,
} from "./system.js";
