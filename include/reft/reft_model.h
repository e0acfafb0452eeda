#pragma once
/// A frozen base model plus interventions: pyreft's ReftModel.
///
///   auto model = reft::load_model(dir);
///   auto config = reft::ReftConfig::build({2}, reft::Component::kBlockOutput, {.type = kLoReFT,
///                                         .low_rank_dimension = 4}, "l1", false);
///   reft::ReftModel reft(*model, config, /*seed=*/42);
///   std::cout << reft.trainable_parameters_summary();
///   auto loss = reft.lm_loss(batch);  // then train, save_adapter, generate(reft, …)

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "reft/intervention.h"
#include "reft/model.h"
#include "reft/reft_config.h"

namespace reft {

/// A batch for a ReFT forward. Positions are relative to each row's first real token, so the
/// padding side never matters.
struct ReftBatch {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor attention_mask;  // (B, T); undefined = every token real
  torch::Tensor labels;          // (B, T) with −100 where no loss (causal LM)
  torch::Tensor token_type_ids;  // (B, T) segment ids for encoders (sentence pairs); undefined = 0
  /// Prompt length of each row (tokens from the first real one, BOS included): the position spec
  /// is resolved on these.
  std::vector<int64_t> prompt_lengths;
  /// Explicit locations, one (B, n) int64 tensor per intervention (negative = none); when given
  /// they replace the position spec (pyreft's `intervention_locations`, pyvene's unit_locations).
  std::vector<torch::Tensor> locations;
  /// Interchange interventions: the source batch and per-intervention source locations (B, n)
  /// paired one to one with `locations`.
  torch::Tensor source_input_ids, source_attention_mask;
  std::vector<torch::Tensor> source_locations;
  /// Frozen-prefix cache: the block input (B, T, D) of layer `start_layer`, computed without
  /// interventions; the layers below are skipped. Valid only when no intervention sits below it.
  torch::Tensor start_hidden;
  int64_t start_layer = 0;
};

class ReftHooks;

class ReftModel {
 public:
  /// Builds the interventions of `config` on `base` (validated against it). Parameters are drawn
  /// after torch::manual_seed(seed), intervention by intervention in config order, as pyreft
  /// draws them.
  ReftModel(Model& base, ReftConfig config, uint64_t seed = 0);
  ~ReftModel();
  ReftModel(const ReftModel&) = delete;
  ReftModel& operator=(const ReftModel&) = delete;

  Model& base() const { return base_; }
  const ReftConfig& config() const { return config_; }
  const std::vector<std::shared_ptr<Intervention>>& interventions() const { return interventions_; }
  /// pyvene's keys, e.g. "layer_2_comp_block_output_unit_pos_nunit_1#0".
  const std::vector<std::string>& keys() const { return keys_; }

  /// Every trainable tensor as "<key>.<pyreft parameter name>", in config order.
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;
  /// Parameters and buffers, for saving.
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  /// Loads tensors named as state() returns them; every name must match in shape.
  void load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::string& where);

  int64_t num_trainable_parameters() const;
  /// pyreft's print_trainable_parameters() text (two lines).
  std::string trainable_parameters_summary() const;

  /// Training mode switches dropout on.
  void train(bool on = true);

  /// The intervened forward. `options` sets the logits mode and hidden-state output (its ids,
  /// mask, cache and hooks fields are ignored).
  ForwardOutput forward(const ReftBatch& batch, const ForwardInput& options = {});

  /// pyreft's causal-LM loss: mean token cross-entropy of the intervened forward over labels ≠ −100
  /// (logits[:, t] predicts labels[:, t+1]); logits are computed only at those positions.
  torch::Tensor lm_loss(const ReftBatch& batch);

  /// Hooks for generate(): the prefill edits each row's prompt positions (the whole prompt of
  /// that row); later steps edit the new tokens only when `intervene_generated`.
  std::shared_ptr<SiteHooks> generation_hooks(bool intervene_generated = false);

  /// The lowest layer any intervention reads (layers below it never need gradients).
  int64_t lowest_layer() const;
  /// The layer a forward may resume from with a cached prefix (ReftBatch::start_layer): one past
  /// the lowest layer when its only sites are block_output (they fire on the resumed state), else
  /// the lowest layer.
  int64_t resumable_layer() const;

 private:
  Model& base_;
  ReftConfig config_;
  std::vector<std::shared_ptr<Intervention>> interventions_;
  std::vector<std::string> keys_;
  std::shared_ptr<ReftHooks> hooks_;
};

/// Python's repr() of a float (shortest round-trip digits, scientific below 1e-4 / from 1e16),
/// for pyreft-identical messages.
std::string python_float_repr(double value);

}  // namespace reft
