/**
 * One image through one extraction request, and the result line it becomes: what `llama-vlm extract` does per image
 * and what a queue worker does per job, so that both write the same JSONL lines. The settings are plain data (they
 * travel in queue jobs and are hashed into job ids).
 */
import {
    CLINICAL_PROMPT,
    CLINICAL_SCHEMA,
    DEFAULT_EXTRACT_PROMPT,
    fieldConfidence,
    validateClinical,
} from "./clinical.js";
import type { CompletionRequest, CompletionResult, Context } from "./context.js";
import { LlamaVlmError } from "./errors.js";
import type { ImageBudget, ImageInput } from "./images.js";
import type { Model } from "./model.js";
import { loadNative } from "./native.js";
import { checkFastForward, resolveSampling, type SamplingOptions } from "./sampling.js";
import { checkNumber, checkString, invalid } from "./validate.js";

/** One result line of `extract --out` (and of `queue results`): an image's output or its error. */
export interface ExtractLine {
    /** The image: its absolute path (or, for queue jobs, the URL or name it was submitted under). */
    file: string;
    sha256: string;
    /** Documents: the page (1-based); with --pages-per-request, the first page of the request. */
    page?: number;
    /** Documents: how many pages the document has. */
    pages?: number;
    /** With --pages-per-request > 1: every page the request had. */
    requestPages?: number[];
    /** A merged per-document record (--merge-pages): the pages whose records it merges. */
    mergedPages?: number[];
    /** Pages left out of a merged record because their line is an error. */
    failedPages?: number[];
    /** Each image as the encoder got it: a PDF page's rendered size and dpi. */
    images?: CompletionResult["images"];
    text?: string;
    /** With the clinical preset: the output parsed. */
    json?: unknown;
    /** With the clinical preset and nProbs > 0: the confidence of each field. */
    confidence?: Record<string, number>;
    stopReason?: string;
    timings?: CompletionResult["timings"];
    error?: { code: string; message: string };
    /** Queue results only: the job that produced the line (its content-hash id). */
    job?: string;
}

/** What is asked of every image: plain data, the same for `extract` and for queue jobs. */
export interface ExtractSettings {
    /** The instruction after the image. */
    prompt: string;
    /** "clinical": `sampling.jsonSchema` is the clinical schema and outputs are parsed and validated. */
    preset?: "clinical";
    /** Chat template: the model's own when absent. */
    chatTemplate?: string;
    /** Most tokens per image; -1 = until the context is full. */
    maxTokens: number;
    stop: string[];
    nProbs: number;
    /** Grammar fast-forward (CompletionRequest `fastForward`): on by default with the clinical preset. */
    fastForward: boolean;
    sampling: SamplingOptions;
}

/** The settings with their defaults: the default prompt, or the clinical preset's prompt and schema. */
export function extractSettings(given: Partial<ExtractSettings> = {}): ExtractSettings {
    const clinical = given.preset === "clinical";
    const sampling: SamplingOptions = { ...(given.sampling ?? {}) };
    if (given.preset !== undefined && !clinical) throw invalid("preset", '"clinical"', given.preset);
    if (clinical) {
        if (sampling.grammar !== undefined || sampling.jsonSchema !== undefined)
            throw new LlamaVlmError("INVALID_OPTION", "--preset clinical sets its own JSON schema");
        sampling.jsonSchema = CLINICAL_SCHEMA;
    }
    return {
        prompt: given.prompt ?? (clinical ? CLINICAL_PROMPT : DEFAULT_EXTRACT_PROMPT),
        ...(clinical ? { preset: "clinical" as const } : {}),
        ...(given.chatTemplate !== undefined ? { chatTemplate: given.chatTemplate } : {}),
        maxTokens: given.maxTokens ?? -1,
        stop: [...(given.stop ?? [])],
        nProbs: given.nProbs ?? 0,
        fastForward: given.fastForward ?? clinical,
        sampling,
    };
}

/**
 * Checks settings without a model, as far as that is possible (everything but what depends on the vocabulary): a
 * producer finds a bad option before it queues thousands of jobs that would all fail.
 */
