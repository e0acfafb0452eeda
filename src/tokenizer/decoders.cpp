// Decoders of tokenizer.json: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace,
// WordPiece, BPEDecoder.

#include "reft/error.h"
#include "tokenizer/components.h"
#include "tokenizer/unicode.h"

namespace reft::tok {
namespace {

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }
  void bind_added_tokens(const std::unordered_set<std::string>* added) override {
    for (const auto& step : steps_) step->bind_added_tokens(added);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

// Maps the byte-level alphabet back to bytes and decodes them lossily. Added tokens are kept
// verbatim between the byte runs, as transformers.js does (HF maps them through the alphabet too,
// which only differs for added tokens with non-ASCII characters); so is a token with characters
// outside the alphabet.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string out, bytes;
    for (const auto& token : tokens) {
      if (added_ && added_->count(token)) {
        out += utf8_lossy(bytes);
        bytes.clear();
        out += token;
        continue;
      }
      const size_t mark = bytes.size();
      size_t i = 0;
      while (i < token.size()) {
        const int b = byte_level_byte(next_code_point(token, i));
        if (b < 0) {
          bytes.resize(mark);
          bytes += token;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
    }
    out += utf8_lossy(bytes);
    tokens = {std::move(out)};
  }
  void bind_added_tokens(const std::unordered_set<std::string>* added) override { added_ = added; }

 private:
  const std::unordered_set<std::string>* added_ = nullptr;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& token : tokens) token = pattern_.replace_all(token, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

int byte_token_value(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  int value = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = token[k];
    const int digit = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                             : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Runs of `<0xNN>` tokens become their UTF-8 text; a run that is not valid UTF-8 becomes one
// U+FFFD per byte, as HF `tokenizers` does.
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string run;
    size_t run_length = 0;
    auto flush = [&] {
      if (run_length == 0) return;
      if (find_invalid_utf8(run) == std::string::npos) {
        out.push_back(run);
      } else {
        for (size_t k = 0; k < run_length; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      run.clear();
      run_length = 0;
    };
    for (auto& token : tokens) {
      const int byte = byte_token_value(token);
      if (byte >= 0) {
        run.push_back(static_cast<char>(byte));
        ++run_length;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const auto& token : tokens) joined += token;
    tokens = {std::move(joined)};
  }
};

// Removes up to `start` leading and `stop` trailing copies of `content` from every token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    for (auto& token : tokens) {
      size_t begin = 0, end = token.size();
      for (size_t k = 0; k < start_ && token.compare(begin, content_.size(), content_) == 0 &&
                         begin + content_.size() <= end;
           ++k)
        begin += content_.size();
      for (size_t k = 0; k < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++k)
        end -= content_.size();
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string text;
      const auto& token = tokens[i];
      for (size_t pos = 0; pos < token.size();) {
        if (token.compare(pos, replacement_.size(), replacement_) == 0) {
          text.push_back(' ');
          pos += replacement_.size();
        } else {
          text.push_back(token[pos++]);
        }
      }
      // The prefix space the pre-tokenizer added: one leading space of the first token.
      if (i == 0 && strip_first_ && !text.empty() && text[0] == ' ') text.erase(0, 1);
      tokens[i] = std::move(text);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup)
      : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto& token = tokens[i];
      if (i != 0) {
        if (!prefix_.empty() && token.compare(0, prefix_.size(), prefix_) == 0)
          token.erase(0, prefix_.size());
        else
          token = " " + token;
      }
      if (cleanup_) {
        token = clean_up_tokenization(std::move(token));
        // HF's WordPiece cleanup has one rule more than transformers' clean-up.
        const size_t pos = token.find(" do not");
        if (pos != std::string::npos) {
          std::string fixed;
          size_t prev = 0;
          for (size_t at = pos; at != std::string::npos; at = token.find(" do not", prev)) {
            fixed.append(token, prev, at - prev);
            fixed.append(" don't");
            prev = at + 7;
          }
          fixed.append(token, prev);
          token = std::move(fixed);
        }
      }
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class BpeDecoder : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (suffix_.empty()) return;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string_view replacement = i + 1 == tokens.size() ? "" : " ";
      std::string text;
      size_t prev = 0;
      for (const auto& [begin, end] : find_literal(tokens[i], suffix_)) {
        text.append(tokens[i], prev, begin - prev);
        text.append(replacement);
        prev = end;
      }
      text.append(tokens[i], prev);
      tokens[i] = std::move(text);
    }
  }

 private:
  std::string suffix_;
};

size_t json_count(const nlohmann::json& spec, const char* key, std::string_view where,
                  std::string_view context) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return 0;
  if (!it->is_number_integer() || it->get<int64_t>() < 0)
    fail("[", where, "] expected ", context, " \"", key, "\" to be a count, found ", it->dump());
  return it->get<size_t>();
}

}  // namespace

std::unique_ptr<Decoder> make_sentencepiece_decoder(bool strip_leading_space) {
  std::vector<std::unique_ptr<Decoder>> steps;
  steps.push_back(std::make_unique<ReplaceDecoder>(
      Pattern(nlohmann::json{{"String", "\u2581"}}, "SentencePiece decoder", "Replace"), " "));
  steps.push_back(std::make_unique<ByteFallbackDecoder>());
  steps.push_back(std::make_unique<FuseDecoder>());
  if (strip_leading_space) steps.push_back(std::make_unique<StripDecoder>(" ", 1, 0));
  return std::make_unique<SequenceDecoder>(std::move(steps));
}

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }

std::unique_ptr<Decoder> make_wordpiece_decoder(std::string prefix, bool cleanup) {
  return std::make_unique<WordPieceDecoder>(std::move(prefix), cleanup);
}

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, std::string_view where) {
  if (spec.is_null()) return nullptr;
  const std::string type = json_type(spec, where, "decoder");
  const std::string context = "decoder " + type;
  if (type == "Sequence") {
    const auto it = spec.find("decoders");
    if (it == spec.end() || !it->is_array())
      fail("[", where, "] expected decoder Sequence to have a \"decoders\" array, found ",
           spec.dump().substr(0, 120));
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const auto& step : *it)
      if (auto d = make_decoder(step, where)) steps.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "ByteLevel") return make_byte_level_decoder();
  if (type == "Replace") {
    if (!spec.contains("pattern"))
      fail("[", where, "] expected ", context, " to have a \"pattern\"");
    return std::make_unique<ReplaceDecoder>(Pattern(spec["pattern"], where, context),
                                            json_string(spec, "content", where, context));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(json_string(spec, "content", where, context),
                                          json_count(spec, "start", where, context),
                                          json_count(spec, "stop", where, context));
  if (type == "Metaspace") {
    bool strip_first = json_bool(spec, "add_prefix_space", where, context, true);
    if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string())
      strip_first = spec["prepend_scheme"].get<std::string>() != "never";
    return std::make_unique<MetaspaceDecoder>(
        json_string(spec, "replacement", where, context, std::string("\u2581")), strip_first);
  }
  if (type == "WordPiece")
    return make_wordpiece_decoder(json_string(spec, "prefix", where, context, std::string("##")),
                                  json_bool(spec, "cleanup", where, context, true));
  if (type == "BPEDecoder")
    return std::make_unique<BpeDecoder>(
        json_string(spec, "suffix", where, context, std::string("</w>")));
  fail("[", where, "] expected a known decoder type (Sequence, ByteLevel, Replace, ByteFallback, ",
       "Fuse, Strip, Metaspace, WordPiece, BPEDecoder), found \"", type, "\"");
}

}  // namespace reft::tok
