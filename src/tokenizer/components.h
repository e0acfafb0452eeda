#pragma once
// The stages of an HF tokenizer pipeline, as in the `tokenizers` library:
//
//   text ─ added-token split ─ Normalizer ─ PreTokenizer ─ Model ─ PostProcessor ─► ids
//   ids ─► tokens ─ Decoder ─ clean-up ─► text
//
// Each stage is an interface with one implementation per HF `type`; `make_*` build them from the
// JSON objects of tokenizer.json and throw reft::Error naming `where` (the file) for unknown types
// and malformed fields. Offsets are not tracked: reft only needs ids and text.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "tokenizer/regex.h"

namespace reft::tok {

using TokenId = int32_t;

/// A piece of text on its way through pre-tokenization.
struct Piece {
  std::string text;
  bool at_start = false;  // starts at offset 0 of the input (Metaspace prepend_scheme "first")
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  /// Splits (and may rewrite) every piece; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

/// The vocabulary model: one pre-token ("word") to ids.
class Model {
 public:
  virtual ~Model() = default;
  /// Appends the ids of `word` to `out`.
  virtual void tokenize(std::string_view word, std::vector<TokenId>& out) const = 0;
  virtual std::optional<TokenId> token_to_id(std::string_view token) const = 0;
  /// The token of `id`, or nullptr when the model has none.
  virtual const std::string* id_to_token(TokenId id) const = 0;
  /// One past the largest id of the model.
  virtual TokenId size() const = 0;
  /// The unknown token, if the model has one.
  virtual std::optional<TokenId> unk_id() const { return std::nullopt; }
  /// Short description for logs, e.g. "BPE (128000 tokens, 280147 merges)".
  virtual std::string describe() const = 0;
};

/// Ids with their segment ids; one per input sequence before post-processing.
struct Segment {
  std::vector<int64_t> ids;
  std::vector<int64_t> type_ids;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  /// Rewrites the encodings of one or two sequences (HF `process_encodings`); may merge them.
  virtual void process(std::vector<Segment>& segments, bool add_special_tokens) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  /// Rewrites the token strings (HF `decode_chain`); the caller joins what remains.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  /// Tells the decoder which token strings are added tokens (the set outlives the decoder).
  virtual void bind_added_tokens(const std::unordered_set<std::string>* added) {}
};

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, std::string_view where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec,
                                                 std::string_view where);
/// `token_id` resolves token strings used by the post-processor (RoBERTa/BERT pairs).
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& spec,
                                                   std::string_view where);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, std::string_view where);

// ---- programmatic construction (SentencePiece and vocab-file folders, the builder) ----

/// `[bos] $A [eos]` / `[bos] $A [eos] [bos] $B [eos]` with type ids 0 / 1, as LlamaTokenizer's
/// `build_inputs_with_special_tokens` (an absent id leaves its slot out).
std::unique_ptr<PostProcessor> make_bos_eos_processor(std::optional<TokenId> bos,
                                                      std::optional<TokenId> eos);
/// BERT `[CLS] A [SEP] B [SEP]` (type ids 0…0 1…1).
std::unique_ptr<PostProcessor> make_bert_processor(TokenId cls, TokenId sep);
/// RoBERTa `<s> A </s></s> B </s>` (type ids all 0).
std::unique_ptr<PostProcessor> make_roberta_processor(TokenId cls, TokenId sep);

/// SentencePiece decoding: `▁` → space, `<0xNN>` pieces → bytes, and with `strip_leading_space`
/// the first leading space removed (the dummy prefix).
std::unique_ptr<Decoder> make_sentencepiece_decoder(bool strip_leading_space);
std::unique_ptr<Decoder> make_byte_level_decoder();
std::unique_ptr<Decoder> make_wordpiece_decoder(std::string prefix, bool cleanup);

std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex);
std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer();
std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars,
                                                 std::optional<bool> strip_accents, bool lowercase);

/// HF's `clean_up_tokenization`: " ." → ".", " n't" → "n't", … (tokenizer_config
/// `clean_up_tokenization_spaces`, WordPiece decoder `cleanup`).
std::string clean_up_tokenization(std::string text);

// ---- small JSON helpers shared by the loaders ----

/// An HF `pattern` field: `{"String": "…"}` (literal) or `{"Regex": "…"}`.
class Pattern {
 public:
  Pattern(const nlohmann::json& spec, std::string_view where, std::string_view context);
  MatchRanges find_all(std::string_view text) const;
  std::string replace_all(std::string_view text, std::string_view replacement) const;

 private:
  std::string literal_;
  std::optional<Regex> regex_;
};

/// `spec[key]` as a string / bool / int, `fallback` when absent or null; a wrong type is an error
/// naming `where` and `context` (e.g. "normalizer Replace").
std::string json_string(const nlohmann::json& spec, const char* key, std::string_view where,
                        std::string_view context, std::optional<std::string> fallback = {});
bool json_bool(const nlohmann::json& spec, const char* key, std::string_view where,
               std::string_view context, bool fallback);
/// The `type` field of a component object.
std::string json_type(const nlohmann::json& spec, std::string_view where, std::string_view kind);

}  // namespace reft::tok
