// Native errors carry a stable code; lib/errors.ts turns them into LlamaVlmError.
// Thread: any. Throw VlmError inside native code; convert once at the JS boundary with ToJsError.
#pragma once

#include <napi.h>

#include <stdexcept>
#include <string>

namespace llama_vlm {

class VlmError : public std::runtime_error {
  public:
    VlmError(std::string code, const std::string &message) : std::runtime_error(message), code_(std::move(code)) {}
    const std::string &code() const { return code_; }

  private:
    std::string code_;
};

// Builds a JS Error with a `code` property (JS thread only).
inline Napi::Error ToJsError(Napi::Env env, const std::string &code, const std::string &message) {
    Napi::Error error = Napi::Error::New(env, message);
    error.Set("code", Napi::String::New(env, code));
    return error;
}

}  // namespace llama_vlm
