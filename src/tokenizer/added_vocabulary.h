#pragma once
// Added tokens (tokenizer.json `added_tokens`, tokenizer_config.json `added_tokens_decoder`, the
// special tokens): the text is split on them before normalization, as HF does, so they are never
// broken up by the model. Matching is leftmost-longest over a byte trie.

#include <array>
#include <unordered_map>

#include "tokenizer/components.h"

namespace reft::tok {

struct AddedToken {
  std::string content;
  TokenId id = 0;
  bool special = false;
  bool lstrip = false;       // swallow whitespace on the left
  bool rstrip = false;       // swallow whitespace on the right
  bool single_word = false;  // only match between non-word characters
  bool normalized = false;   // match in the normalized text instead of the raw text
};

/// A part of the input: an added token (`id` >= 0) or ordinary text [begin, end).
struct Section {
  size_t begin, end;
  TokenId id = -1;
};

class AddedVocabulary {
 public:
  /// Adds or replaces (same id) a token.
  void add(AddedToken token);
  /// Builds the matchers; the contents of normalized tokens pass through `normalizer` first.
  void build(const Normalizer* normalizer);

  /// Splits `text` at the raw (`normalized_tokens` false) or normalized added tokens.
  std::vector<Section> split(std::string_view text, bool normalized_tokens) const;

  const AddedToken* find(TokenId id) const;
  std::optional<TokenId> find(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }

 private:
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> next;
      int32_t token = -1;  // index into tokens_
    };
    std::array<int32_t, 256> root{};
    std::vector<Node> nodes;
    bool empty = true;
    void insert(std::string_view key, int32_t token);
  };

  std::vector<AddedToken> tokens_;
  std::unordered_map<TokenId, size_t> by_id_;
  std::unordered_map<std::string, TokenId> by_content_;
  Trie raw_, normalized_;
};

}  // namespace reft::tok
