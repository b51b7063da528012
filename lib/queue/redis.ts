/** Redis connections for the queue's producers and workers (ioredis is loaded on first use, not with the package). */
import type { Redis, RedisOptions } from "ioredis";
import { LlamaVlmError } from "../errors.js";

/** A Redis server: a `redis://` / `rediss://` URL, or ioredis connection options. */
export type RedisRef = string | RedisOptions;

/** Default job queue name. */
export const DEFAULT_QUEUE = "llama-vlm";

/**
 * A connection as BullMQ needs it: commands wait (without a retry limit) while the server is away and are sent when
 * ioredis has reconnected, so a Redis restart delays a worker instead of failing its jobs. Reconnection backs off to
 * one attempt every 2 s.
 */
export async function connectRedis(ref: RedisRef, name?: string): Promise<Redis> {
    const options: RedisOptions = {
        maxRetriesPerRequest: null,
        retryStrategy: (times) => Math.min(100 * times, 2000),
        ...(name ? { connectionName: name } : {}),
    };
    if (typeof ref === "string") {
        if (!/^rediss?:\/\//.test(ref)) {
            throw new LlamaVlmError(
                "INVALID_OPTION",
                `Expected "redis" to be a redis:// or rediss:// URL, got ${JSON.stringify(ref)}`,
            );
        }
        const { Redis } = await import("ioredis");
        return new Redis(ref, options);
    }
    if (ref === null || typeof ref !== "object") {
        throw new LlamaVlmError(
            "INVALID_OPTION",
            `Expected "redis" to be a URL or connection options, got ${String(ref)}`,
        );
    }
    const { Redis } = await import("ioredis");
    return new Redis({ ...options, ...ref });
}

/** Waits until the connection is ready, failing with a message a person can act on when nothing answers. */
export async function waitReady(redis: Redis, what: string, timeoutMs = 10_000): Promise<void> {
    if (redis.status === "ready") return;
    await new Promise<void>((resolve, reject) => {
        let lastError: Error | undefined;
        const onError = (err: Error) => {
            lastError = err;
        };
        const timer = setTimeout(() => {
            cleanup();
            reject(
                new LlamaVlmError(
                    "INVALID_OPTION",
                    `Could not reach Redis at ${what} within ${timeoutMs / 1000} s${lastError ? ` (${lastError.message})` : ""}: is redis-server running there?`,
                ),
            );
        }, timeoutMs);
        const onReady = () => {
            cleanup();
            resolve();
        };
        const cleanup = () => {
            clearTimeout(timer);
            redis.off("ready", onReady);
            redis.off("error", onError);
        };
        redis.on("ready", onReady);
        redis.on("error", onError);
    });
}

/** Where a RedisRef points, for messages (without a password). */
export function describeRedis(ref: RedisRef): string {
    if (typeof ref === "string") return ref.replace(/\/\/[^@/]*@/, "//");
    return `${ref.host ?? "127.0.0.1"}:${ref.port ?? 6379}`;
}
