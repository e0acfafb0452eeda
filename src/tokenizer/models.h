#pragma once
// Vocabulary models: BPE (byte-level and SentencePiece-style with byte fallback), WordPiece and
// WordLevel, plus the vocabulary table they share.

#include <array>
#include <mutex>
#include <unordered_map>

#include "tokenizer/components.h"

namespace reft::tok {

/// Token strings by id and an open-addressing index from token to id (no second copy of the
/// strings: the index stores ids and compares against the table).
class Vocab {
 public:
  Vocab() = default;
  /// `entries` are (token, id) pairs; ids may have holes. A negative id or a token listed twice
  /// is an error naming `where`.
  Vocab(std::vector<std::pair<std::string, int64_t>> entries, std::string_view where);
  /// Tokens by id, 0..n-1, without holes.
  explicit Vocab(std::vector<std::string> tokens, std::string_view where);

  std::optional<TokenId> find(std::string_view token) const;
  const std::string* token(TokenId id) const {
    return id >= 0 && id < static_cast<TokenId>(tokens_.size()) && present_[id] ? &tokens_[id]
                                                                                : nullptr;
  }
  TokenId size() const { return static_cast<TokenId>(tokens_.size()); }
  size_t count() const { return count_; }

 private:
  void build_index(std::string_view where);

  std::vector<std::string> tokens_;
  std::vector<uint8_t> present_;
  std::vector<TokenId> slots_;  // -1 = empty
  size_t count_ = 0;
};

/// One BPE merge rule "a b" as it appears in a file.
struct MergeRule {
  std::string left, right;
};

/// A merge rule resolved to the ids of its two parts.
using MergePair = std::pair<TokenId, TokenId>;

/// Resolves `rule` (merge number `rank`) against `vocab`; an empty string on success, else what
/// went wrong ("merge #3 'a b' … found 'b' missing from the vocabulary").
std::string resolve_merge(const Vocab& vocab, std::string_view left, std::string_view right,
                          size_t rank, MergePair& out);

/// Resolves all `rules`; a part outside the vocabulary is an error naming `where`.
std::vector<MergePair> resolve_merges(const Vocab& vocab, const std::vector<MergeRule>& rules,
                                      std::string_view where);

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;  // Llama-3: a pre-token that is a vocabulary entry is kept whole
};

class BpeModel : public Model {
 public:
  /// `merges` in rank order; a merge whose result is missing from `vocab` is an error naming
  /// `where` and the merge's index.
  BpeModel(Vocab vocab, const std::vector<MergePair>& merges, BpeOptions options,
           std::string_view where);

  void tokenize(std::string_view word, std::vector<TokenId>& out) const override;
  std::optional<TokenId> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  const std::string* id_to_token(TokenId id) const override { return vocab_.token(id); }
  TokenId size() const override { return vocab_.size(); }
  std::optional<TokenId> unk_id() const override { return unk_id_; }
  std::string describe() const override;

 private:
  struct MergeValue {
    int32_t rank;
    TokenId new_id;
  };
  struct MergeSlot {
    uint64_t key;  // left << 32 | right; kEmptySlot when free
    MergeValue value;
  };
  static constexpr uint64_t kEmptySlot = ~0ULL;
  const MergeValue* find_merge(TokenId left, TokenId right) const;
  void merge_word(std::string_view word, std::vector<TokenId>& out) const;

  Vocab vocab_;
  BpeOptions options_;
  std::optional<TokenId> unk_id_;
  std::array<TokenId, 256> byte_ids_{};  // "<0xNN>" tokens for byte fallback, -1 if absent
  std::vector<MergeSlot> merge_slots_;   // open addressing, linear probing
  size_t merge_count_ = 0;

  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mutex_;
  struct WordHash {
    using is_transparent = void;
    size_t operator()(std::string_view word) const { return std::hash<std::string_view>{}(word); }
  };
  mutable std::unordered_map<std::string, std::vector<TokenId>, WordHash, std::equal_to<>> cache_;
};

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;
};

class WordPieceModel : public Model {
 public:
  WordPieceModel(Vocab vocab, WordPieceOptions options, std::string_view where);
  void tokenize(std::string_view word, std::vector<TokenId>& out) const override;
  std::optional<TokenId> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  const std::string* id_to_token(TokenId id) const override { return vocab_.token(id); }
  TokenId size() const override { return vocab_.size(); }
  std::optional<TokenId> unk_id() const override { return unk_id_; }
  std::string describe() const override;

 private:
  Vocab vocab_;
  WordPieceOptions options_;
  TokenId unk_id_ = 0;
};

/// Builds the model of tokenizer.json from its `model` object; the vocabulary and the merges
/// come separately from the streaming reader.
std::unique_ptr<Model> make_model(const nlohmann::json& spec, Vocab vocab,
                                  const std::vector<MergePair>& merges, std::string_view where);

}  // namespace reft::tok
