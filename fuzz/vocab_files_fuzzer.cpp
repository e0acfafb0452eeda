// libFuzzer target for the vocab-file tokenizers (kVocabFiles backend). The input is cut at NUL
// bytes: with one NUL it is vocab.json \0 merges.txt (byte-level BPE); without one it is a
// vocab.txt (WordPiece with BERT's basic tokenizer).
#include "fuzz_util.h"
#include "tokenizer_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = reft::fuzz::scratch_dir();
  const auto parts = reft::fuzz::split_parts(data, size, 2);
  if (parts.size() == 2) {
    reft::fuzz::write_bytes(dir / "vocab.json", parts[0]);
    reft::fuzz::write_bytes(dir / "merges.txt", parts[1]);
  } else {
    reft::fuzz::write_bytes(dir / "vocab.txt", parts[0]);
  }
  try {
    auto tok = reft::Tokenizer::load(dir, {.backend = reft::TokenizerBackend::kVocabFiles});
    reft::fuzz::exercise_tokenizer(*tok);
  } catch (const reft::Error&) {
  }
  return 0;
}
