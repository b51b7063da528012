#include "FastForward.h"

#include <llama-grammar.h>

#include <algorithm>

#include "Errors.h"
#include "Model.h"

namespace llama_vlm {
namespace {

// Forced text is cut here: the engine's batch takes only so many tokens a step anyway.
constexpr size_t kMaxForcedBytes = 1024;
// Past this many vocabulary entries sharing the last forced token's text, that token is left to the model unchecked.
constexpr size_t kMaxExtensionChecks = 4096;

// The one code point `pos` (a terminal at the top of a stack) allows, if it allows exactly one.
bool SingleChar(const llama_grammar_element *pos, uint32_t &chr) {
    if (pos->type != LLAMA_GRETYPE_CHAR) return false;  // CHAR_NOT, CHAR_ANY, tokens: many or not text
    if (pos[1].type == LLAMA_GRETYPE_CHAR_RNG_UPPER) {
        if (pos[1].value != pos->value || pos[2].type == LLAMA_GRETYPE_CHAR_ALT) return false;
    } else if (pos[1].type == LLAMA_GRETYPE_CHAR_ALT) {
        return false;
    }
    chr = pos->value;
    return true;
}

void AppendUtf8(std::string &out, uint32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

// Decodes the UTF-8 code point at s[i]; false when the bytes there are cut off or invalid.
bool NextCodePoint(const std::string &s, size_t &i, uint32_t &c) {
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char b = byte(i);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; k < n; ++k) {
        if ((byte(i + k) & 0xC0) != 0x80) return false;
        c = (c << 6) | (byte(i + k) & 0x3F);
    }
    i += n;
    return true;
}

}  // namespace

TokenPieces::TokenPieces(const llama_vocab *vocab) {
    const int32_t n = llama_vocab_n_tokens(vocab);
    byId_.resize(static_cast<size_t>(n));
    for (llama_token t = 0; t < n; ++t) {
        byId_[static_cast<size_t>(t)] = TokenPiece(vocab, t);
        // Control tokens are never text the tokenizer produces (it runs without parse_special).
        const auto attr = llama_vocab_get_attr(vocab, t);
        if ((attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNUSED | LLAMA_TOKEN_ATTR_UNKNOWN)) != 0) continue;
        if (!byId_[static_cast<size_t>(t)].empty()) sorted_.emplace_back(byId_[static_cast<size_t>(t)], t);
    }
    std::sort(sorted_.begin(), sorted_.end());
}

std::pair<size_t, size_t> TokenPieces::WithPrefix(const std::string &prefix) const {
    auto first = std::lower_bound(sorted_.begin(), sorted_.end(), prefix,
                                  [](const auto &entry, const std::string &p) { return entry.first < p; });
    auto last = first;
    while (last != sorted_.end() && last->first.compare(0, prefix.size(), prefix) == 0) ++last;
    return {static_cast<size_t>(first - sorted_.begin()), static_cast<size_t>(last - sorted_.begin())};
}

GrammarForcer::GrammarForcer(const llama_vocab *vocab, const std::string &grammar) : vocab_(vocab) {
    grammar_ = llama_grammar_init_impl(vocab, grammar.c_str(), "root", false, nullptr, 0, nullptr, 0);
    if (grammar_ == nullptr) throw VlmError(ErrorCode::InvalidOption, "the grammar does not parse as GBNF");
}

GrammarForcer::~GrammarForcer() {
    llama_grammar_free_impl(grammar_);
}

void GrammarForcer::Accept(llama_token token) {
    llama_grammar_accept_impl(*grammar_, token);
}

std::string GrammarForcer::ForcedText(Stacks &after) {
    std::string text;
    // Inside a character that a token cut in two, the grammar's stacks do not say what comes next.
    if (grammar_->partial_utf8.n_remain != 0) return text;
    Stacks saved = grammar_->stacks;
    while (text.size() < kMaxForcedBytes && !grammar_->stacks.empty()) {
        uint32_t forced = 0;
        bool single = true;
        for (size_t i = 0; i < grammar_->stacks.size() && single; ++i) {
            const auto &stack = grammar_->stacks[i];
            uint32_t c = 0;
            // An empty stack: the grammar may end here, so nothing is forced.
            single = !stack.empty() && SingleChar(stack.back(), c) && (i == 0 || c == forced);
            forced = c;
        }
        if (!single) break;
        llama_grammar_accept(grammar_, forced);
        AppendUtf8(text, forced);
    }
    after = std::move(grammar_->stacks);
    grammar_->stacks = std::move(saved);
    return text;
}

