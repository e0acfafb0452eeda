#pragma once
/// Training interventions on a frozen model: AdamW with warmup and linear/cosine/constant decay,
/// gradient accumulation and clipping, epochs or max steps, evaluation, atomic checkpoints and
/// resumption, frozen-prefix caching. Progress goes through a callback, so the CLI prints it and
/// a server could stream it.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "reft/adapter.h"
#include "reft/classifier.h"
#include "reft/data.h"
#include "reft/optimizer.h"
#include "reft/reft_model.h"

namespace reft {

class Tokenizer;

struct TrainOptions {
  int64_t epochs = 3;
  int64_t max_steps = -1;  // > 0 overrides epochs
  double lr = 4e-3;
  int64_t batch_size = 4;
  int64_t grad_accum = 1;
  double warmup_ratio = 0.0;
  int64_t warmup_steps = 0;  // > 0 overrides warmup_ratio
  double weight_decay = 0.0;
  Schedule schedule = Schedule::kLinear;
  double max_grad_norm = 1.0;  // 0 = no clipping
  uint64_t seed = 42;
  bool shuffle = true;
  int64_t log_every = 1;
  /// Checkpoint every N steps; 0 = only at the end; < 0 = every 10% of the run, at most 500 steps
  /// apart (a checkpoint holds only the interventions and their optimizer state, so this costs
  /// little and an interrupted run loses at most a tenth of its work).
  int64_t save_every = 0;
  int64_t eval_every = 0;  // evaluate every N steps (0 = only at the end)
  int64_t eval_max_new_tokens = 64;
  bool eval_generate = true;         // exact match of greedy generations on the eval split
  std::filesystem::path output_dir;  // empty: no files written
  bool resume = false;
  /// Cache the frozen layers below the lowest intervention across epochs (auto-disabled when the
  /// cache would exceed cache_budget_bytes or the lowest layer is 0).
  bool cache_frozen_prefix = true;
  int64_t cache_budget_bytes = 2ll << 30;
  AdapterMeta meta;  // written with the adapter (template, task)
};

/// One logged training step.
struct TrainEvent {
  int64_t step = 0, total_steps = 0;
  double epoch = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, elapsed_s = 0, eta_s = 0;
};

struct EvalResult {
  int64_t step = 0;
  double loss = 0;
  double exact_match = -1;  // −1 when not computed
  int64_t examples = 0;
  nlohmann::json metrics;  // classification: accuracy, macro_f1, mcc (or pearson/spearman)
};

struct TrainSummary {
  double final_loss = 0;
  int64_t steps = 0;
  double seconds = 0;
  int64_t tokens = 0;
  std::vector<double> losses;  // every step
  std::optional<EvalResult> eval;
  bool resumed_from_checkpoint = false;
  int64_t start_step = 0;
};

struct TrainCallbacks {
  /// Before the first step: the step training starts after (> 0 when resumed) and the total.
  std::function<void(int64_t start_step, int64_t total_steps)> on_start;
  std::function<void(const TrainEvent&)> on_step;
  std::function<void(const EvalResult&)> on_eval;
  std::function<void(const std::string&)> on_message;  // warnings, checkpoint notes
};

/// Trains `reft` on `train` (causal LM). `tokenizer` is needed for generation-based evaluation.
/// Writes into output_dir the adapter (reft_config.json + interventions.safetensors) and
/// checkpoint/ (every save_every steps); logs and plots are the caller's, from the callbacks. A
/// NaN/inf loss stops training with a reft::Error and leaves the last checkpoint untouched. Bad
/// options throw UsageError naming the field ("[TrainOptions.lr] expected > 0, found -1").
TrainSummary train_reft(ReftModel& reft, const Dataset& train, const Dataset* eval,
                        const TrainOptions& options, const Tokenizer* tokenizer = nullptr,
                        const TrainCallbacks& callbacks = {});

/// Trains interventions and a classification head jointly (see classifier.h); the adapter written
/// to output_dir holds both, with the label set.
TrainSummary train_classifier(ReftClassifier& classifier, const Dataset& train, const Dataset* eval,
                              const TrainOptions& options, const TrainCallbacks& callbacks = {});

/// Mean loss of `reft` over `data` (no gradients), batch by batch.
double evaluate_loss(ReftModel& reft, const Dataset& data, int64_t batch_size);

/// Builds a right-padded batch of examples (labels −100 on padding).
ReftBatch make_batch(const Dataset& data, const std::vector<size_t>& indices, int64_t pad_id);

/// An SVG line chart of a loss curve (step on x, loss on y).
std::string loss_curve_svg(const std::vector<double>& losses, const std::string& title);

}  // namespace reft
