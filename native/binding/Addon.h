// Module entry: one Addon per JS environment (main thread or worker_thread), holding that
// environment's state as instance data — no global JS handles.
//
// native/binding/ is the Node-API side of the addon: the JS classes, the payload readers and the delivery of events,
// log lines and errors to JS. The generation engine and llama.cpp's objects live in native/engine/, which never sees
// Node-API (CMakeLists.txt compiles it without its headers).
#pragma once

#include <napi.h>

#include <memory>

#include "Logger.h"

namespace llama_vlm {

class Addon : public Napi::Addon<Addon> {
  public:
    Addon(Napi::Env env, Napi::Object exports);

  private:
    // systemInfo(): string
    Napi::Value SystemInfo(const Napi::CallbackInfo &info);
    // devices(): NativeDevice[]
    Napi::Value Devices(const Napi::CallbackInfo &info);
    // version(): NativeVersion
    Napi::Value Version(const Napi::CallbackInfo &info);
    // setLogger(fn: ((level: number, line: string) => void) | null, minLevel: number): void
    Napi::Value SetLogger(const Napi::CallbackInfo &info);
    // _testLog(level: number, text: string): void — feeds text through the callback llama.cpp logs to (tests)
    Napi::Value TestLog(const Napi::CallbackInfo &info);
    // physicalCores(): number
    Napi::Value PhysicalCores(const Napi::CallbackInfo &info);

    std::unique_ptr<LogSink> logSink_;
};

}  // namespace llama_vlm