std::vector<llama_token> GrammarForcer::Tokenize(const std::string &text) const {
    return llama_vlm::Tokenize(vocab_, text, false, false);
}

bool GrammarForcer::Extensible(const std::string &piece, const Stacks &after, const TokenPieces &pieces) {
    const auto [first, last] = pieces.WithPrefix(piece);
    if (last - first > kMaxExtensionChecks) return true;
    Stacks saved = std::move(grammar_->stacks);
    bool extensible = false;
    // Entries are sorted, so those whose rest starts with the same rejected code point follow one another.
    bool haveRejected = false;
    uint32_t rejected = 0;
    for (size_t k = first; k < last && !extensible; ++k) {
        const std::string &text = pieces.At(k).first;
        if (text.size() == piece.size()) continue;
        size_t i = piece.size();
        uint32_t c = 0;
        if (!NextCodePoint(text, i, c)) {
            extensible = true;  // a cut-off character: the grammar cannot say no yet
            break;
        }
        if (haveRejected && c == rejected) continue;
        grammar_->stacks = after;
        llama_grammar_accept(grammar_, c);
        if (grammar_->stacks.empty()) {
            haveRejected = true;
            rejected = c;
            continue;
        }
        bool accepted = true;
        while (i < text.size() && accepted) {
            if (!NextCodePoint(text, i, c)) break;
            llama_grammar_accept(grammar_, c);
            accepted = !grammar_->stacks.empty();
        }
        extensible = accepted;
    }
    grammar_->stacks = std::move(saved);
    return extensible;
}

std::vector<llama_token> GrammarForcer::Forced(llama_token last, size_t maxTokens, const TokenPieces &pieces) {
    std::vector<llama_token> forced;
    if (maxTokens == 0) return forced;
    Stacks after;
    const std::string text = ForcedText(after);
    if (text.empty()) return forced;
    // In context: the tokenizer splits the sampled token's text and the forced text together. Where it keeps the
    // sampled token whole, the tokens after it are the forced ones; where it would merge them, the sampled token
    // stands (it is the model's choice) and the forced text is tokenised alone.
    const std::string &lastPiece = pieces.Piece(last);
    const auto concat = [&](const std::vector<llama_token> &tokens, size_t from) {
        std::string s;
        for (size_t i = from; i < tokens.size(); ++i) s += pieces.Piece(tokens[i]);
        return s;
    };
    std::vector<llama_token> together = Tokenize(lastPiece + text);
    size_t at = 0;
    size_t covered = 0;
    while (at < together.size() && covered < lastPiece.size()) covered += pieces.Piece(together[at++]).size();
    if (covered == lastPiece.size() && at < together.size() && concat(together, 0) == lastPiece + text) {
        forced.assign(together.begin() + static_cast<std::ptrdiff_t>(at), together.end());
    } else {
        forced = Tokenize(text);
        // A tokenizer that changes the text (a vocabulary that adds a leading space): force nothing.
        if (concat(forced, 0) != text) forced.clear();
    }
    if (!forced.empty() && Extensible(pieces.Piece(forced.back()), after, pieces)) forced.pop_back();
    if (forced.size() > maxTokens) forced.resize(maxTokens);
    return forced;
}

ForcedReplay ReplayFastForward(const llama_vocab *vocab, const std::string &grammar, const std::string &text) {
    GrammarForcer forcer(vocab, grammar);
    TokenPieces pieces(vocab);
    std::vector<llama_token> tokens = forcer.Tokenize(text);
    ForcedReplay replay;
    replay.tokens = static_cast<int32_t>(tokens.size());
    try {
        for (size_t i = 0; i < tokens.size();) {
            forcer.Accept(tokens[i]);
            const std::vector<llama_token> forced = forcer.Forced(tokens[i], tokens.size(), pieces);
            ++i;
            for (size_t k = 0; k < forced.size() && i < tokens.size() && forced[k] == tokens[i]; ++k, ++i) {
                forcer.Accept(tokens[i]);
                ++replay.forced;
            }
        }
    } catch (const std::exception &e) {
        throw VlmError(ErrorCode::InvalidOption, std::string("the grammar rejects the text: ") + e.what());
    }
    return replay;
}

}  // namespace llama_vlm
