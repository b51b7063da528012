// Delivers llama.cpp's log lines (routed by native/engine/Log.h) to a JS callback, per JS environment: the main
// thread and each worker_thread that loads the addon has its own sink.
//
// Thread: Set/Clear are JS-thread only; OnLine is called by the router from any thread. Lines reach JS
// asynchronously through a ThreadSafeFunction that never keeps the event loop alive.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "engine/Log.h"

namespace llama_vlm {

class LogSink : public LogListener {
  public:
    LogSink();
    ~LogSink() override;
    LogSink(const LogSink &) = delete;
    LogSink &operator=(const LogSink &) = delete;

    // [sync, JS thread] fn(level: number, line: string); lines below minLevel (ggml_log_level) are dropped.
    void Set(Napi::Function fn, int minLevel);
    // [sync, JS thread] stops forwarding; later lines are dropped.
    void Clear();

    void OnLine(int level, const std::string &line) override;
    int minLevel() const override { return minLevel_.load(std::memory_order_relaxed); }

  private:
    // Shared with each ThreadSafeFunction's finalizer, which may run after this sink is gone (or before: Node 24
    // closes an environment's thread-safe functions before it finalizes its instance data).
    struct State {
        std::mutex mutex;  // Set/Clear swap tsfn while the router may be delivering a line
        Napi::ThreadSafeFunction tsfn;
        bool active = false;
        uint64_t generation = 0;  // which tsfn is current: a finalizer clears `active` only for its own
    };
    std::shared_ptr<State> state_ = std::make_shared<State>();
    std::atomic<int> minLevel_{100};
};

}  // namespace llama_vlm
