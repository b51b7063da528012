#include "Logger.h"

#include <memory>

#include "SafeJs.h"

namespace llama_vlm {
namespace {

struct LogLine {
    int level;
    std::string text;
};

}  // namespace

LogSink::LogSink() {
    AddLogListener(this);
}

// Runs when the JS environment is torn down (the sink is the Addon's instance data). Node closes the environment's
// thread-safe functions itself then; releasing ours here too would touch one Node 24 has already freed (its
// teardown closes them before it finalizes instance data: the release hung on the freed function's mutex).
LogSink::~LogSink() {
    RemoveLogListener(this);
}

void LogSink::Set(Napi::Function fn, int minLevel) {
    State &s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.active) s.tsfn.Release();
    uint64_t generation = ++s.generation;
    std::weak_ptr<State> weak = state_;
    s.tsfn = Napi::ThreadSafeFunction::New(fn.Env(), fn, "llama-vlm-log", 0, 1, [weak, generation](Napi::Env) {
        // Closed (released, or by the environment's teardown): it must not be called again.
        if (auto state = weak.lock()) {
            std::lock_guard<std::mutex> lock(state->mutex);
            if (state->generation == generation) state->active = false;
        }
    });
    s.tsfn.Unref(fn.Env());
    s.active = true;
    minLevel_.store(minLevel, std::memory_order_relaxed);
}

void LogSink::Clear() {
    State &s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.active) s.tsfn.Release();
    s.active = false;
    minLevel_.store(100, std::memory_order_relaxed);
}

void LogSink::OnLine(int level, const std::string &line) {
    State &s = *state_;
    std::lock_guard<std::mutex> lock(s.mutex);
    if (!s.active) return;
    auto *payload = new LogLine{level, line};
    napi_status status = s.tsfn.NonBlockingCall(payload, [](Napi::Env env, Napi::Function fn, LogLine *data) {
        std::unique_ptr<LogLine> owned(data);
        if (env == nullptr || fn == nullptr) return;
        SafeJs js(env);
        js.Call(fn, {js.Number(owned->level), js.String(owned->text)});
    });
    if (status != napi_ok) delete payload;
}

}  // namespace llama_vlm
