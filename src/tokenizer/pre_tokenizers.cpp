// Pre-tokenizers of tokenizer.json: Sequence, ByteLevel, Split, Metaspace, Whitespace,
// WhitespaceSplit, BertPreTokenizer, Digits, Punctuation, CharDelimiterSplit.

#include <functional>

#include "reft/error.h"
#include "tokenizer/components.h"
#include "tokenizer/unicode.h"

namespace reft::tok {
namespace {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

SplitBehavior parse_behavior(const nlohmann::json& spec, std::string_view where,
                             std::string_view context, const char* fallback) {
  const std::string name = json_string(spec, "behavior", where, context, std::string(fallback));
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  fail("[", where, "] expected ", context, " behavior Removed, Isolated, MergedWithPrevious, ",
       "MergedWithNext or Contiguous, found \"", name, "\"");
}

struct Span {
  size_t begin, end;
  bool flag;  // is_match before the behaviour is applied, "remove" after
};

// HF `NormalizedString::split`: turns the matches into spans, applies the behaviour and appends
// the non-empty kept spans of `piece` to `out`.
void split_piece(const Piece& piece, const MatchRanges& matches, SplitBehavior behavior,
                 bool invert, std::vector<Piece>& out) {
  const std::string& text = piece.text;
  std::vector<Span> spans;
  spans.reserve(2 * matches.size() + 1);
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (prev != begin) spans.push_back({prev, begin, invert});
    spans.push_back({begin, end, !invert});
    prev = end;
  }
  if (prev != text.size()) spans.push_back({prev, text.size(), invert});

  std::vector<Span> kept;
  kept.reserve(spans.size());
  out.reserve(out.size() + spans.size());
  switch (behavior) {
    case SplitBehavior::kRemoved:
      kept = spans;
      break;
    case SplitBehavior::kIsolated:
      for (auto s : spans) kept.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& s : spans) {
        if (s.flag == previous_match && !kept.empty())
          kept.back().end = s.end;
        else
          kept.push_back({s.begin, s.end, false});
        previous_match = s.flag;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& s : spans) {
        if (s.flag && !previous_match && !kept.empty())
          kept.back().end = s.end;
        else
          kept.push_back({s.begin, s.end, false});
        previous_match = s.flag;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->flag && !previous_match && !kept.empty())
          kept.back().begin = it->begin;
        else
          kept.push_back({it->begin, it->end, false});
        previous_match = it->flag;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (const auto& s : kept)
    if (!s.flag && s.end > s.begin)
      out.push_back({text.substr(s.begin, s.end - s.begin), piece.at_start && s.begin == 0});
}

// Every character satisfying `pred` is one match (HF's `Fn(char) -> bool` pattern).
MatchRanges match_chars(std::string_view text, const std::function<bool(char32_t)>& pred) {
  MatchRanges out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    if (pred(next_code_point(text, i))) out.emplace_back(start, i);
  }
  return out;
}

// A pre-tokenizer defined by a match function and a behaviour.
class SplitPreTokenizer : public PreTokenizer {
 public:
  using Matcher = std::function<MatchRanges(std::string_view)>;
  SplitPreTokenizer(Matcher matcher, SplitBehavior behavior, bool invert)
      : matcher_(std::move(matcher)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (const auto& piece : pieces)
      split_piece(piece, matcher_(piece.text), behavior_, invert_, out);
    pieces = std::move(out);
  }

 private:
  Matcher matcher_;
  SplitBehavior behavior_;
  bool invert_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// GPT-2's pre-tokenization regex, used by ByteLevel with use_regex.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_.emplace(kGpt2Pattern, "ByteLevel pre-tokenizer");
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (auto& piece : pieces) {
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' '))
        piece.text = " " + piece.text;
      if (regex_)
        split_piece(piece, regex_->find_all(piece.text), SplitBehavior::kIsolated, false, out);
      else if (!piece.text.empty())
        out.push_back(std::move(piece));
    }
    for (auto& piece : out) piece.text = to_byte_level(piece.text);
    pieces = std::move(out);
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (auto& piece : pieces) {
      std::string text;
      text.reserve(piece.text.size() + 3);
      for (char c : piece.text) {
        if (c == ' ')
          text += replacement_;
        else
          text.push_back(c);
      }
      const bool starts = text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && piece.at_start)))
        text.insert(0, replacement_);
      Piece rewritten{std::move(text), piece.at_start};
      if (split_)
        split_piece(rewritten, find_literal(rewritten.text, replacement_),
                    SplitBehavior::kMergedWithNext, false, out);
      else if (!rewritten.text.empty())
        out.push_back(std::move(rewritten));
    }
    pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

