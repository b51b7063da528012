// Routes llama.cpp, ggml and mtmd log lines to listeners (native/binding/Logger.h delivers them to JS, one listener
// per JS environment), and remembers the last error line per thread so that a failed call can say why. Native code
// prints nothing.
//
// Thread: the router is process-wide; llama.cpp calls it from any thread. Listeners are added and removed from any
// thread.
#pragma once

#include <string>

namespace llama_vlm {

class LogListener {
  public:
    virtual ~LogListener() = default;
    // [any thread, under the router's lock: keep it short] one complete line at or above minLevel().
    virtual void OnLine(int level, const std::string &line) = 0;
    // ggml_log_level below which lines are not passed on.
    virtual int minLevel() const = 0;
};

// [sync, any thread] the listener must stay alive until it is removed; once RemoveLogListener returns, it is not
// called again.
void AddLogListener(LogListener *listener);
void RemoveLogListener(LogListener *listener);

// [sync, any thread] the last error-level line llama.cpp logged on the calling thread since the previous call
// (empty if none). Clears it.
std::string TakeLastError();

// [sync, any thread] one line of the engine's own, to the same listeners as llama.cpp's (level: ggml_log_level).
void LogEngineLine(int level, const std::string &line);

// [sync, any thread] installs the process-wide router into llama.cpp, ggml and mtmd (idempotent).
void InstallLogRouter();

}  // namespace llama_vlm
