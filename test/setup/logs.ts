/**
 * Runs before each test file. Synthetic models make llama.cpp warn on every load ("control-looking token … probably
 * a bug in the model", "Qwen-VL models require at minimum 1024 image tokens…"): true of those models and of no
 * interest to a test run, so the suite's logger shows errors only. LLAMA_VLM_TEST_VERBOSE=1 shows warnings too.
 * A file that installs its own logger puts this one back with `restoreTestLogger()` (each file starts with it).
 */

import { defaultLogger, type LogLevel, setLogger } from "../../lib/index.js";

export const TEST_LOG_LEVEL: LogLevel = process.env.LLAMA_VLM_TEST_VERBOSE === "1" ? "warn" : "error";

export function restoreTestLogger(): void {
    setLogger(defaultLogger, TEST_LOG_LEVEL);
}

restoreTestLogger();