std::unique_ptr<PreTokenizer> make_whitespace_split() {
  return std::make_unique<SplitPreTokenizer>(
      [](std::string_view t) { return match_chars(t, is_whitespace); }, SplitBehavior::kRemoved,
      false);
}

std::unique_ptr<PreTokenizer> make_punctuation(SplitBehavior behavior) {
  return std::make_unique<SplitPreTokenizer>(
      [](std::string_view t) { return match_chars(t, is_punctuation); }, behavior, false);
}

}  // namespace

std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, use_regex);
}

std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer() {
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  steps.push_back(make_whitespace_split());
  steps.push_back(make_punctuation(SplitBehavior::kIsolated));
  return std::make_unique<SequencePreTokenizer>(std::move(steps));
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec,
                                                 std::string_view where) {
  if (spec.is_null()) return nullptr;
  const std::string type = json_type(spec, where, "pre_tokenizer");
  const std::string context = "pre_tokenizer " + type;
  if (type == "Sequence") {
    const auto it = spec.find("pretokenizers");
    if (it == spec.end() || !it->is_array())
      fail("[", where,
           "] expected pre_tokenizer Sequence to have a \"pretokenizers\" array, found ",
           spec.dump().substr(0, 120));
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& step : *it)
      if (auto p = make_pre_tokenizer(step, where)) steps.push_back(std::move(p));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "ByteLevel")
    return make_byte_level_pre_tokenizer(json_bool(spec, "add_prefix_space", where, context, true),
                                         json_bool(spec, "use_regex", where, context, true));
  if (type == "Split") {
    if (!spec.contains("pattern"))
      fail("[", where, "] expected ", context, " to have a \"pattern\"");
    auto pattern = std::make_shared<Pattern>(spec["pattern"], where, context);
    return std::make_unique<SplitPreTokenizer>(
        [pattern](std::string_view t) { return pattern->find_all(t); },
        parse_behavior(spec, where, context, "Isolated"),
        json_bool(spec, "invert", where, context, false));
  }
  if (type == "Metaspace") {
    PrependScheme scheme = PrependScheme::kAlways;
    if (spec.contains("prepend_scheme") && !spec["prepend_scheme"].is_null()) {
      const std::string name = json_string(spec, "prepend_scheme", where, context);
      if (name == "always")
        scheme = PrependScheme::kAlways;
      else if (name == "first")
        scheme = PrependScheme::kFirst;
      else if (name == "never")
        scheme = PrependScheme::kNever;
      else
        fail("[", where, "] expected ", context, " prepend_scheme always, first or never, found \"",
             name, "\"");
    } else if (!json_bool(spec, "add_prefix_space", where, context, true)) {
      scheme = PrependScheme::kNever;  // files written before prepend_scheme existed
    }
    return std::make_unique<MetaspacePreTokenizer>(
        json_string(spec, "replacement", where, context, std::string("\u2581")), scheme,
        json_bool(spec, "split", where, context, true));
  }
  if (type == "Whitespace") {
    auto regex = std::make_shared<Regex>(R"(\w+|[^\w\s]+)", "Whitespace pre-tokenizer");
    return std::make_unique<SplitPreTokenizer>(
        [regex](std::string_view t) { return regex->find_all(t); }, SplitBehavior::kRemoved, true);
  }
  if (type == "WhitespaceSplit") return make_whitespace_split();
  if (type == "BertPreTokenizer") return make_bert_pre_tokenizer();
  if (type == "Digits") {
    const bool individual = json_bool(spec, "individual_digits", where, context, false);
    return std::make_unique<SplitPreTokenizer>(
        [](std::string_view t) { return match_chars(t, is_numeric); },
        individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false);
  }
  if (type == "Punctuation")
    return make_punctuation(parse_behavior(spec, where, context, "Isolated"));
  if (type == "CharDelimiterSplit") {
    const std::string delimiter = json_string(spec, "delimiter", where, context);
    return std::make_unique<SplitPreTokenizer>(
        [delimiter](std::string_view t) { return find_literal(t, delimiter); },
        SplitBehavior::kRemoved, false);
  }
  fail("[", where, "] expected a known pre_tokenizer type (Sequence, ByteLevel, Split, Metaspace, ",
       "Whitespace, WhitespaceSplit, BertPreTokenizer, Digits, Punctuation, CharDelimiterSplit), ",
       "found \"", type, "\"");
}

}  // namespace reft::tok
