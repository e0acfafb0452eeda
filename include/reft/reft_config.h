#pragma once
/// ReFT configuration in pyreft's vocabulary: representations (layer, component,
/// low_rank_dimension, intervention type), positions and share_weights.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "reft/intervention.h"
#include "reft/model.h"
#include "reft/positions.h"

namespace reft {

/// One intervention ⟨Φ, P, L⟩: its site, its module options and which part of the position spec
/// it receives.
struct RepresentationConfig {
  int64_t layer = 0;
  Component component = Component::kBlockOutput;
  InterventionOptions intervention;  // embed_dim is filled from the model
  PositionPart part = PositionPart::kAll;
};

struct ReftConfig {
  std::vector<RepresentationConfig> representations;
  std::string positions = "l1";  // PositionSpec text
  bool share_weights = false;

  /// pyreft's layout for `layers` × one intervention type: with share_weights, or a spec that is
  /// not "fN+lM" with both parts, one intervention per layer sees every position; otherwise
  /// (untied) the list is [prefix interventions for each layer…, suffix interventions for each
  /// layer…].
  static ReftConfig build(const std::vector<int64_t>& layers, Component component,
                          const InterventionOptions& options, const std::string& positions,
                          bool share_weights);

  /// Reads either the expanded form written by to_json ({"representations": [...], "positions",
  /// "share_weights"}) or the compact form ({"layers": "3;9", "component", "intervention",
  /// "low_rank_dimension", "positions", "share_weights", "dropout", "act_fn", …}). Errors name
  /// `where` and the field. `num_layers` resolves "layers": "all" (−1: unknown).
  static ReftConfig from_json(const nlohmann::json& json, const std::string& where,
                              int64_t num_layers = -1);
  nlohmann::json to_json() const;

  /// Checks the config against a model: layers in range, rank ≤ hidden size, a parsable position
  /// spec. Throws UsageError with a clear line.
  void validate(const ModelInfo& model) const;
};

/// "3;9", "3,9", "all", "0-4" → layer indices, checked against num_layers.
std::vector<int64_t> parse_layers(std::string_view spec, int64_t num_layers);

}  // namespace reft
