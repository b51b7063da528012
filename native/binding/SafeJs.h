// JS values, calls and promise settlement through Node-API's plain C functions, for the code that runs from
// the event loop rather than from a JS call: ThreadSafeFunction callbacks and AsyncWorker completions. Those
// can run while their environment is being torn down (a worker_thread being terminated). node-addon-api's
// wrappers turn a call refused there into napi_fatal_error, which ends the whole process; here each step
// checks its status, and after the first failure the remaining steps do nothing and ok() is false.
// Thread: the JS thread of `env`. Nothing here throws.
#pragma once

#include <napi.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "engine/Errors.h"

namespace llama_vlm {

class SafeJs {
  public:
    explicit SafeJs(napi_env env) : env_(env) {}

    bool ok() const { return ok_; }

    napi_value Undefined() {
        return Make([&](napi_value *v) { return napi_get_undefined(env_, v); });
    }
    napi_value Object() {
        return Make([&](napi_value *v) { return napi_create_object(env_, v); });
    }
    napi_value Array(size_t length) {
        return Make([&](napi_value *v) { return napi_create_array_with_length(env_, length, v); });
    }
    napi_value Number(double value) {
        return Make([&](napi_value *v) { return napi_create_double(env_, value, v); });
    }
    napi_value String(const std::string &value) {
        return Make([&](napi_value *v) { return napi_create_string_utf8(env_, value.data(), value.size(), v); });
    }
    // A Buffer holding a copy of `bytes`.
    napi_value Bytes(const std::string &bytes) {
        return Make(
            [&](napi_value *v) { return napi_create_buffer_copy(env_, bytes.size(), bytes.data(), nullptr, v); });
    }
    // An Error with the given message and a `code` property (see lib/errors.ts).
    napi_value Error(ErrorCode code, const std::string &message) {
        napi_value error = Make([&](napi_value *v) { return napi_create_error(env_, nullptr, String(message), v); });
        Set(error, "code", ErrorCodeName(code));
        return error;
    }

    void Set(napi_value object, const char *key, napi_value value) {
        Step([&] { return napi_set_named_property(env_, object, key, value); });
    }
    void Set(napi_value object, const char *key, double value) { Set(object, key, Number(value)); }
    void Set(napi_value object, const char *key, const std::string &value) { Set(object, key, String(value)); }
    void Set(napi_value object, const char *key, const char *value) { Set(object, key, String(value)); }
    void Set(napi_value array, uint32_t index, napi_value value) {
        Step([&] { return napi_set_element(env_, array, index, value); });
    }

    // Calls fn(args) with `this` undefined. An exception the callback throws stays pending, so Node reports it
    // as uncaught once the event-loop callback returns, unless `dropException` clears it.
    void Call(napi_value fn, std::initializer_list<napi_value> args, bool dropException = false) {
        napi_value recv = Undefined();
        std::vector<napi_value> argv(args);
        napi_value result = nullptr;
        Step([&] { return napi_call_function(env_, recv, fn, argv.size(), argv.data(), &result); });
        if (!ok_ && dropException) {
            bool pending = false;
            if (napi_is_exception_pending(env_, &pending) == napi_ok && pending) {
                napi_value ignored;
                napi_get_and_clear_last_exception(env_, &ignored);
            }
        }
    }

    void Resolve(napi_deferred deferred, napi_value value) {
        Step([&] { return napi_resolve_deferred(env_, deferred, value); });
    }
    void Reject(napi_deferred deferred, napi_value error) {
        Step([&] { return napi_reject_deferred(env_, deferred, error); });
    }

  private:
    template <typename F>
    void Step(F &&step) {
        if (ok_ && step() != napi_ok) ok_ = false;
    }
    // Every argument a step takes must exist: a null value means an earlier step failed, so ok_ is false.
    template <typename F>
    napi_value Make(F &&make) {
        napi_value value = nullptr;
        Step([&] { return make(&value); });
        return ok_ ? value : nullptr;
    }

    napi_env env_;
    bool ok_ = true;
};

// An AsyncWorker that settles a promise, built with SafeJs in its completion. `Base` is Napi::AsyncWorker or
// one of its progress variants. Subclasses report failure with Fail(code, message) from Execute and may
// override Resolved to build the value (and do their JS-thread work) on success.
template <typename Base = Napi::AsyncWorker>
class PromiseWorker : public Base {
  public:
    PromiseWorker(Napi::Env env, const char *name) : Base(env, name) {
        napi_status status = napi_create_promise(env, &deferred_, &promise_);
        NAPI_THROW_IF_FAILED_VOID(env, status);
    }

    // The promise, in the handle scope that created the worker (return it from the binding method).
    Napi::Value Promise() const { return Napi::Value(this->Env(), promise_); }

  protected:
    void Fail(ErrorCode code, std::string message) {
        code_ = code;
        message_ = message.empty() ? "native error" : std::move(message);
        this->SetError(message_);
    }

    // JS thread, after a successful Execute: the value to resolve with.
    virtual napi_value Resolved(SafeJs &js) { return js.Undefined(); }

    void OnOK() final {
        SafeJs js(this->Env());
        napi_value value = Resolved(js);
        js.Resolve(deferred_, value);
    }
    void OnError(const Napi::Error & /*error*/) final {
        SafeJs js(this->Env());
        js.Reject(deferred_, js.Error(code_, message_));
    }

  private:
    napi_deferred deferred_ = nullptr;
    napi_value promise_ = nullptr;
    ErrorCode code_ = ErrorCode::NativeError;
    std::string message_;
};

}  // namespace llama_vlm
