import { defineConfig } from "vitest/config";

// Native tests share one llama.cpp per process, as a real application does: a single forked worker.
export default defineConfig({
    test: {
        include: ["test/**/*.test.ts"],
        pool: "forks",
        maxWorkers: 1,
        isolate: false,
        // The leak checks collect garbage before they read RSS.
        execArgv: ["--expose-gc"],
        // dist/ and llama.cpp's reference tools, built once before any test and outside every timeout.
        globalSetup: ["test/setup/global.ts"],
        setupFiles: ["test/setup/logs.ts"],
        testTimeout: 120_000,
        hookTimeout: 600_000,
        reporters: ["default"],
    },
});
