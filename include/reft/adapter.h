#pragma once
/// Adapter directories: `reft_config.json` (sites, positions, types, ranks, dtypes, the prompt
/// template, the base model's fingerprint) + `interventions.safetensors`. Written atomically.

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "reft/adapter_files.h"
#include "reft/reft_model.h"

namespace reft {

struct AdapterMeta {
  std::string template_name = "none";  // prompt template used in training; generation applies it
  std::string task = "causal_lm";      // or "classification"
  nlohmann::json extra =
      nlohmann::json::object();  // task data (labels, head shape), training summary
};

/// Writes `dir` (replacing it atomically). `extra_tensors` (e.g. a classification head) are stored
/// beside the interventions under their own names.
void save_adapter(const ReftModel& reft, const std::filesystem::path& dir,
                  const AdapterMeta& meta = {},
                  const std::vector<std::pair<std::string, torch::Tensor>>& extra_tensors = {});

struct LoadedAdapter {
  std::unique_ptr<ReftModel> reft;
  AdapterMeta meta;
  std::vector<std::pair<std::string, torch::Tensor>> extra_tensors;
};

/// Loads an adapter onto `base`. A different base model (fingerprint, architecture or shape) is a
/// reft::Error naming both, unless `allow_base_mismatch` (then only the shapes must agree).
LoadedAdapter load_adapter(Model& base, const std::filesystem::path& dir,
                           bool allow_base_mismatch = false);

/// Refuses (UsageError naming `where`) an adapter that cannot edit a generation: a classification
/// adapter (a head, no LM loss) or one with interchange interventions (they need a source run).
/// Causal-LM and steering adapters pass.
void require_generation_adapter(const LoadedAdapter& adapter, const std::string& where);


}  // namespace reft
