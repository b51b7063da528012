// Grammar fast-forward (jump-forward decoding): the text a grammar forces next, as the tokens that write it.
//
// A request with `fastForward` keeps its own llama_grammar beside the sampler chain's (the chain's grammar sampler is
// opaque), built from the same GBNF text and accepting the same tokens. After each sampled token the engine asks for
// the forced tokens: the longest text that every continuation the grammar allows must start with, tokenised in
// context (the sampled token and the forced text together, as the tokenizer would split them), less a last token that
// a longer vocabulary entry, also allowed by the grammar, could extend (the model picks that boundary itself, so the
// sequence keeps the tokenizer's own split). The engine decodes the forced tokens with the sampled one in the next
// step's llama_decode instead of sampling them one by one.
//
// The sampled token is never replaced: where the tokenizer would merge it with the forced text, the forced text is
// tokenised on its own after it. So a token the grammar allows alone is forced exactly as sampling would pick it.
//
// Uses llama.cpp's internal grammar API (src/llama-grammar.h): the character-level walk needs the grammar's stacks.
// Thread: a GrammarForcer belongs to one request, used by the thread that samples it; a TokenPieces is immutable
// once built and may be shared.
#pragma once

#include <llama.h>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct llama_grammar;
struct llama_grammar_element;

namespace llama_vlm {

// Every ordinary token's text, sorted by bytes: finds the tokens that extend a given text.
class TokenPieces {
  public:
    explicit TokenPieces(const llama_vocab *vocab);
    const std::string &Piece(llama_token token) const { return byId_[static_cast<size_t>(token)]; }
    // [first, last) of the sorted entries whose text starts with `prefix`.
    std::pair<size_t, size_t> WithPrefix(const std::string &prefix) const;
    const std::pair<std::string, llama_token> &At(size_t i) const { return sorted_[i]; }

  private:
    std::vector<std::string> byId_;
    std::vector<std::pair<std::string, llama_token>> sorted_;
};

class GrammarForcer {
  public:
    // llama.cpp's llama_grammar_stacks: the grammar's state.
    using Stacks = std::vector<std::vector<const llama_grammar_element *>>;

    // [sync, any thread] parses `grammar` (GBNF, root rule "root"). Throws VlmError(INVALID_OPTION) if it does not
    // parse (the sampler chain, built from the same text first, would have thrown already).
    GrammarForcer(const llama_vocab *vocab, const std::string &grammar);
    ~GrammarForcer();
    GrammarForcer(const GrammarForcer &) = delete;
    GrammarForcer &operator=(const GrammarForcer &) = delete;

    // Advances the grammar over a token the sampler chain accepted (sampled or forced). Throws as llama.cpp's
    // grammar sampler does on a token the grammar rejects.
    void Accept(llama_token token);
    // The forced tokens after `last` (accepted already, not yet decoded): at most `maxTokens` of them, none when the
    // grammar leaves a choice at once.
    std::vector<llama_token> Forced(llama_token last, size_t maxTokens, const TokenPieces &pieces);
    // The tokenizer's tokens for `text`, without special tokens.
    std::vector<llama_token> Tokenize(const std::string &text) const;

  private:
    // The text the grammar forces from its current state; leaves the state as it was. `after` gets the stacks at
    // the end of that text.
    std::string ForcedText(Stacks &after);
    // Whether a vocabulary entry longer than `piece` starts with it and the grammar, from the state `after` (the end
    // of the forced text, which `piece` ends), accepts the rest of it.
    bool Extensible(const std::string &piece, const Stacks &after, const TokenPieces &pieces);

    const llama_vocab *vocab_;
    llama_grammar *grammar_ = nullptr;
};

struct ForcedReplay {
    int32_t tokens = 0;  // the text's tokens
    int32_t forced = 0;  // of them, those fast-forward would have written
};

// [sync, any thread] how much of `text` (an output the grammar allows, tokenised as the tokenizer splits it) grammar
// fast-forward would force if a model sampled that text: each token not forced is taken as sampled, and the forced
// tokens after it count where they are the text's next tokens. For benchmarks: the share a real output would have.
// Throws VlmError(INVALID_OPTION) when the grammar does not parse or rejects the text.
ForcedReplay ReplayFastForward(const llama_vocab *vocab, const std::string &grammar, const std::string &text);

}  // namespace llama_vlm
