#pragma once
// UTF-8 and Unicode helpers for the tokenizers: code point iteration, lossy decoding, ICU
// normalization and the character classes that HF `tokenizers` uses (Rust `char::is_*`).

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace reft::tok {

/// Decodes the code point starting at `text[i]` and advances `i` past it. `text` must be valid
/// UTF-8 (see find_invalid_utf8).
char32_t next_code_point(std::string_view text, size_t& i);

/// Appends the UTF-8 encoding of `cp` to `out`.
void append_utf8(std::string& out, char32_t cp);

/// Byte length of the UTF-8 sequence that starts with `lead` (1 for continuation bytes).
inline size_t utf8_sequence_length(unsigned char lead) {
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/// Offset of the first byte that is not part of valid UTF-8, or std::string_view::npos.
size_t find_invalid_utf8(std::string_view text);

/// Decodes bytes to UTF-8 text, replacing every maximal invalid subsequence with U+FFFD, as Rust's
/// `String::from_utf8_lossy` and the WHATWG TextDecoder do.
std::string utf8_lossy(std::string_view bytes);

/// Number of code points in valid UTF-8 `text`.
size_t count_code_points(std::string_view text);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

/// Unicode normalization (ICU) of valid UTF-8 text.
std::string normalize_unicode(std::string_view text, NormalForm form);

/// Full lowercase mapping of every code point on its own (no final-sigma context), like the
/// `char::to_lowercase` that HF's Lowercase normalizer applies.
std::string to_lower(std::string_view text);

/// Unicode White_Space (Rust `char::is_whitespace`).
bool is_whitespace(char32_t cp);
/// ASCII punctuation or any Unicode P* category (HF's `is_bert_punc`).
bool is_punctuation(char32_t cp);
/// Unicode category C* (Rust `is_other`), tab/newline/CR excluded (BERT's `is_control`).
bool is_control(char32_t cp);
/// Category Mn (what StripAccents removes).
bool is_nonspacing_mark(char32_t cp);
/// Categories Nd, Nl, No (Rust `char::is_numeric`).
bool is_numeric(char32_t cp);
/// Letters or numbers (Rust `char::is_alphanumeric`).
bool is_alphanumeric(char32_t cp);
/// The CJK ideograph blocks that BERT pads with spaces.
bool is_cjk_ideograph(char32_t cp);

/// GPT-2's byte-to-unicode table: byte b maps to one printable code point, UTF-8 encoded.
const std::array<std::string, 256>& byte_level_alphabet();

/// The byte that code point `cp` stands for in the byte-level alphabet, or -1.
int byte_level_byte(char32_t cp);

/// Maps every byte of `text` to its byte-level code point (GPT-2 / Llama-3 / Qwen style).
std::string to_byte_level(std::string_view text);

}  // namespace reft::tok
