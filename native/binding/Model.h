// JS class Model: holds a loaded llama_model (text weights + vocabulary, native/engine/Model.h) and answers the
// tokenizer and chat-template calls.
//
// Lifetime: Contexts and Projectors share the llama_model, so it is freed when the last of them is gone. dispose()
// drops the Model's own reference (idempotent).
// Thread: methods run on the JS thread, except load, which runs in ModelLoadWorker (libuv pool).
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>

#include "engine/Model.h"

namespace llama_vlm {

class Model : public Napi::ObjectWrap<Model> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit Model(const Napi::CallbackInfo &info);

    // [sync, JS thread] the loaded model; throws a DISPOSED error if there is none.
    SharedModel Get(Napi::Env env) const;
    std::atomic<bool> &abortFlag() { return abortLoad_; }
    // [JS thread] takes the loaded model and tells V8 how much native memory it holds.
    void SetLoaded(Napi::Env env, SharedModel model);

  private:
    // load(path: string, params: {gpuLayers, useMmap, useMlock, vocabOnly, hugePages}, onProgress?: (p: number) =>
    // void): Promise<void>
    Napi::Value Load(const Napi::CallbackInfo &info);
    // abortLoad(): void — a load in progress rejects with ABORTED
    Napi::Value AbortLoad(const Napi::CallbackInfo &info);
    // info(): NativeModelInfo
    Napi::Value Info(const Napi::CallbackInfo &info);
    // tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array
    Napi::Value Tokenize(const Napi::CallbackInfo &info);
    // detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string
    Napi::Value Detokenize(const Napi::CallbackInfo &info);
    // applyChatTemplate(messages: {role, content}[], template: string | null, addAssistant: boolean): string
    Napi::Value ApplyChatTemplate(const Napi::CallbackInfo &info);
    // dispose(): void
    Napi::Value Dispose(const Napi::CallbackInfo &info);

    SharedModel model_;
    int64_t reportedBytes_ = 0;
    std::atomic<bool> abortLoad_{false};
    bool loading_ = false;
};

}  // namespace llama_vlm
