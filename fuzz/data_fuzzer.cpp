// libFuzzer target for training data files (reft::read_records). The first byte picks the
// extension (0: .jsonl, 1: .json, 2: .csv, by value mod 3); the rest is the file.
#include "fuzz_util.h"
#include "reft/data.h"
#include "reft/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* kExt[] = {"data.jsonl", "data.json", "data.csv"};
  const auto& dir = reft::fuzz::scratch_dir();
  const auto path = dir / kExt[data[0] % 3];
  reft::fuzz::write_bytes(path, {reinterpret_cast<const char*>(data + 1), size - 1});
  try {
    size_t n = 0;
    for (const auto& record : reft::read_records(path)) n += record.fields.size();
    (void)n;
  } catch (const reft::Error&) {
  }
  return 0;
}
