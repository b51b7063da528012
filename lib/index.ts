export { LlamaVlmError, type LlamaVlmErrorCode } from "./errors.js";
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
