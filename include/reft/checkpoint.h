#pragma once
/// A model folder's weights: `model.safetensors`, or shards listed in
/// `model.safetensors.index.json` (`weight_map`: tensor name → shard file).

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reft/safetensors.h"

namespace reft {

class Checkpoint {
 public:
  /// Opens the weights of `dir` (single file or sharded). Every shard is validated; a name the
  /// index maps to a shard that lacks it, or a tensor present in two shards, is an error.
  static Checkpoint open(const std::filesystem::path& dir);

  /// All tensor names, sorted.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  /// The stored tensor (CPU, stored dtype, zero-copy). Throws reft::Error naming the tensor.
  torch::Tensor get(const std::string& name) const;
  /// Shape and dtype without materialising.
  const SafetensorsEntry& entry(const std::string& name) const;
  /// The files the weights come from.
  std::vector<std::filesystem::path> files() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // name → index into files_
};

}  // namespace reft
