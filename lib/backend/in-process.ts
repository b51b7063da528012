/**
 * The in-process backend: the model, its projector and the engine threads live in this process, in the addon. The
 * engine process of an isolated model (child.ts) runs this same backend, so loading exists once.
 * @internal
 */

import { fromNative, LlamaVlmError } from "../errors.js";
import { loadNative } from "../native.js";
import type {
    Backend,
    EngineContext,
    LoadedModel,
    LoadSpec,
    NativeContextParams,
    NativeEvent,
    NativeModel,
    NativeModelInfo,
    NativeProjector,
    ProjectorInfo,
} from "./types.js";

export const inProcessBackend: Backend = {
    async load(spec: LoadSpec, onProgress?: (progress: number) => void, signal?: AbortSignal): Promise<LoadedModel> {
        if (signal?.aborted) throw loadAborted();
        const native = loadNative();
        const model = new native.Model();
        const onAbort = () => model.abortLoad();
        signal?.addEventListener("abort", onAbort, { once: true });
        try {
            await model.load(spec.model, spec.modelParams, onProgress ?? null);
        } catch (err) {
            throw fromNative(err);
        } finally {
            signal?.removeEventListener("abort", onAbort);
        }
        let projector: NativeProjector | null = null;
        if (spec.projector !== undefined) {
            if (signal?.aborted) {
                model.dispose();
                throw loadAborted();
            }
            projector = new native.Projector();
            try {
                await projector.load(model, spec.projector, spec.projectorParams);
            } catch (err) {
                model.dispose();
                throw fromNative(err);
            }
        }
        return new InProcessModel(model, projector);
    },
};

/** The rejection of a load cancelled through its AbortSignal (both backends). */
export function loadAborted(): LlamaVlmError {
    return new LlamaVlmError("ABORTED", "Model loading was aborted");
}

class InProcessModel implements LoadedModel {
    readonly info: NativeModelInfo;
    readonly projector: ProjectorInfo | null;

    constructor(
        readonly vocab: NativeModel,
        private readonly nativeProjector: NativeProjector | null,
    ) {
        this.info = vocab.info();
        this.projector = nativeProjector?.info() ?? null;
    }

    async createContext(
        params: NativeContextParams,
        onEvents: (events: NativeEvent[]) => void,
    ): Promise<EngineContext> {
        const context = new (loadNative().Context)();
        try {
            await context.init(this.vocab, this.nativeProjector, params, onEvents);
        } catch (err) {
            await context.dispose();
            throw fromNative(err);
        }
        return context;
    }

    dispose(): void {
        this.nativeProjector?.dispose();
        this.vocab.dispose();
    }
}
