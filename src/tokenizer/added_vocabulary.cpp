#include "tokenizer/added_vocabulary.h"

#include "tokenizer/unicode.h"

namespace reft::tok {

void AddedVocabulary::add(AddedToken token) {
  if (const auto it = by_id_.find(token.id); it != by_id_.end()) {
    by_content_.erase(tokens_[it->second].content);
    by_content_.emplace(token.content, token.id);
    tokens_[it->second] = std::move(token);
    return;
  }
  by_id_.emplace(token.id, tokens_.size());
  by_content_.emplace(token.content, token.id);
  tokens_.push_back(std::move(token));
}

void AddedVocabulary::Trie::insert(std::string_view key, int32_t token) {
  if (key.empty()) return;
  if (nodes.empty()) {
    root.fill(-1);
    nodes.emplace_back();  // node 0 is unused: root children live in `root`
  }
  empty = false;
  int32_t node = -1;
  for (size_t k = 0; k < key.size(); ++k) {
    const auto byte = static_cast<unsigned char>(key[k]);
    int32_t child = -1;
    if (node < 0) {
      child = root[byte];
    } else {
      for (const auto& [b, n] : nodes[node].next)
        if (b == byte) child = n;
    }
    if (child < 0) {
      child = static_cast<int32_t>(nodes.size());
      nodes.emplace_back();
      if (node < 0)
        root[byte] = child;
      else
        nodes[node].next.emplace_back(byte, child);
    }
    node = child;
  }
  if (nodes[node].token < 0) nodes[node].token = token;  // first token with this content wins
}

void AddedVocabulary::build(const Normalizer* normalizer) {
  raw_ = Trie{};
  normalized_ = Trie{};
  for (size_t k = 0; k < tokens_.size(); ++k) {
    const auto& token = tokens_[k];
    if (token.normalized && normalizer) {
      std::string content = token.content;
      normalizer->normalize(content);
      normalized_.insert(content, static_cast<int32_t>(k));
    } else {
      raw_.insert(token.content, static_cast<int32_t>(k));
    }
  }
}

const AddedToken* AddedVocabulary::find(TokenId id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<TokenId> AddedVocabulary::find(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

namespace {

bool is_word_char(char32_t cp) { return cp == '_' || is_alphanumeric(cp); }

// Start of the code point that ends at `end` (exclusive).
size_t previous_start(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return start;
}

char32_t code_point_before(std::string_view text, size_t end) {
  size_t start = previous_start(text, end);
  return next_code_point(text, start);
}

}  // namespace

std::vector<Section> AddedVocabulary::split(std::string_view text, bool normalized_tokens) const {
  const Trie& trie = normalized_tokens ? normalized_ : raw_;
  std::vector<Section> out;
  if (trie.empty) {
    if (!text.empty()) out.push_back({0, text.size()});
    return out;
  }
  size_t section_start = 0;  // end of the previous token match
  size_t pos = 0;
  while (pos < text.size()) {
    // Longest token starting at `pos`.
    int32_t node = trie.root[static_cast<unsigned char>(text[pos])];
    int32_t best = -1;
    size_t best_end = 0;
    for (size_t k = pos + 1; node >= 0; ++k) {
      if (trie.nodes[node].token >= 0) {
        best = trie.nodes[node].token;
        best_end = k;
      }
      if (k >= text.size()) break;
      const auto byte = static_cast<unsigned char>(text[k]);
      int32_t child = -1;
      for (const auto& [b, n] : trie.nodes[node].next)
        if (b == byte) child = n;
      node = child;
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[best];
    size_t begin = pos, end = best_end;
    if (token.single_word &&
        ((begin > 0 && is_word_char(code_point_before(text, begin))) || (end < text.size() && [&] {
           size_t i = end;
           return is_word_char(next_code_point(text, i));
         }()))) {
      ++pos;
      continue;
    }
    if (token.lstrip)
      while (begin > section_start && is_whitespace(code_point_before(text, begin)))
        begin = previous_start(text, begin);
    if (token.rstrip) {
      while (end < text.size()) {
        size_t i = end;
        if (!is_whitespace(next_code_point(text, i))) break;
        end = i;
      }
    }
    if (begin > section_start) out.push_back({section_start, begin});
    out.push_back({begin, end, token.id});
    section_start = pos = end;
  }
  if (section_start < text.size()) out.push_back({section_start, text.size()});
  return out;
}

}  // namespace reft::tok
