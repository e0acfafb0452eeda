// libFuzzer target for GGUF files through the torch-free layer (reft/gguf.h). The first input
// byte picks how the rest is read:
//   even: from memory, parse_gguf_layout(bytes, where);
//   odd:  written to a scratch file and read through parse_gguf_layout(path) (the buffered
//         pread reader the CLI uses).
// A file that parses must keep the layer's promises (every tensor inside the file, aligned, of
// the size its dims and type give); the first row of every tensor whose type dequantizes is then
// expanded, and every metadata array element is read back through the typed accessors.
#include <algorithm>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "reft/error.h"
#include "reft/gguf.h"

namespace {

void check(const reft::GgufFile& f, std::string_view bytes) {
  if (f.file_size != bytes.size() || f.data_offset % f.alignment != 0) __builtin_trap();
  for (const auto& t : f.tensors) {
    const auto* info = reft::ggml_type_info(static_cast<uint32_t>(t.type));
    if (!info || t.dims.empty() || t.dims.size() > reft::kGgufMaxDims) __builtin_trap();
    if (t.offset % f.alignment != 0 || t.begin != f.data_offset + t.offset) __builtin_trap();
    if (t.begin > bytes.size() || t.nbytes > bytes.size() - t.begin) __builtin_trap();
    if (t.numel() / info->block_size * info->type_size != t.nbytes) __builtin_trap();
    if (!reft::can_dequantize(t.type) || t.nbytes == 0) continue;
    // The first row (dims[0] elements), at most 4096 of them.
    const uint64_t row = std::min<uint64_t>(t.dims[0], 4096) / info->block_size * info->block_size;
    std::vector<float> out(row);
    reft::dequantize_row(t.type, bytes.data() + t.begin, out.data(), static_cast<int64_t>(row));
  }
  for (const auto& [key, value] : f.metadata) {
    if (f.find(key) != &value) __builtin_trap();
    if (value.type != reft::GgufType::kArray || !value.raw.size()) continue;
    for (uint64_t i = 0; i < std::min<uint64_t>(value.count, 64); ++i) {
      try {
        value.float_at(i);
        value.int_at(i);
      } catch (const reft::Error&) {
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    if (data[0] % 2 == 0) {
      check(reft::parse_gguf_layout(bytes, "fuzz.gguf"), bytes);
    } else {
      const auto path = reft::fuzz::scratch_dir() / "model.gguf";
      reft::fuzz::write_bytes(path, bytes);
      check(reft::parse_gguf_layout(path), bytes);
    }
  } catch (const reft::Error&) {
  }
  return 0;
}
