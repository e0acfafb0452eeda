// libFuzzer target: the input is a tokenizer.json, loaded with the kJson backend and exercised.
#include "fuzz_util.h"
#include "tokenizer_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = reft::fuzz::scratch_dir();
  reft::fuzz::write_bytes(dir / "tokenizer.json", {reinterpret_cast<const char*>(data), size});
  try {
    auto tok = reft::Tokenizer::load(dir, {.backend = reft::TokenizerBackend::kJson});
    reft::fuzz::exercise_tokenizer(*tok);
  } catch (const reft::Error&) {
  }
  return 0;
}
