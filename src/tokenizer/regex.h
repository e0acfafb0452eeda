#pragma once
// A compiled PCRE2 pattern (UTF + UCP, JIT when available) for the HF tokenizer regexes
// (`\p{L}`, `(?i:'s|…)`, `\s+(?!\S)`, look-behind), shareable between threads.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace reft::tok {

/// Byte ranges [begin, end) of matches in a string.
using MatchRanges = std::vector<std::pair<size_t, size_t>>;

class Regex {
 public:
  /// Compiles `pattern` (at most 64 KiB); throws reft::Error naming `where` and the PCRE2 message
  /// when it is invalid or too long.
  Regex(std::string_view pattern, std::string_view where);

  /// All non-overlapping matches in valid UTF-8 `text`, left to right (empty matches included,
  /// the search then moves on by one character, as Perl and JavaScript do). Each match attempt is
  /// bounded in backtracking steps and memory: a pattern that backtracks catastrophically throws
  /// reft::Error "[where] regex '…' exceeded the match limit …" instead of running for hours.
  MatchRanges find_all(std::string_view text) const;

  /// `text` with every match replaced by the literal `replacement`.
  std::string replace_all(std::string_view text, std::string_view replacement) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
  std::string pattern_;
  std::string where_;
};

/// `text` with each of the sorted, non-overlapping `ranges` replaced by `replacement`.
std::string replace_ranges(std::string_view text, const MatchRanges& ranges,
                           std::string_view replacement);

/// Byte ranges of the non-overlapping occurrences of `needle` in `text` (none for an empty needle).
MatchRanges find_literal(std::string_view text, std::string_view needle);

}  // namespace reft::tok
