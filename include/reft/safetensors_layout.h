#pragma once
/// The torch-free half of safetensors reading: validating a file's bytes (header length, JSON
/// header, dtypes, shapes, offsets) and a sharded checkpoint's `model.safetensors.index.json`.
/// reft/safetensors.h maps files and hands out tensors on top of it; the fuzz targets
/// (fuzz/safetensors_fuzzer.cpp) call it without libtorch.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace reft {

/// One tensor entry of a safetensors header.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "BF16", "I64", …
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets in the data section
};

/// The bytes per element of a safetensors dtype ("F32" → 4), 0 for a name safetensors lacks.
int safetensors_itemsize(std::string_view dtype);

/// Parses and validates a header (the JSON text) against a data section of `data_size` bytes:
/// a JSON object of entries, known dtypes, non-negative shapes, offsets inside the data section
/// and non-overlapping, nbytes = numel × itemsize. Entries come sorted by offset; `metadata`
/// (optional) receives `__metadata__`. Throws reft::Error "[where] …" naming the tensor.
std::vector<SafetensorsEntry> parse_safetensors_header(
    const std::string& json_text, uint64_t data_size, const std::string& where,
    std::map<std::string, std::string>* metadata);

/// A whole file's validated layout.
struct SafetensorsLayout {
  std::vector<SafetensorsEntry> entries;  // sorted by data offset
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the data section starts: 8 + header length
};

/// Validates the `size` bytes of a safetensors file (8-byte little-endian header length, at most
/// 100 MiB and inside the file; the header then as parse_safetensors_header() checks it).
SafetensorsLayout parse_safetensors_layout(const uint8_t* bytes, uint64_t size,
                                           const std::string& where);

/// A sharded checkpoint's index: the shard files in the order the index first names them, and
/// for each tensor the position of its shard in `shards`.
struct ShardIndex {
  std::vector<std::filesystem::path> shards;
  std::map<std::string, size_t> shard_of;
};

/// Reads `dir`/model.safetensors.index.json: an object whose `weight_map` maps tensor names to
/// shard file names, each a plain name inside `dir` (no `..`, separators or symlinks out of it).
/// Does not open the shards. Throws reft::Error naming the index and the entry.
ShardIndex read_shard_index(const std::filesystem::path& dir);

}  // namespace reft
