#include "Logger.h"

#include "SafeJs.h"

#include <ggml.h>
#include <llama.h>
#include <log.h>  // llama.cpp common's logger
#include <mtmd-helper.h>
#include <mtmd.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace llama_vlm {
namespace {

struct Router {
    std::mutex mutex;
    std::vector<LogSink *> sinks;
};

Router &router() {
    static Router *instance = new Router();  // never destroyed: llama.cpp may log during process exit
    return *instance;
}

struct PendingLine {
    int level = GGML_LOG_LEVEL_NONE;
    std::string text;
};

thread_local std::string lastError;

void Dispatch(int level, const std::string &line) {
    // The first error since the last TakeLastError names the cause ("unknown model architecture"); the ones
    // after it only say that the operation failed.
    if (level >= GGML_LOG_LEVEL_ERROR && lastError.empty()) lastError = line;
    Router &r = router();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (LogSink *sink : r.sinks) {
        if (level >= sink->minLevel()) sink->Emit(level, line.data(), line.size());
    }
}

// ggml sends a line in pieces (GGML_LOG_LEVEL_CONT continues the previous one); JS gets whole lines.
void OnLog(ggml_log_level level, const char *text, void * /*user_data*/) {
    thread_local PendingLine pending;
    if (text == nullptr) return;
    if (level != GGML_LOG_LEVEL_CONT) {
        if (!pending.text.empty()) Dispatch(pending.level, pending.text);
        pending.text.clear();
        pending.level = level;
    }
    pending.text.append(text);
    size_t newline;
    while ((newline = pending.text.find('\n')) != std::string::npos) {
        std::string line = pending.text.substr(0, newline);
        pending.text.erase(0, newline + 1);
        if (!line.empty()) Dispatch(pending.level, line);
    }
}

struct LogLine {
    int level;
    std::string text;
};

}  // namespace

LogSink::LogSink(Napi::Env /*env*/) {
    Router &r = router();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.sinks.push_back(this);
}

LogSink::~LogSink() {
    {
        Router &r = router();
        std::lock_guard<std::mutex> lock(r.mutex);
        r.sinks.erase(std::remove(r.sinks.begin(), r.sinks.end(), this), r.sinks.end());
    }
    if (active_) tsfn_.Abort();
}

void LogSink::Set(Napi::Function fn, int minLevel) {
    Router &r = router();
    std::lock_guard<std::mutex> lock(r.mutex);
    if (active_) tsfn_.Release();
    tsfn_ = Napi::ThreadSafeFunction::New(fn.Env(), fn, "llama-vlm-log", 0, 1);
    tsfn_.Unref(fn.Env());
    active_ = true;
    minLevel_.store(minLevel, std::memory_order_relaxed);
}

void LogSink::Clear() {
    Router &r = router();
    std::lock_guard<std::mutex> lock(r.mutex);
    if (active_) tsfn_.Release();
    active_ = false;
    minLevel_.store(100, std::memory_order_relaxed);
}

// Called with the router's mutex held, so Set/Clear cannot swap tsfn_ underneath.
void LogSink::Emit(int level, const char *line, size_t length) {
    if (!active_) return;
    auto *payload = new LogLine{level, std::string(line, length)};
    napi_status status = tsfn_.NonBlockingCall(payload, [](Napi::Env env, Napi::Function fn, LogLine *data) {
        std::unique_ptr<LogLine> owned(data);
        if (env == nullptr || fn == nullptr) return;
        SafeJs js(env);
        js.Call(fn, {js.Number(owned->level), js.String(owned->text)});
    });
    if (status != napi_ok) delete payload;
}

std::string TakeLastError() {
    std::string error;
    error.swap(lastError);
    return error;
}

void InstallLogRouter() {
    static std::once_flag once;
    std::call_once(once, [] {
        llama_log_set(OnLog, nullptr);
        ggml_log_set(OnLog, nullptr);
        mtmd_helper_log_set(OnLog, nullptr);      // also sets mtmd_log_set
        common_log_set_callback(OnLog, nullptr);  // patches/llama.cpp/0004
    });
}

}  // namespace llama_vlm
