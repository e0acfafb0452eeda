#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "reft/error.h"
#include "tokenizer/unicode.h"

namespace reft::tok {

namespace {

// Patterns come from tokenizer.json, which is untrusted: every compile and match is bounded.
// HF pre-tokenizer patterns are a few hundred bytes; a megabyte of alternatives is not a tokenizer.
constexpr size_t kMaxPatternBytes = size_t{64} << 10;
// Backtracking steps per match attempt (PCRE2's own default, kept explicit): normal tokenizer
// patterns need a handful per piece; `(a+)+$` on 30 a's needs 2^30 and stops here in ~10-100 ms.
constexpr uint32_t kMatchLimit = 10'000'000;
// Memory for the interpreter's backtracking frames, in KiB (PCRE2's default is 20 GB).
constexpr uint32_t kHeapLimitKiB = 64 << 10;

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;  // the limits; only read by pcre2_match (thread-safe)
  bool jit = false;
  ~Code() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

Regex::Regex(std::string_view pattern, std::string_view where) : pattern_(pattern), where_(where) {
  if (pattern.size() > kMaxPatternBytes)
    fail("[", where, "] expected a regex of at most ", kMaxPatternBytes, " bytes, found ",
         pattern.size(), " bytes");
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  auto code = std::make_shared<Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (!code->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    fail("[", where, "] expected a valid regex, found '", pattern, "' (",
         reinterpret_cast<const char*>(message), " at offset ", error_offset, ")");
  }
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  code->context = pcre2_match_context_create(nullptr);
  if (!code->context) fail("[", where, "] expected memory for a regex match context, found none");
  pcre2_set_match_limit(code->context, kMatchLimit);
  pcre2_set_depth_limit(code->context, kMatchLimit);
  pcre2_set_heap_limit(code->context, kHeapLimitKiB);
  code_ = std::move(code);
}

namespace {

struct MatchData {
  pcre2_match_data* data;
  explicit MatchData(const pcre2_code* code)
      : data(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(data); }
};

// One match attempt at or after `start`; falls back to the interpreter (under the same limits)
// when the JIT stack is too small for a long subject (e.g. `\s+(?!\S)` over a megabyte of spaces).
int match_once(const pcre2_code* code, pcre2_match_context* context, std::string_view text,
               size_t start, uint32_t options, pcre2_match_data* data) {
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc =
      pcre2_match(code, subject, text.size(), start, options | PCRE2_NO_UTF_CHECK, data, context);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
    rc = pcre2_match(code, subject, text.size(), start, options | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                     data, context);
  return rc;
}

}  // namespace

MatchRanges Regex::find_all(std::string_view text) const {
  MatchRanges out;
  MatchData match(code_->code);
  size_t start = 0;
  uint32_t options = 0;
  while (start <= text.size()) {
    const int rc = match_once(code_->code, code_->context, text, start, options, match.data);
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (options == 0) break;
      // An empty match at `start` was followed by no non-empty one: step over one character.
      options = 0;
      if (start >= text.size()) break;
      start += utf8_sequence_length(static_cast<unsigned char>(text[start]));
      continue;
    }
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT)
      fail("[", where_, "] regex '", pattern_, "' exceeded the match limit (", kMatchLimit,
           " backtracking steps) on a text of ", text.size(),
           " bytes; expected a pattern without catastrophic backtracking");
    if (rc == PCRE2_ERROR_HEAPLIMIT)
      fail("[", where_, "] regex '", pattern_, "' exceeded the memory limit (", kHeapLimitKiB >> 10,
           " MiB of backtracking frames) on a text of ", text.size(), " bytes");
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      fail("[", where_, "] regex '", pattern_, "': expected a match result, found error ",
           reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.data);
    out.emplace_back(ovector[0], ovector[1]);
    start = ovector[1];
    options = ovector[0] == ovector[1] ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
  }
  return out;
}

std::string Regex::replace_all(std::string_view text, std::string_view replacement) const {
  return replace_ranges(text, find_all(text), replacement);
}

std::string replace_ranges(std::string_view text, const MatchRanges& ranges,
                           std::string_view replacement) {
  std::string out;
  size_t prev = 0;
  for (const auto& [begin, end] : ranges) {
    out.append(text.substr(prev, begin - prev));
    out.append(replacement);
    prev = end;
  }
  out.append(text.substr(prev));
  return out;
}

MatchRanges find_literal(std::string_view text, std::string_view needle) {
  MatchRanges out;
  if (needle.empty()) return out;
  for (size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + needle.size()))
    out.emplace_back(pos, pos + needle.size());
  return out;
}

}  // namespace reft::tok
