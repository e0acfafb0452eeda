#pragma once
// Internal helpers shared by the architecture files: the config.json reader (reft/model_config.h,
// torch-free) and a weight builder whose prefixes follow the HF module tree.

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "reft/checkpoint.h"
#include "reft/model.h"
#include "reft/model_config.h"

namespace reft {

/// Makes a weight for a name and shape instead of reading it (random models for presets/tests).
using WeightSynthesizer =
    std::function<torch::Tensor(const std::string& name, const std::vector<int64_t>& shape)>;

/// Everything an architecture needs to build itself.
struct ModelSource {
  std::filesystem::path dir;
  ConfigReader config;
  std::optional<ConfigReader> generation_config;
  std::optional<Checkpoint> checkpoint;  // absent when `synthesize` makes the weights
  LoadOptions options;
  WeightSynthesizer synthesize;
};

/// Builds the model `config` describes through the registry (shared by load_model and presets).
std::unique_ptr<Model> build_model(const ModelSource& source);

/// Hands out checkpoint tensors by HF name with the expected shape, converted to the compute
/// dtype and device, and remembers which names were used, so that loading is total: a missing
/// tensor fails at `get`, an unused one at `finish`.
class WeightBuilder {
 public:
  explicit WeightBuilder(const ModelSource& source);

  /// A builder for the submodule `prefix` (e.g. "model.layers.3.").
  WeightBuilder sub(const std::string& prefix) const;

  /// The tensor `prefix + name`, checked against `shape`; registered as a parameter of the model.
  torch::Tensor get(const std::string& name, std::vector<int64_t> shape) const;
  /// Like get, but returns an undefined tensor when the checkpoint lacks it.
  torch::Tensor get_optional(const std::string& name, std::vector<int64_t> shape) const;
  bool contains(const std::string& name) const;
  /// Marks `prefix + name` as known-but-unused (e.g. HF's persistent rotary inv_freq buffers).
  void ignore(const std::string& name) const;
  /// Registers a tensor computed from loaded ones (e.g. a fused projection) under `name`
  /// without taking it from the checkpoint.
  void register_parameter(const std::string& name, const torch::Tensor& t) const;

  /// Fails listing checkpoint tensors no module took. Returns the parameters in load order.
  std::vector<std::pair<std::string, torch::Tensor>> finish() const;

  torch::TensorOptions options() const;

 private:
  struct State {
    const ModelSource* source;
    std::set<std::string> used;
    std::vector<std::pair<std::string, torch::Tensor>> params;
    std::map<std::string, size_t> param_index;
  };
  WeightBuilder(std::shared_ptr<State> state, std::string prefix)
      : state_(std::move(state)), prefix_(std::move(prefix)) {}
  std::shared_ptr<State> state_;
  std::string prefix_;
};

/// Fills the fields of ModelInfo every architecture shares (eos ids from generation_config.json,
/// stored dtype, fingerprint) after the architecture has set its shapes.
void finish_model_info(const ModelSource& source,
                       const std::vector<std::pair<std::string, torch::Tensor>>& params,
                       ModelInfo& info);

// ---- registry ----
using ArchitectureLoader = std::unique_ptr<Model> (*)(const ModelSource&);
struct ArchitectureEntry {
  const char* name;
  ArchitectureLoader load;
};
/// The loader for config.json's architectures[0]; throws naming the known ones.
ArchitectureLoader architecture_loader(const ConfigReader& config);
/// The architectures load_model dispatches to (src/models/registry.cpp), one line each.
const std::vector<ArchitectureEntry>& architecture_registry();

}  // namespace reft
