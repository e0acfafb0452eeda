#pragma once
/// Interchange interventions with counterfactual sources, distributed alignment search (DAS) and
/// interchange intervention accuracy (IIA).
///
/// An interchange intervention runs a *base* input and a *source* input and, at a site (layer,
/// component) and paired positions, replaces part of the base's representation with the
/// source's: vanilla (h ← s), addition, DII (h + R(Rᵀs − Rᵀh), R (D, r) orthonormal), full
/// rotated DAS, boundless DAS, sigmoid mask (see intervention.h). The rest of the base forward
/// then runs on the edited state. DAS learns R so that the intervened model outputs the
/// counterfactual label; IIA is the fraction of held-out pairs where it does.
///
///   auto pairs = reft::make_pair_dataset(reft::read_records("pairs.jsonl"), *tokenizer).pairs;
///   auto split = reft::split_pairs(pairs.size(), 0.2, /*seed=*/0);
///   auto result = reft::train_das(*model, pairs, split, /*layer=*/3, {.low_rank_dimension = 4});
///   std::cout << result.iia << " vs random " << result.random_iia;
///
/// Dimension legend: N pairs, B pairs in a batch, T tokens, D hidden, V vocab, r rank.

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "reft/data.h"
#include "reft/intervention.h"
#include "reft/model.h"
#include "reft/optimizer.h"
#include "reft/reft_model.h"

