/** `context.stream()`: a request's chunks as an async iterator, its whole result as `.result`. */
import type { CompletionResult, StreamChunk } from "./results.js";

/** A stream of chunks whose texts concatenate to the final text; `result` resolves with the whole result. */
export type CompletionStream = AsyncIterableIterator<StreamChunk> & { result: Promise<CompletionResult> };

/** Lets a stream's consumer stop its request: before submission (closed) or after (cancel). */
export interface StreamControl {
    closed: boolean;
    cancel?: () => void;
}

/** Runs a request with a chunk callback and hands its chunks out as an async iterator. */
export function streamFrom(
    run: (onChunk: (chunk: StreamChunk) => void, control: StreamControl) => Promise<CompletionResult>,
): CompletionStream {
    const queue: StreamChunk[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: unknown;
    const control: StreamControl = { closed: false };
    const result = run((chunk) => {
        queue.push(chunk);
        wake?.();
    }, control).then(
        (r) => {
            finished = true;
            wake?.();
            return r;
        },
        (err) => {
            finished = true;
            failure = err;
            wake?.();
            throw err;
        },
    );
    result.catch(() => {}); // surfaced through the iterator; `result` rejects for those who await it
    const iterator: CompletionStream = {
        result,
        async next(): Promise<IteratorResult<StreamChunk>> {
            while (queue.length === 0 && !finished) {
                await new Promise<void>((r) => {
                    wake = r;
                });
                wake = undefined;
            }
            if (queue.length > 0) return { value: queue.shift()!, done: false };
            if (failure !== undefined) throw failure;
            return { value: undefined, done: true };
        },
        async return(): Promise<IteratorResult<StreamChunk>> {
            // The consumer stopped reading (break, return): stop generating too.
            control.closed = true;
            control.cancel?.();
            finished = true;
            return { value: undefined, done: true };
        },
        [Symbol.asyncIterator]() {
            return iterator;
        },
    };
    return iterator;
}
