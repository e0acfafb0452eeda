// libFuzzer target for a model folder's tokenizer settings. The input is cut at NUL bytes into
// tokenizer_config.json \0 special_tokens_map.json \0 added_tokens.json (absent parts: no file);
// they sit next to a small fixed WordPiece vocab.txt, so the settings are applied to a tokenizer.
#include "fuzz_util.h"
#include "tokenizer_fuzz_common.h"

namespace {
constexpr std::string_view kVocab =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n<s>\n</s>\n<unk>\nhello\nworld\n,\n!\na\nb\n##s\n##ing\n"
    "it\n'\n2024\nx\ny\n";
constexpr const char* kNames[] = {"tokenizer_config.json", "special_tokens_map.json",
                                  "added_tokens.json"};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = reft::fuzz::scratch_dir();
  reft::fuzz::write_bytes(dir / "vocab.txt", kVocab);
  const auto parts = reft::fuzz::split_parts(data, size, 3);
  for (size_t i = 0; i < parts.size(); ++i) reft::fuzz::write_bytes(dir / kNames[i], parts[i]);
  try {
    auto tok = reft::Tokenizer::load(dir, {.backend = reft::TokenizerBackend::kVocabFiles,
                                           .clean_up_tokenization_spaces = true});
    reft::fuzz::exercise_tokenizer(*tok);
  } catch (const reft::Error&) {
  }
  return 0;
}