namespace reft {

class Tokenizer;

/// One tokenized counterfactual pair.
struct CounterfactualPair {
  std::vector<int64_t> base_ids, source_ids;  // as the tokenizer encodes them (BOS included)
  /// Paired token indices (0-based within each sequence, BOS included), equally many: the base's
  /// representation at base_positions[i] takes the source's at source_positions[i].
  std::vector<int64_t> base_positions, source_positions;
  /// The expected next token after the base's last token once the intervention is applied; −1 when
  /// the pair has no label (running interventions only).
  int64_t label_id = -1;
  std::string label;  // the label as given (text, or the id as text)
  std::string where;  // "pairs.jsonl:7", for errors
};

/// Field names of a pair file and the default position.
struct PairDataOptions {
  std::string base_field = "base", source_field = "source";
  std::string base_position_field = "base_position", source_position_field = "source_position";
  /// The first of these fields present is the label: a string (the text that continues the base,
  /// leading space included, e.g. " Ben") or an integer token id.
  std::vector<std::string> label_fields = {"label", "expected"};
  /// Positions of pairs that name none: a spec as in positions.h ("l1", "-1", "3", "f1+l1", "all")
  /// resolved on each sequence. "-1" = the last token.
  std::string default_position = "-1";
  bool require_label = true;
};

/// The pairs of make_pair_dataset, in record order, and warnings for the caller to print.
struct PairDataset {
  std::vector<CounterfactualPair> pairs;
  std::vector<std::string> warnings;  // e.g. a word label without its leading space
};

/// Tokenizes `{"base": text, "source": text, "base_position"?, "source_position"?, "label" |
/// "expected"}` records. Positions are ints (negative = from the end) or spec strings; both
/// sides must resolve to equally many positions. The label's token is the first token of
/// encode(base + label) past encode(base) (an integer label is the id itself). Throws reft::Error
/// naming file:line for a missing or mistyped field, a position outside its sequence, unequal
/// position counts, an empty text or a label that does not start a new token.
PairDataset make_pair_dataset(const std::vector<Record>& records, const Tokenizer& tokenizer,
                              const PairDataOptions& options = {});

/// A base/source batch of `pairs[indices]`: both sides left-padded with `pad_id` (so the base's
/// last token is column T − 1 and LogitsMode::kLast reads it), each pair's positions as
/// `locations`/`source_locations` (B, n) int64 (−1 = none), repeated for `num_interventions`
/// interventions (one per intervened layer). Throws reft::Error naming the pair for positions
/// outside its sequence or unequal position counts.
ReftBatch make_pair_batch(const std::vector<CounterfactualPair>& pairs,
                          std::span<const size_t> indices, int64_t pad_id,
                          size_t num_interventions = 1);

/// A train/held-out split of n pairs: a seeded shuffle, then the first round(n·eval_fraction)
/// (at least 1 when eval_fraction > 0 and n > 1) are held out. Both lists are sorted.
struct PairSplit {
  std::vector<size_t> train{}, eval{};
};
PairSplit split_pairs(size_t n, double eval_fraction, uint64_t seed);

/// The next-token logits (N, V) float32 at each base's last token of the intervened model `reft`
/// (interchange interventions read the paired source tokens), in batches, without gradients.
/// `indices` empty = every pair.
torch::Tensor interchange_logits(ReftModel& reft, const std::vector<CounterfactualPair>& pairs,
                                 std::span<const size_t> indices = {}, int64_t batch_size = 32);

/// The unintervened model's next-token logits (N, V) float32 after the base (or, with
/// `use_source`, the source) of each pair.
torch::Tensor plain_logits(Model& model, const std::vector<CounterfactualPair>& pairs,
                           std::span<const size_t> indices = {}, int64_t batch_size = 32,
                           bool use_source = false);

/// The fraction of rows whose argmax equals the pair's label_id (pairs without a label count as
/// misses): IIA when `logits` come from interchange_logits.
double label_accuracy(const torch::Tensor& logits, const std::vector<CounterfactualPair>& pairs,
                      std::span<const size_t> indices = {});

// ---- DAS ----

/// Training options of train_das. The boundless-DAS knobs (boundary lr, boundary loss weight,
/// temperature schedule) follow pyvene's tutorial; the rotation's lr is 1e-2 constant (pyvene's
/// tutorials: Adam at 1e-3 with a linear warmup).
struct DasOptions {
  Component component = Component::kBlockOutput;
  /// kLowRankRotated (DII, the default), kBoundlessRotated, kRotated (full D×D rotation whose first
  /// low_rank_dimension coordinates are swapped) or kSigmoidMask.
  InterventionType type = InterventionType::kLowRankRotated;
  int64_t low_rank_dimension = 4;  // r (DII and rotated)
  OrthogonalMode orthogonal = OrthogonalMode::kLean;
  int64_t epochs = 10;
  int64_t batch_size = 16;
  double lr = 1e-2;
  Schedule schedule = Schedule::kConstant;
  double warmup_ratio = 0.0;
  double max_grad_norm = 0.0;  // 0 = no clipping
  uint64_t seed = 0;           // intervention init and batch order
  /// Boundless DAS (pyvene's tutorial): the boundary has its own lr, the loss adds
  /// boundary_loss_weight · β, and the temperature falls linearly from temperature_start to
  /// temperature_end over the training steps.
  double boundary_lr = 1e-2;
  double boundary_loss_weight = 1.0;
  double temperature_start = 50.0, temperature_end = 0.1;
  int64_t eval_batch_size = 64;
};

/// One optimisation step of train_das, for progress reports.
struct DasEvent {
  int64_t layer = 0, step = 0, total_steps = 0;
  double loss = 0;
  double temperature = 0;  // boundless only
};
/// Called after every optimisation step of train_das / das_sweep.
using DasCallback = std::function<void(const DasEvent&)>;

/// The outcome of DAS at one site.
struct DasResult {
  int64_t layer = 0;
  Component component = Component::kBlockOutput;
  double iia = 0;           // trained intervention on the held-out pairs
  double random_iia = 0;    // the same intervention at its random initialisation
  double vanilla_iia = 0;   // vanilla interchange of the whole vector (no subspace)
  double unintervened = 0;  // the base model's own prediction equals the label
  double train_iia = 0;
  double final_loss = 0;       // mean loss of the last epoch
  double boundary = -1;        // boundless: the learned β (fraction of dims swapped); else −1
  std::vector<double> losses;  // every step
  std::unique_ptr<ReftModel> reft;  // the trained intervention (save with save_adapter)
};

/// Validates `options` for training at `layer` of `model` before any work: a trainable type, a
/// causal LM, the layer in range, 1 ≤ rank ≤ D (DII, rotated), positive epochs, batch sizes,
/// learning rates and temperatures. Throws UsageError naming the flag. train_das calls it.
void check_das_options(const Model& model, int64_t layer, const DasOptions& options);

/// Validates the data of train_das: at least one pair in each part of `split`, every pair with a
/// label token inside the vocabulary. Throws UsageError (naming file:line for a bad label).
void check_das_pairs(const Model& model, const std::vector<CounterfactualPair>& pairs,
                     const PairSplit& split);

/// Learns an interchange intervention at (`layer`, options.component) on split.train so that the
/// intervened model's next token after each base equals its label (cross-entropy on that one
/// position, logits only there; AdamW without weight decay), then measures IIA on split.eval.
/// Every pair needs a label; both parts of the split must be non-empty (UsageError otherwise).
/// Deterministic for a given seed.
DasResult train_das(Model& model, const std::vector<CounterfactualPair>& pairs,
                    const PairSplit& split, int64_t layer, const DasOptions& options,
                    const DasCallback& on_step = {});

/// train_das at each of `layers`; `best` indexes the highest held-out IIA (the lowest layer on
/// ties).
struct DasSweep {
  std::vector<DasResult> results;
  size_t best = 0;
};
DasSweep das_sweep(Model& model, const std::vector<CounterfactualPair>& pairs,
                   const PairSplit& split, const std::vector<int64_t>& layers,
                   const DasOptions& options, const DasCallback& on_step = {});

/// Sets the mask temperature τ of every boundless-DAS intervention of `reft` (other types are
/// untouched) and returns how many it set. train_das anneals τ; an adapter keeps its last value.
int set_boundless_temperature(ReftModel& reft, double temperature);

/// The intervention's InterventionOptions for DAS options (type, rank, interchange_dim, mode).
InterventionOptions das_intervention_options(const DasOptions& options);

}  // namespace reft
