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
export { type ExtractLine, type ExtractSettings, extractSettings } from "./extraction.js";
export type { ImageBudget, ImageInput, RawImage } from "./images.js";
export {
    type LoadModelOptions,
    loadModel,
    Model,
    type ModelInfo,
    type ProjectorOptions,
} from "./model.js";
export type { CachedModel } from "./models/cache.js";
export { type ModelRef, parseModelRef } from "./models/ref.js";
export {
    DEFAULT_QUANTS,
    type DownloadProgress,
    listCachedModels,
    planModel,
    type ResolvedFile,
    type ResolvedModel,
    type ResolveOptions,
    removeCachedModel,
    resolveModel,
} from "./models/resolve.js";
export type { Placement } from "./placement.js";
export { INLINE_LIMIT, type JobData } from "./queue/jobs.js";
export {
    jobResults,
    type QueueOptions,
    type QueueStatus,
    queueStatus,
    type SubmitImage,
    type SubmitOptions,
    type SubmitResult,
    submitJobs,
} from "./queue/producer.js";
export type { RedisRef } from "./queue/redis.js";
export {
    type CreateWorkerOptions,
    createWorker,
    type QueueWorker,
    type WorkerEvent,
    type WorkerStats,
} from "./queue/worker.js";
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
