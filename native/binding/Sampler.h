// The sampler chain (native/engine/Sampler.h) and llama.cpp's grammar tools, callable from JS for tests and tools.
#pragma once

#include <napi.h>

namespace llama_vlm {

// applySamplers(sampling, logits: Float32Array, history: Int32Array, select: boolean, model: Model | null)
//   : { ids: Int32Array, logits: Float32Array, probs: Float32Array, selected: number }
// [sync, JS thread] runs a chain over the given logits after accepting `history`.
Napi::Value ApplySamplers(const Napi::CallbackInfo &info);

// jsonSchemaToGrammar(schema: string): string — llama.cpp's JSON-schema → GBNF converter. [sync, JS thread]
Napi::Value JsonSchemaToGrammar(const Napi::CallbackInfo &info);

// replayFastForward(model: Model, grammar: string, text: string): { tokens: number, forced: number }
// [sync, JS thread] how many of the text's tokens grammar fast-forward would force (benchmarks).
Napi::Value FastForwardReplay(const Napi::CallbackInfo &info);

}  // namespace llama_vlm
