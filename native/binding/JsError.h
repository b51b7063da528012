// The one conversion of native errors into JS errors: an Error with a stable `code` (lib/errors.ts turns it into a
// LlamaVlmError). Thread: JS thread only. Code that runs from the event loop builds errors with SafeJs::Error.
#pragma once

#include <napi.h>

#include <string>

#include "engine/Errors.h"

namespace llama_vlm {

inline Napi::Error ToJsError(Napi::Env env, ErrorCode code, const std::string &message) {
    Napi::Error error = Napi::Error::New(env, message);
    error.Set("code", Napi::String::New(env, ErrorCodeName(code)));
    return error;
}

inline Napi::Error ToJsError(Napi::Env env, const VlmError &error) {
    return ToJsError(env, error.code(), error.what());
}

}  // namespace llama_vlm
