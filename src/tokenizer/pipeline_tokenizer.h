#pragma once
// The one implementation of reft::Tokenizer: an HF pipeline assembled from components. Every
// backend (tokenizer.json, SentencePiece, vocab files) only differs in how it fills `Parts`.

#include <unordered_set>

#include "reft/tokenizer.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/components.h"

namespace reft::tok {

class PipelineTokenizer : public Tokenizer {
 public:
  struct Parts {
    std::unique_ptr<Normalizer> prepare;          // may be null: runs before the added-token split
    std::unique_ptr<Normalizer> normalizer;       // may be null
    std::unique_ptr<PreTokenizer> pre_tokenizer;  // may be null
    std::unique_ptr<Model> model;                 // required
    std::unique_ptr<PostProcessor> post_processor;  // may be null: sequences are concatenated
    std::unique_ptr<Decoder> decoder;               // may be null: tokens are joined with spaces
    AddedVocabulary added;                          // built by the constructor
    std::unordered_set<TokenId> extra_special;      // special ids besides the special added tokens
    bool clean_up_tokenization_spaces = false;
    /// Drops a leading id `drop_lead_before_special` when a special token follows it (non-legacy
    /// LlamaTokenizer: the "▁" it prepends to text that starts with a special token).
    std::optional<TokenId> drop_lead_before_special;
    /// SentencePiece models with add_dummy_prefix and remove_extra_whitespaces (TinyStories): a
    /// section of only spaces between added tokens ("</s> <s>") becomes this id ("▁"), as HF's
    /// tokenizer.json pipeline gives (strip, then prepend "▁"); SentencePiece alone would drop it.
    std::optional<TokenId> space_section_piece;
    std::string description;
  };
  /// Special-token roles, resolved by the loader.
  struct Roles {
    std::optional<int64_t> bos, eos, pad, unk;
  };

  PipelineTokenizer(Parts parts, Roles roles);

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const override;
  Encoding encode_pair(std::string_view first, std::string_view second,
                       bool add_special_tokens) const override;
  std::string decode(std::span<const int64_t> ids, bool skip_special_tokens) const override;
  std::vector<std::string> tokens(std::span<const int64_t> ids) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  bool is_special(int64_t id) const override {
    return special_.count(static_cast<TokenId>(id)) > 0;
  }
  std::string description() const override { return parts_.description; }

 private:
  std::vector<TokenId> encode_text(std::string_view text) const;
  Encoding finish(std::vector<Segment> segments, bool add_special_tokens) const;
  const std::string& token_of(int64_t id) const;

  Parts parts_;
  std::unordered_set<TokenId> special_;
  std::unordered_set<std::string> added_contents_;  // for the decoder
  int64_t vocab_size_ = 0;
};

}  // namespace reft::tok
