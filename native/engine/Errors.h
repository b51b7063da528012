// The error codes native code raises, and the exception that carries one inside native code. Every code is one of
// lib/errors.ts LlamaVlmErrorCode: the addon exports their names as `errorCodes`, and
// test/model/stop-engine.test.ts holds them to that list. The others (CRASHED, FILE_NOT_FOUND, …) arise in lib/.
// Thread: any. native/binding/JsError.h converts a VlmError at the JS boundary, once.
#pragma once

#include <stdexcept>
#include <string>

namespace llama_vlm {

enum class ErrorCode { InvalidModel, ImageDecodeFailed, OverContext, InvalidOption, Disposed, Aborted, NativeError };

constexpr ErrorCode kErrorCodes[] = {ErrorCode::InvalidModel,  ErrorCode::ImageDecodeFailed, ErrorCode::OverContext,
                                     ErrorCode::InvalidOption, ErrorCode::Disposed,          ErrorCode::Aborted,
                                     ErrorCode::NativeError};

// The name lib/ sees in an error's `code`.
inline const char *ErrorCodeName(ErrorCode code) {
    switch (code) {
        case ErrorCode::InvalidModel:
            return "INVALID_MODEL";
        case ErrorCode::ImageDecodeFailed:
            return "IMAGE_DECODE_FAILED";
        case ErrorCode::OverContext:
            return "OVER_CONTEXT";
        case ErrorCode::InvalidOption:
            return "INVALID_OPTION";
        case ErrorCode::Disposed:
            return "DISPOSED";
        case ErrorCode::Aborted:
            return "ABORTED";
        case ErrorCode::NativeError:
            break;
    }
    return "NATIVE_ERROR";
}

class VlmError : public std::runtime_error {
  public:
    VlmError(ErrorCode code, const std::string &message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

  private:
    ErrorCode code_;
};

}  // namespace llama_vlm
