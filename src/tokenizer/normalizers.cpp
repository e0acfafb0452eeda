// Normalizers of tokenizer.json: Sequence, Prepend, Replace, NFC/NFD/NFKC/NFKD, Lowercase, Strip,
// StripAccents, BertNormalizer, ByteLevel and an empty Precompiled map.

#include "reft/error.h"
#include "tokenizer/components.h"
#include "tokenizer/unicode.h"

namespace reft::tok {
namespace {

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& step : steps_) step->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// HF `tokenizers` skips an empty string here; transformers.js (the golden reference) prepends
// anyway. Empty input never reaches a normalizer (the pipeline drops empty sections first), so
// the difference only shows when earlier normalizers erase everything, e.g. " " under a
// strip-spaces Replace: we follow transformers.js there.
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override { text.insert(0, prefix_); }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { text = pattern_.replace_all(text, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  void normalize(std::string& text) const override { text = normalize_unicode(text, form_); }

 private:
  NormalForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = to_lower(text); }
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t next = begin;
        if (!is_whitespace(next_code_point(text, next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t probe = start;
        if (!is_whitespace(next_code_point(text, probe))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

std::string remove_nonspacing_marks(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    if (!is_nonspacing_mark(next_code_point(text, i))) out.append(text.substr(start, i - start));
  }
  return out;
}

class StripAccentsNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = remove_nonspacing_marks(text); }
};

class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool handle_chinese_chars, std::optional<bool> strip_accents,
                 bool lowercase)
      : clean_text_(clean_text),
        handle_chinese_chars_(handle_chinese_chars),
        strip_accents_(strip_accents.value_or(lowercase)),
        lowercase_(lowercase) {}

  void normalize(std::string& text) const override {
    if (clean_text_ || handle_chinese_chars_) {
      std::string out;
      out.reserve(text.size());
      size_t i = 0;
      while (i < text.size()) {
        const size_t start = i;
        const char32_t cp = next_code_point(text, i);
        if (clean_text_) {
          if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
          if (cp == '\t' || cp == '\n' || cp == '\r' || is_whitespace(cp)) {
            out.push_back(' ');
            continue;
          }
        }
        if (handle_chinese_chars_ && is_cjk_ideograph(cp)) {
          out.push_back(' ');
          out.append(text, start, i - start);
          out.push_back(' ');
          continue;
        }
        out.append(text, start, i - start);
      }
      text = std::move(out);
    }
    if (strip_accents_) text = remove_nonspacing_marks(normalize_unicode(text, NormalForm::kNfd));
    if (lowercase_) text = to_lower(text);
  }

 private:
  bool clean_text_, handle_chinese_chars_, strip_accents_, lowercase_;
};

class ByteLevelNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = to_byte_level(text); }
};

class IdentityNormalizer : public Normalizer {
 public:
  void normalize(std::string&) const override {}
};

}  // namespace

std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars,
                                                 std::optional<bool> strip_accents,
                                                 bool lowercase) {
  return std::make_unique<BertNormalizer>(clean_text, handle_chinese_chars, strip_accents,
                                          lowercase);
}

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, std::string_view where) {
  if (spec.is_null()) return nullptr;
  const std::string type = json_type(spec, where, "normalizer");
  const std::string context = "normalizer " + type;
  if (type == "Sequence") {
    const auto it = spec.find("normalizers");
    if (it == spec.end() || !it->is_array())
      fail("[", where, "] expected normalizer Sequence to have a \"normalizers\" array, found ",
           spec.dump().substr(0, 120));
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& step : *it)
      if (auto n = make_normalizer(step, where)) steps.push_back(std::move(n));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  if (type == "Prepend")
    return std::make_unique<PrependNormalizer>(json_string(spec, "prepend", where, context));
  if (type == "Replace") {
    if (!spec.contains("pattern"))
      fail("[", where, "] expected ", context, " to have a \"pattern\"");
    return std::make_unique<ReplaceNormalizer>(Pattern(spec["pattern"], where, context),
                                               json_string(spec, "content", where, context));
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfkd);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(json_bool(spec, "strip_left", where, context, true),
                                             json_bool(spec, "strip_right", where, context, true));
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "BertNormalizer") {
    std::optional<bool> strip_accents;
    if (spec.contains("strip_accents") && !spec["strip_accents"].is_null())
      strip_accents = json_bool(spec, "strip_accents", where, context, false);
    return make_bert_normalizer(json_bool(spec, "clean_text", where, context, true),
                                json_bool(spec, "handle_chinese_chars", where, context, true),
                                strip_accents, json_bool(spec, "lowercase", where, context, true));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Precompiled") {
    // SentencePiece's compiled character map; only an empty one (identity) is supported.
    const auto it = spec.find("precompiled_charsmap");
    if (it == spec.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()))
      return std::make_unique<IdentityNormalizer>();
    fail("[", where, "] expected a supported normalizer, found Precompiled with a non-empty ",
         "precompiled_charsmap; load the folder's tokenizer.model with the SentencePiece backend");
  }
  fail("[", where,
       "] expected a known normalizer type (Sequence, Prepend, Replace, NFC, NFD, NFKC, ",
       "NFKD, Lowercase, Strip, StripAccents, BertNormalizer, ByteLevel), found \"", type, "\"");
}

}  // namespace reft::tok
