#pragma once
/// safetensors files: memory-mapped, fully validated reading and atomic writing.
///
/// Format: 8-byte little-endian header length N, N bytes of JSON
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`,
/// then the data section; offsets are relative to its start.

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reft/safetensors_layout.h"

namespace reft {

/// A validated, memory-mapped safetensors file. Tensors are views of the mapping (zero-copy);
/// the mapping stays alive as long as the file object or any tensor made from it.
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  /// Maps and validates `path`: header length within the file, a JSON object of entries, known
  /// dtypes, non-negative shapes, offsets inside the data section and non-overlapping,
  /// nbytes = numel × itemsize. Throws reft::Error "[path] …" naming the tensor and the problem.
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// Entries in file order of their data offsets.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  /// The entry named `name`, or nullptr.
  const SafetensorsEntry* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  /// `__metadata__` (string → string); empty when absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  /// The tensor `name` on the CPU in its stored dtype, sharing memory with the mapping (a copy
  /// only when the data is not aligned to its element size). The mapping is private and
  /// writable, so an accidental in-place write changes the process's copy, never the file.
  /// Throws reft::Error when `name` is absent.
  torch::Tensor tensor(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

/// The safetensors dtype string of a torch dtype ("F32", "BF16", …); throws for unsupported.
std::string safetensors_dtype(torch::Dtype dtype);
/// The torch dtype of a safetensors dtype string; throws reft::Error for unknown ones.
torch::Dtype torch_dtype_of(const std::string& safetensors_dtype);

/// Writes `tensors` (in the given order; each is made contiguous and moved to the CPU) with
/// optional metadata. The file is written to a temporary name and renamed, so readers never see
/// a partial file. Duplicate names are an error.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// Loads every tensor of a file into a name → tensor map (zero-copy views).
std::map<std::string, torch::Tensor> load_safetensors(const std::filesystem::path& path);

}  // namespace reft
