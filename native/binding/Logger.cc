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

LogSink::~LogSink() {
    RemoveLogListener(this);
    std::lock_guard<std::mutex> lock(mutex_);
    if (active_) tsfn_.Abort();
}

void LogSink::Set(Napi::Function fn, int minLevel) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (active_) tsfn_.Release();
    tsfn_ = Napi::ThreadSafeFunction::New(fn.Env(), fn, "llama-vlm-log", 0, 1);
    tsfn_.Unref(fn.Env());
    active_ = true;
    minLevel_.store(minLevel, std::memory_order_relaxed);
}

void LogSink::Clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (active_) tsfn_.Release();
    active_ = false;
    minLevel_.store(100, std::memory_order_relaxed);
}

void LogSink::OnLine(int level, const std::string &line) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!active_) return;
    auto *payload = new LogLine{level, line};
    napi_status status = tsfn_.NonBlockingCall(payload, [](Napi::Env env, Napi::Function fn, LogLine *data) {
        std::unique_ptr<LogLine> owned(data);
        if (env == nullptr || fn == nullptr) return;
        SafeJs js(env);
        js.Call(fn, {js.Number(owned->level), js.String(owned->text)});
    });
    if (status != napi_ok) delete payload;
}

}  // namespace llama_vlm
