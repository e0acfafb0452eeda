#pragma once
// Exercises a loaded tokenizer the way reft does: encode (with and without special tokens, pairs),
// decode every id up to a bound, token strings. Only reft::Error may escape a call.

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "reft/error.h"
#include "reft/tokenizer.h"

namespace reft::fuzz {

inline void exercise_tokenizer(const Tokenizer& tok) {
  const char* texts[] = {"Hello world, it's 2024!", "  \u00fcber caf\u00e9\t\u4f60\u597d </s> <s>",
                         "[CLS] a [SEP] b <unk> <|endoftext|>", "\xf0\x9f\x98\x80 x\n\ny"};
  const int64_t n = std::min<int64_t>(tok.vocab_size(), 300);
  std::vector<int64_t> all;
  for (int64_t i = 0; i < n; ++i) all.push_back(i);
  try {
    tok.decode(all);
    tok.decode(all, /*skip_special_tokens=*/true);
    tok.tokens(all);
  } catch (const reft::Error&) {
  }
  for (const char* text : texts) {
    try {
      const auto ids = tok.encode(text);
      tok.encode(text, /*add_special_tokens=*/false);
      tok.decode(ids);
      tok.tokens(ids);
    } catch (const reft::Error&) {
    }
  }
  try {
    tok.encode_pair(texts[0], texts[1]);
  } catch (const reft::Error&) {
  }
  tok.token_to_id("<s>");
}

}  // namespace reft::fuzz
