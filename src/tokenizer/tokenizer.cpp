// Tokenizer::load: which files of a model folder are read (see include/reft/tokenizer.h).

#include "reft/tokenizer.h"

#include <unistd.h>

#include <cstdio>

#include "reft/error.h"
#include "tokenizer/loading.h"
#include "util/files.h"

namespace reft {

std::unique_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& dir) {
  return load(dir, TokenizerOptions{});
}

namespace {

std::unique_ptr<Tokenizer> load_checked(const std::filesystem::path& dir,
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
    // A FIFO or device is refused here, before a read could block.
    const int fd = open_regular_file(dir / "tokenizer.model");
    unsigned char first = 0;
    const ssize_t n = ::read(fd, &first, 1);
    ::close(fd);
    return n <= 0 || first == 0x0A;  // an empty or unreadable file is reported by the loader
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

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::filesystem::path& dir,
                                           const TokenizerOptions& options) {
  try {
    return load_checked(dir, options);
  } catch (const nlohmann::json::exception& e) {
    // A value of the wrong JSON type that a loader read without checking: still one clean line.
    fail("[", dir.string(), "] expected tokenizer files with values of the documented types, ",
         "found ", json_error_summary(e));
  }
}

}  // namespace reft