export function checkExtractSettings(settings: ExtractSettings): void {
    checkString("prompt", settings.prompt);
    if (settings.chatTemplate !== undefined) checkString("chatTemplate", settings.chatTemplate, { nonEmpty: true });
    checkNumber("maxTokens", settings.maxTokens, { integer: true, min: -1 });
    checkNumber("nProbs", settings.nProbs, { integer: true, min: 0, max: 1000 });
    if (!Array.isArray(settings.stop)) throw invalid("stop", "an array of strings", settings.stop);
    for (const [i, s] of settings.stop.entries()) checkString(`stop[${i}]`, s, { nonEmpty: true });
    const native = loadNative();
    const resolved = resolveSampling(settings.sampling, {
        contextSize: 4096,
        schemaToGrammar: (schema) => native.jsonSchemaToGrammar(schema),
    });
    checkFastForward(settings.fastForward, resolved);
}

/** The completion request for one image (or several: a document's pages in one prompt), then the prompt. */
export function extractionRequest(
    settings: ExtractSettings,
    image: ImageInput | readonly ImageInput[],
    signal?: AbortSignal,
    imageBudget?: ImageBudget,
): CompletionRequest {
    const images = Array.isArray(image) ? (image as readonly ImageInput[]) : [image as ImageInput];
    return {
        messages: [{ role: "user", content: [...images.map((i) => ({ image: i })), settings.prompt] }],
        ...(imageBudget ? { imageBudget } : {}),
        ...(settings.chatTemplate ? { chatTemplate: settings.chatTemplate } : {}),
        ...settings.sampling,
        maxTokens: settings.maxTokens,
        stop: settings.stop,
        nProbs: settings.nProbs,
        fastForward: settings.fastForward,
        ...(signal ? { signal } : {}),
    };
}

/** What an image gives: the line without `file` and `sha256`, and the number of tokens generated. */
export interface Extracted {
    line: Omit<ExtractLine, "file" | "sha256">;
    tokens: number;
}

/**
 * Runs one image. Resolves with its line (an output that breaks the clinical schema is a line with `text` and an
 * `INVALID_OUTPUT` error), or undefined when `signal` aborted it; rejects with the request's LlamaVlmError.
 * `onToken` follows generation (the number of tokens so far).
 */
export async function extractImage(
    context: Context,
    model: Pick<Model, "detokenize">,
    image: ImageInput | readonly ImageInput[],
    settings: ExtractSettings,
    options: { signal?: AbortSignal; onToken?: (tokens: number) => void; imageBudget?: ImageBudget } = {},
): Promise<Extracted | undefined> {
    const request = extractionRequest(settings, image, options.signal, options.imageBudget);
    let r: CompletionResult;
    if (options.onToken) {
        const stream = context.stream(request);
        let n = 0;
        for await (const _ of stream) options.onToken(++n);
        r = await stream.result;
    } else {
        r = await context.complete(request);
    }
    if (r.stopReason === "abort") return undefined;
    // A document page's rendered size goes in the line (an image file's size is the file's own).
    const pages = (Array.isArray(image) ? image : [image]).some((i) => typeof i === "object" && "document" in i);
    const line: Extracted["line"] = {
        ...(pages && r.images ? { images: r.images } : {}),
        text: r.text,
        stopReason: r.stopReason,
        timings: r.timings,
    };
    if (settings.preset === "clinical") {
        try {
            line.json = JSON.parse(r.text);
            const problems = validateClinical(line.json);
            if (problems.length > 0) line.error = { code: "INVALID_OUTPUT", message: problems.join("; ") };
            else if (settings.nProbs > 0 && r.probs) {
                line.confidence = fieldConfidence(
                    r.text,
                    r.tokens.map((t) => model.detokenize([t])),
                    r.probs,
                    r.tokens,
                );
            }
        } catch (err) {
            line.error = { code: "INVALID_OUTPUT", message: `the output is not JSON: ${(err as Error).message}` };
        }
    }
    return { line, tokens: r.tokens.length };
}
