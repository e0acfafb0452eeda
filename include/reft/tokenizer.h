#pragma once
/// Tokenizers for HuggingFace model folders.
///
/// `Tokenizer::load(dir)` (backend kAuto) reads, in order of preference:
///   1. `tokenizer.model` (SentencePiece protobuf) through libsentencepiece, wrapped the way
///      transformers' slow `LlamaTokenizer` wraps it (added/special tokens split off first, BOS/EOS
///      from `add_bos_token`/`add_eos_token`, `legacy`). Preferred over tokenizer.json because the
///      reference numbers (pyreft) come from the slow tokenizer and SentencePiece's normalizer spec
///      (add_dummy_prefix, remove_extra_whitespaces) is the ground truth;
///   2. `tokenizer.json` (HF `tokenizers` format): BPE (byte-level: GPT-2 / Llama-3 / Qwen;
///      SentencePiece-style with byte fallback: Llama-2 / Mistral / TinyStories), WordPiece (BERT)
///      and WordLevel, with the normalizers, pre-tokenizers, post-processors and decoders these
///      use;
///   3. `vocab.json` + `merges.txt` (GPT-2 / RoBERTa byte-level BPE) or `vocab.txt` (BERT
///      WordPiece with BERT's basic tokenizer).
/// `tokenizer_config.json`, `special_tokens_map.json` and `added_tokens.json`, when present,
/// supply `add_bos_token` / `add_eos_token`, the special-token names and the added tokens.
/// Every malformed or unsupported file is a `reft::Error` naming the file. See docs/tokenizers.md.
///
/// A loaded tokenizer is immutable; all methods are safe to call from several threads.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace reft {

/// Token ids plus the segment ids (BERT `token_type_ids`) of one encoded text or text pair.
struct Encoding {
  std::vector<int64_t> ids;
  std::vector<int64_t> type_ids;  // same length as ids; all 0 for a single text
};

/// Which files of a model folder `Tokenizer::load` reads.
enum class TokenizerBackend {
  kAuto,  ///< tokenizer.model if it is SentencePiece, else tokenizer.json, else vocab files
  kJson,  ///< tokenizer.json (fast-tokenizer semantics, as transformers.js)
  kSentencePiece,  ///< tokenizer.model (slow-tokenizer semantics)
  kVocabFiles,     ///< vocab.json + merges.txt, or vocab.txt
};

/// Options of `Tokenizer::load`.
struct TokenizerOptions {
  TokenizerBackend backend = TokenizerBackend::kAuto;
  /// Apply tokenizer_config.json's `clean_up_tokenization_spaces` in `decode` (" ." → ".",
  /// " 's" → "'s", …; true when absent) as Python transformers 4.x does. Off by default: the
  /// clean-up changes text that never had those spaces removed (Llama-3: "and 'quoted'" →
  /// "and'quoted'"), and the reference decodes (transformers.js goldens) do not apply it.
  bool clean_up_tokenization_spaces = false;
};

class Tokenizer {
 public:
  /// Loads the tokenizer of a model folder (see the file comment for the search order).
  /// Throws reft::Error naming the file when it is missing, malformed or unsupported.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir);

  /// Loads with an explicit backend; a backend whose files are missing is a reft::Error naming
  /// the missing file.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir,
                                         const TokenizerOptions& options);

  virtual ~Tokenizer() = default;

  /// Encodes `text` (UTF-8; invalid UTF-8 is a reft::Error). With `add_special_tokens` the
  /// post-processor's tokens are added (BOS for Llama-2-style tokenizers when `add_bos_token`,
  /// `[CLS] … [SEP]` for BERT, `<s> … </s>` for RoBERTa), exactly as HF
  /// `tokenizer(text, add_special_tokens=…)` does. Added and special tokens written in the text
  /// (e.g. "</s>") become their ids.
  virtual std::vector<int64_t> encode(std::string_view text,
                                      bool add_special_tokens = true) const = 0;

  /// Encodes a text pair (sentence-pair classification) with the pair template of the
  /// post-processor; `type_ids` marks the second segment where the model uses segment ids.
  virtual Encoding encode_pair(std::string_view first, std::string_view second,
                               bool add_special_tokens = true) const = 0;

  /// Decodes ids to text as HF `tokenizer.decode(ids, skip_special_tokens=…)` does (see
  /// TokenizerOptions::clean_up_tokenization_spaces). Byte sequences that are not valid UTF-8
  /// become U+FFFD. Ids outside the vocabulary are a reft::Error.
  virtual std::string decode(std::span<const int64_t> ids,
                             bool skip_special_tokens = false) const = 0;

  /// The token strings (vocabulary pieces) of `ids`, e.g. "▁He" or "Ġworld". Throws reft::Error
  /// for ids outside the vocabulary.
  virtual std::vector<std::string> tokens(std::span<const int64_t> ids) const = 0;

  /// The id of a vocabulary piece or added token, if it exists.
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;

  /// Number of ids (vocabulary plus added tokens): every valid id is < vocab_size().
  virtual int64_t vocab_size() const = 0;

  /// Whether `id` is a special token (skipped by `decode(…, skip_special_tokens=true)`).
  virtual bool is_special(int64_t id) const = 0;

  /// One line for logs: the file and backend used, the model type and size.
  virtual std::string description() const { return {}; }

  /// Special tokens from tokenizer_config.json / special_tokens_map.json / the tokenizer itself.
  std::optional<int64_t> bos_id() const { return bos_id_; }
  std::optional<int64_t> eos_id() const { return eos_id_; }
  std::optional<int64_t> pad_id() const { return pad_id_; }
  std::optional<int64_t> unk_id() const { return unk_id_; }

 protected:
  std::optional<int64_t> bos_id_, eos_id_, pad_id_, unk_id_;
};

}  // namespace reft
