// Tokenizer::load: which files of a model folder are read (see include/reft/tokenizer.h).

#include "reft/tokenizer.h"

#include <cstdio>

#include "reft/error.h"
#include "tokenizer/loading.h"

namespace reft {

std::unique_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& dir) {
  return load(dir, TokenizerOptions{});
}

std::unique_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& dir,
                                           const TokenizerOptions& options) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir))
    fail("[", dir.string(), "] expected a model folder with tokenizer files, found ",
         fs::exists(dir) ? "a file" : "no such folder");
  const bool has_json = fs::exists(dir / "tokenizer.json");
  const bool has_sp = fs::exists(dir / "tokenizer.model");
  // A SentencePiece ModelProto starts with its first piece (field 1, length-delimited: 0x0A);
  // some repos ship a tiktoken text file under the same name, which the auto backend passes over
  // when tokenizer.json is there.
  const bool sp_is_protobuf = has_sp && [&] {
    std::FILE* file = std::fopen((dir / "tokenizer.model").c_str(), "rb");
    if (!file) return true;  // let the loader report it
    const int first = std::fgetc(file);
    std::fclose(file);
    return first == 0x0A || first == EOF;  // an empty file is reported by the loader
  }();
  const bool has_bpe_files = fs::exists(dir / "vocab.json") || fs::exists(dir / "merges.txt");
  const bool has_vocab_files = has_bpe_files || fs::exists(dir / "vocab.txt");
  tok::TokenizerConfig config = tok::read_tokenizer_config(dir);
  config.honor_clean_up = options.clean_up_tokenization_spaces;
  switch (options.backend) {
    case TokenizerBackend::kAuto:
      if (has_sp && (sp_is_protobuf || !has_json)) return tok::load_sentencepiece(dir, config);
      if (has_json) return tok::load_tokenizer_json(dir, config);
      if (has_vocab_files) return tok::load_vocab_files(dir, config);
      fail("[", dir.string(),
           "] expected tokenizer.model, tokenizer.json, vocab.json + merges.txt ",
           "or vocab.txt, found none of them");
    case TokenizerBackend::kJson:
      return tok::load_tokenizer_json(dir, config);  // names the missing file
    case TokenizerBackend::kSentencePiece:
      return tok::load_sentencepiece(dir, config);
    case TokenizerBackend::kVocabFiles:
      if (!has_vocab_files)
        fail("[", dir.string(), "] expected vocab.json + merges.txt or vocab.txt, found neither");
      return tok::load_vocab_files(dir, config);
  }
  fail("[", dir.string(), "] expected a known tokenizer backend, found ",
       static_cast<int>(options.backend));
}

}  // namespace reft
