#pragma once
/// Activation tools: collecting representations at sites × positions, and steering vectors
/// (mean difference of contrastive representations) applied as a constant-source addition.
///
///   auto acts = reft::collect_activations(*model, sequences, {.layers = {1, 2}});
///   reft::save_activations(acts, "acts.safetensors");
///   auto v = reft::steering_vector(*model, positive, negative, {.layer = 2});
///   auto steer = reft::make_steering_model(*model, v, /*alpha=*/4.0, /*layer=*/2);
///   auto hooks = steer->generation_hooks(/*intervene_generated=*/true);  // then generate(...)
///
/// Dimension legend: N collected rows, D hidden.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "reft/model.h"
#include "reft/reft_model.h"

namespace reft {

/// What collect_activations records: the site (each of `layers` × `component`) and positions.
struct CollectOptions {
  std::vector<int64_t> layers;  // each must be < num_layers
  Component component = Component::kBlockOutput;
  /// Positions per sequence (positions.h; the whole sequence is the "prompt"): "l1" the last
  /// token, "all", "f1+l1", or an explicit list "0,3,-1".
  std::string positions = "l1";
  int64_t batch_size = 16;
};

/// Representations gathered at (layer, component) for every sequence's positions.
struct Activations {
  std::vector<int64_t> layers;
  Component component = Component::kBlockOutput;
  std::vector<torch::Tensor> rows;  // per layer: (N, D) float32 on the CPU, in row order below
  torch::Tensor example_index;      // (N) int64: the sequence each row comes from
  torch::Tensor position;           // (N) int64: its token index in that sequence (BOS included)
  torch::Tensor token_id;           // (N) int64: the token at that position
};

/// Runs the frozen model (no gradients, only up to the highest layer, left-padded batches) and
/// records the site's hidden state at the chosen positions, sequence by sequence in position
/// order. For block_output at layer l these are the rows of HF's hidden_states[l + 1] (for
/// l < L − 1; the last block's raw output otherwise). Throws UsageError for layers out of range
/// and a position outside a sequence (naming `where[i]` when given, else "sequence i").
Activations collect_activations(Model& model, const std::vector<std::vector<int64_t>>& sequences,
                                const CollectOptions& options,
                                std::span<const std::string> where = {});

/// Writes "layer_<l>.<component>" (N, D) F32 for each layer, "example_index", "position" and
/// "token_id" (N) I64, with `metadata` plus "component", "layers" and "positions" (as given).
void save_activations(const Activations& activations, const std::filesystem::path& path,
                      std::map<std::string, std::string> metadata = {});

/// Where steering_vector reads each prompt's representation.
struct SteeringOptions {
  int64_t layer = 0;
  Component component = Component::kBlockOutput;
  std::string positions = "l1";  // where each prompt's representation is read
  int64_t batch_size = 16;
};

/// The mean-difference steering vector (D) float32: the mean of every row collected from the
/// `positive` sequences minus the mean of every row from the `negative` ones. `*_where` name the
/// sequences in errors (as in collect_activations). Throws UsageError when either side yields no
/// row or a position is outside a sequence.
torch::Tensor steering_vector(Model& model, const std::vector<std::vector<int64_t>>& positive,
                              const std::vector<std::vector<int64_t>>& negative,
                              const SteeringOptions& options,
                              std::span<const std::string> positive_where = {},
                              std::span<const std::string> negative_where = {});

/// A ReftModel with one constant-source addition intervention that adds alpha · vector at
/// (layer, component) to the prompt tokens selected by `apply_positions` (and, with
/// generation_hooks(true), to every generated token). The scaled vector is the intervention's
/// `source_representation` buffer, so save_adapter / load_adapter (and `reft generate --adapter`)
/// keep it. Throws UsageError for a vector not of shape (D) or not finite, or a non-finite alpha.
std::unique_ptr<ReftModel> make_steering_model(Model& model, const torch::Tensor& vector,
                                               double alpha, int64_t layer,
                                               Component component = Component::kBlockOutput,
                                               const std::string& apply_positions = "all");

}  // namespace reft
