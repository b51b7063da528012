#include "Log.h"

#include <ggml.h>
#include <llama.h>
#include <log.h>  // llama.cpp common's logger
#include <mtmd-helper.h>
#include <mtmd.h>

#include <algorithm>
#include <mutex>
#include <vector>

namespace llama_vlm {
namespace {

struct Router {
    std::mutex mutex;
    std::vector<LogListener *> listeners;
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
    for (LogListener *listener : r.listeners) {
        if (level >= listener->minLevel()) listener->OnLine(level, line);
    }
}

// ggml sends a line in pieces (GGML_LOG_LEVEL_CONT continues the previous one); listeners get whole lines.
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

}  // namespace

void AddLogListener(LogListener *listener) {
    Router &r = router();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.listeners.push_back(listener);
}

void RemoveLogListener(LogListener *listener) {
    Router &r = router();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.listeners.erase(std::remove(r.listeners.begin(), r.listeners.end(), listener), r.listeners.end());
}

void LogEngineLine(int level, const std::string &line) {
    Dispatch(level, line);
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
