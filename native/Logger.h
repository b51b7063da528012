// Routes llama.cpp, ggml and mtmd log lines to a JS callback, per JS environment (main thread and
// each worker_thread that loads the addon has its own sink). Nothing is printed by native code.
//
// Thread: the router is process-wide and called by llama.cpp from any thread; a sink's Set/Clear are
// JS-thread only. Lines reach JS asynchronously through a ThreadSafeFunction that never keeps the
// event loop alive.
#pragma once

#include <napi.h>

#include <atomic>
#include <string>

namespace llama_vlm {

class LogSink {
  public:
    explicit LogSink(Napi::Env env);
    ~LogSink();
    LogSink(const LogSink &) = delete;
    LogSink &operator=(const LogSink &) = delete;

    // [sync, JS thread] fn(level: number, line: string); lines below minLevel (ggml_log_level) are dropped.
    void Set(Napi::Function fn, int minLevel);
    // [sync, JS thread] stops forwarding; later lines are dropped.
    void Clear();

    // [any thread] called by the router with one complete line.
    void Emit(int level, const char *line, size_t length);
    int minLevel() const { return minLevel_.load(std::memory_order_relaxed); }

  private:
    Napi::ThreadSafeFunction tsfn_;
    bool active_ = false;
    std::atomic<int> minLevel_{100};
};

// [sync, any thread] the last error-level line llama.cpp logged on the calling thread since the previous
// call (empty if none), so a failed call can say why. Clears it.
std::string TakeLastError();

// [sync, any thread] installs the process-wide router into llama.cpp, ggml and mtmd (idempotent).
void InstallLogRouter();

}  // namespace llama_vlm
