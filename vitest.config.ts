import { defineConfig } from "vitest/config";

// Native tests share one llama.cpp per process, as a real application does: a single forked worker.
export default defineConfig({
    test: {
        include: ["test/**/*.test.ts"],
        pool: "forks",
        maxWorkers: 1,
        isolate: false,
        testTimeout: 120_000,
        hookTimeout: 600_000,
        reporters: ["default"],
    },
});
