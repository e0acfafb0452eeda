// libFuzzer target for safetensors files and sharded checkpoints' indexes, through the torch-free
// layer under SafetensorsFile and Checkpoint (reft/safetensors_layout.h). The first input byte
// picks what the rest is:
//   even: one safetensors file, validated from memory as SafetensorsFile::open validates its
//         mapping;
//   odd:  model.safetensors.index.json, then the shards 1.safetensors and 2.safetensors, the
//         three separated by kFileMarker and written to a scratch folder; the index is read as
//         Checkpoint::open reads it and every shard it names is validated.
#include <string>

#include "fuzz_util.h"
#include "reft/error.h"
#include "reft/safetensors_layout.h"
#include "util/files.h"

namespace {

// What a caller relies on: every entry inside the data section, in offset order.
void check(const reft::SafetensorsLayout& layout, uint64_t file_size) {
  uint64_t previous_begin = 0;
  for (const auto& e : layout.entries) {
    if (e.begin > e.end || e.end > file_size - layout.data_offset || e.begin < previous_begin)
      __builtin_trap();
    previous_begin = e.begin;
  }
}

void fuzz_index(std::string_view rest) {
  const auto& dir = reft::fuzz::scratch_dir();
  const auto parts =
      reft::fuzz::split_files(reinterpret_cast<const uint8_t*>(rest.data()), rest.size(), 3);
  const char* kNames[] = {"model.safetensors.index.json", "1.safetensors", "2.safetensors"};
  for (size_t i = 0; i < parts.size(); ++i) reft::fuzz::write_bytes(dir / kNames[i], parts[i]);
  const auto index = reft::read_shard_index(dir);
  for (const auto& shard : index.shards) {
    const std::string bytes = reft::read_file(shard, size_t{1} << 20);
    const auto layout = reft::parse_safetensors_layout(
        reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), shard.string());
    check(layout, bytes.size());
  }
  for (const auto& [name, i] : index.shard_of)
    if (i >= index.shards.size()) __builtin_trap();  // read_shard_index broke its contract
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if (data[0] % 2 == 0) {
      check(reft::parse_safetensors_layout(data + 1, size - 1, "fuzz.safetensors"), size - 1);
    } else {
      fuzz_index({reinterpret_cast<const char*>(data + 1), size - 1});
    }
  } catch (const reft::Error&) {
  }
  return 0;
}
