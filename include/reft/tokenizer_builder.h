#pragma once
/// Training a small byte-level BPE tokenizer (GPT-2 style), for the seeded random demo models of
/// `reft init-model`: the result is a real tokenizer.json that `Tokenizer::load` reads.
///
/// Id layout of a built tokenizer (every id < vocab_size decodes):
///   0 `<unk>`, 1 `<s>` (BOS), 2 `</s>` (EOS), 3 `<pad>`   special added tokens
///   4 … 259                                              the 256 bytes, in byte order
///   260 …                                                learned merges, most frequent first
///   … vocab_size-1                                       `<|unused_0|>`, `<|unused_1|>`, … when
///   the
///                                                        corpus yields fewer merges than needed

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace reft {

inline constexpr int64_t kBuiltUnkId = 0;
inline constexpr int64_t kBuiltBosId = 1;
inline constexpr int64_t kBuiltEosId = 2;
inline constexpr int64_t kBuiltPadId = 3;
/// Specials plus bytes: the smallest possible vocab_size.
inline constexpr int kBuiltMinVocabSize = 260;

/// Options of the byte-level BPE trainer.
struct ByteLevelBpeOptions {
  /// A pair of symbols is merged only if it occurs at least this often in the corpus.
  int min_frequency = 2;
};

/// Trains a byte-level BPE on `corpus` (pre-tokenized with GPT-2's regex) and returns a complete
/// tokenizer.json: ByteLevel pre-tokenizer and decoder, a TemplateProcessing post-processor that
/// prepends `<s>`, merges as [left, right] pairs. Deterministic: equal counts merge the pair with
/// the smaller ids first. Throws reft::UsageError when vocab_size < kBuiltMinVocabSize.
std::string build_byte_level_bpe_json(std::string_view corpus, int vocab_size,
                                      const ByteLevelBpeOptions& options = {});

/// The tokenizer_config.json that goes with build_byte_level_bpe_json for the same vocab_size:
/// add_bos_token true, add_eos_token false, the four special tokens and their added_tokens_decoder.
std::string build_byte_level_bpe_config_json(int vocab_size);

/// Writes tokenizer.json and tokenizer_config.json into `dir` (created if needed). Throws
/// reft::Error naming a file that cannot be written.
void write_byte_level_bpe_tokenizer(const std::filesystem::path& dir, std::string_view corpus,
                                    int vocab_size, const ByteLevelBpeOptions& options = {});

}  // namespace reft
