#pragma once
// What the tokenizer loaders share: reading files with errors that name them, the settings of
// tokenizer_config.json / special_tokens_map.json / added_tokens.json, and one loader per backend.

#include <filesystem>
#include <functional>
#include <map>

#include "reft/tokenizer.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/pipeline_tokenizer.h"

namespace reft::tok {

/// The bytes of `path`; a missing or unreadable file is an error naming it.
std::string read_file_bytes(const std::filesystem::path& path);

/// A read-only memory map of a whole file (no copy of a 10 MB tokenizer.json).
class MappedFile {
 public:
  /// Maps `path`; a missing or unreadable file is an error naming it.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view data() const { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

/// Parses `text` (the content of `path`) as JSON; a syntax error names the file and position.
nlohmann::json parse_json(const std::string& text, const std::filesystem::path& path);

/// The HF settings of a model folder that the tokenizer files themselves do not carry.
struct TokenizerConfig {
  std::optional<bool> add_bos_token, add_eos_token;
  std::optional<bool> clean_up_tokenization_spaces;
  std::optional<bool> do_lower_case, strip_accents, tokenize_chinese_chars, add_prefix_space;
  std::optional<bool> legacy;  // LlamaTokenizer / T5Tokenizer SentencePiece handling
  std::string tokenizer_class;
  /// "bos_token" → "<s>", for bos/eos/unk/pad/sep/cls/mask; special_tokens_map.json wins over
  /// tokenizer_config.json as in transformers.
  std::map<std::string, std::string> role_tokens;
  std::vector<std::string> additional_special_tokens;
  std::vector<AddedToken> added_tokens;  // added_tokens_decoder, then added_tokens.json
  std::vector<std::string> files_read;   // for the description
  /// TokenizerOptions::clean_up_tokenization_spaces: whether decode honours the flag above.
  bool honor_clean_up = false;
};

/// Reads tokenizer_config.json, special_tokens_map.json and added_tokens.json where present.
TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir);

/// Whether transformers rebuilds this class's post-processor from add_bos_token/add_eos_token
/// (LlamaTokenizerFast and relatives do; PreTrainedTokenizerFast does not).
bool uses_bos_eos_flags(const std::string& tokenizer_class);

/// Adds the config's added tokens, role tokens and additional special tokens to `parts` (those
/// that resolve to an id through `resolve`) and returns the resolved roles.
PipelineTokenizer::Roles apply_config(
    const TokenizerConfig& config, PipelineTokenizer::Parts& parts,
    const std::function<std::optional<TokenId>(const std::string&)>& resolve);

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& dir,
                                               const TokenizerConfig& config);
std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& dir,
                                              TokenizerConfig config);
/// vocab.json + merges.txt (byte-level BPE) or vocab.txt (WordPiece with BERT's basic tokenizer).
std::unique_ptr<Tokenizer> load_vocab_files(const std::filesystem::path& dir,
                                            const TokenizerConfig& config);

}  // namespace reft::tok
