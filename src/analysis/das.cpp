// Distributed alignment search: training an interchange intervention (DII, boundless DAS, full
// rotation, sigmoid mask) on counterfactual pairs, and IIA against untrained and full-swap
// baselines.
//
// Dimension legend: B pairs in a batch, V vocab, D hidden, r rank.

#include <algorithm>
#include <cmath>
#include <random>

#include "interventions/boundless_rotated.h"
#include "reft/error.h"
#include "reft/interchange.h"

namespace reft {
namespace {

bool trainable_type(InterventionType t) {
  return intervention_traits(t).trainable_interchange();
}

}  // namespace

void check_das_pairs(const Model& model, const std::vector<CounterfactualPair>& pairs,
                     const PairSplit& split) {
  const size_t n = split.train.size() + split.eval.size();
  if (n < 2) usage_fail("[das] expected at least 2 pairs (training and held-out), found ", n);
  if (split.train.empty()) usage_fail("[das] expected training pairs, found none of ", n);
  if (split.eval.empty())
    usage_fail("[das] expected held-out pairs, found none of ", n, "; raise --eval-fraction");
  const auto vocab = model.info().vocab_size;
  for (const auto* part : {&split.train, &split.eval})
    for (size_t i : *part) {
      const auto& p = pairs.at(i);
      if (p.label_id < 0 || p.label_id >= vocab)
        usage_fail("[", p.where, "] expected a label token in [0, ", vocab, ") for DAS, found ",
                   p.label_id);
    }
}

namespace {

// The boundless intervention of a single-site model, or nullptr.
BoundlessRotated* boundless_of(ReftModel& reft) {
  return dynamic_cast<BoundlessRotated*>(reft.interventions().at(0).get());
}

// pyvene's schedule: torch.linspace(start, end, total_steps)[step].
double temperature_at(const DasOptions& o, int64_t step, int64_t total) {
  if (total <= 1) return o.temperature_end;
  const double t = static_cast<double>(step) / static_cast<double>(total - 1);
  return o.temperature_start + (o.temperature_end - o.temperature_start) * t;
}

ReftConfig site_config(int64_t layer, Component component, const InterventionOptions& iv) {
  // Positions come from each batch's explicit locations; the spec only matters for generation.
  return ReftConfig::build({layer}, component, iv, "l1", false);
}

}  // namespace

InterventionOptions das_intervention_options(const DasOptions& o) {
  InterventionOptions iv;
  iv.type = o.type;
  iv.low_rank_dimension = o.low_rank_dimension;
  iv.orthogonal = o.orthogonal;
  // The full rotation swaps its first r coordinates (pyvene's interchange_dim).
  if (intervention_traits(o.type).rank_is_interchange_dim)
    iv.interchange_dim = o.low_rank_dimension;
  return iv;
}

void check_das_options(const Model& model, int64_t layer, const DasOptions& o) {
  if (!trainable_type(o.type))
    usage_fail(
        "[DasOptions.type] expected a trainable interchange type (dii/low_rank_rotated, "
        "das/rotated, "
        "boundless_das/boundless_rotated, sigmoid_mask), found ",
        intervention_type_name(o.type));
  const auto& info = model.info();
  if (!info.causal)
    usage_fail("[das] expected a causal LM (next-token labels), found ", info.architecture);
  if (layer < 0 || layer >= info.num_layers)
    usage_fail("[RepresentationConfig.layer] layer ", layer, " is out of range: the model has ",
               info.num_layers,
               " layers (0..", info.num_layers - 1, ")");
  const auto& traits = intervention_traits(o.type);
  const bool ranked = traits.low_rank || traits.rank_is_interchange_dim;
  if (ranked && (o.low_rank_dimension < 1 || o.low_rank_dimension > info.hidden_size))
    usage_fail("[DasOptions.low_rank_dimension] expected a subspace dimension in [1, ",
               info.hidden_size,
               "] (the hidden size), found ", o.low_rank_dimension);
  if (o.epochs < 1) usage_fail("[DasOptions.epochs] expected >= 1, found ", o.epochs);
  if (o.batch_size < 1) usage_fail("[DasOptions.batch_size] expected >= 1, found ", o.batch_size);
  if (o.eval_batch_size < 1)
    usage_fail("[das] expected an evaluation batch size >= 1, found ", o.eval_batch_size);
  if (!(o.lr > 0 && std::isfinite(o.lr)))
    usage_fail("[DasOptions.lr] expected a positive learning rate, found ", o.lr);
  if (!(o.boundary_lr > 0 && std::isfinite(o.boundary_lr)))
    usage_fail("[DasOptions.boundary_lr] expected a positive learning rate, found ",
               o.boundary_lr);
  if (!(o.temperature_start > 0 && o.temperature_end > 0 && std::isfinite(o.temperature_start) &&
        std::isfinite(o.temperature_end)))
    usage_fail("[DasOptions.temperature_start] expected positive temperatures (start, end), found ",
               o.temperature_start, " and ", o.temperature_end);
  if (!(o.warmup_ratio >= 0 && o.warmup_ratio <= 1))
    usage_fail("[das] expected a warmup ratio in [0, 1], found ", o.warmup_ratio);
}

int set_boundless_temperature(ReftModel& reft, double temperature) {
  if (!(temperature > 0))
    usage_fail("[temperature] expected a positive value, found ", temperature);
  int count = 0;
  for (const auto& iv : reft.interventions())
    if (auto* b = dynamic_cast<BoundlessRotated*>(iv.get())) {
      b->set_temperature(temperature);
      ++count;
    }
  return count;
}

DasResult train_das(Model& model, const std::vector<CounterfactualPair>& pairs,
                    const PairSplit& split, int64_t layer, const DasOptions& o,
                    const DasCallback& on_step) {
  check_das_options(model, layer, o);
  check_das_pairs(model, pairs, split);
  DasResult result;
  result.layer = layer;
  result.component = o.component;
  const int64_t pad = model.info().pad_token_id.value_or(0);
  const auto device = model.info().device;

  // Baselines: the base model alone, and the whole vector swapped at the same site.
  result.unintervened =
      label_accuracy(plain_logits(model, pairs, split.eval, o.eval_batch_size), pairs, split.eval);
  {
    InterventionOptions vanilla;
    vanilla.type = InterventionType::kVanilla;
    ReftModel swap(model, site_config(layer, o.component, vanilla), o.seed);
    result.vanilla_iia = label_accuracy(
        interchange_logits(swap, pairs, split.eval, o.eval_batch_size), pairs, split.eval);
  }

  result.reft = std::make_unique<ReftModel>(
      model, site_config(layer, o.component, das_intervention_options(o)), o.seed);
  ReftModel& reft = *result.reft;
  auto* boundless = boundless_of(reft);
  if (boundless) boundless->set_temperature(o.temperature_end);
  result.random_iia = label_accuracy(interchange_logits(reft, pairs, split.eval, o.eval_batch_size),
                                     pairs, split.eval);

  // Two optimisers so that the boundary gets its own learning rate (pyvene's param groups). No
  // weight decay: it would pull the orthogonal parametrization off its manifold.
  std::vector<torch::Tensor> main_params, boundary_params;
  for (auto& [name, p] : reft.named_parameters()) {
    const bool is_boundary = name.ends_with(".intervention_boundaries");
    (is_boundary ? boundary_params : main_params).push_back(p);
  }
  AdamW optimizer(main_params, std::vector<bool>(main_params.size(), false), {.lr = o.lr});
  AdamW boundary_optimizer(boundary_params, std::vector<bool>(boundary_params.size(), false),
                           {.lr = o.boundary_lr});
  std::vector<torch::Tensor> all_params = main_params;
  all_params.insert(all_params.end(), boundary_params.begin(), boundary_params.end());

  const auto B = static_cast<size_t>(o.batch_size);
  const int64_t per_epoch = static_cast<int64_t>((split.train.size() + B - 1) / B);
  const int64_t total = per_epoch * o.epochs;
  const auto warmup = static_cast<int64_t>(std::ceil(o.warmup_ratio * static_cast<double>(total)));
  std::mt19937_64 rng(o.seed);
  std::vector<size_t> order = split.train;
  reft.train(true);
  int64_t step = 0;
  double epoch_loss = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    epoch_loss = 0;
    for (size_t start = 0; start < order.size(); start += B, ++step) {
      const double temperature = temperature_at(o, step, total);
      if (boundless) boundless->set_temperature(temperature);
      const size_t end = std::min(order.size(), start + B);
      const std::span<const size_t> rows(order.data() + start, end - start);
      auto batch = make_pair_batch(pairs, rows, pad, 1);
      std::vector<int64_t> labels;
      for (size_t i : rows) labels.push_back(pairs[i].label_id);
      ForwardInput fwd;
      fwd.logits = LogitsMode::kLast;  // the only supervised position: after the base's last token
      auto logits = reft.forward(batch, fwd).logits;  // (B, V)
      auto loss = torch::cross_entropy_loss(logits.to(torch::kFloat32),
                                            torch::tensor(labels, torch::kInt64).to(device));
      if (boundless && o.boundary_loss_weight != 0)
        for (const auto& b : boundary_params) loss = loss + o.boundary_loss_weight * b.sum();
      optimizer.zero_grad();
      boundary_optimizer.zero_grad();
      loss.backward();
      if (o.max_grad_norm > 0) clip_grad_norm(all_params, o.max_grad_norm);
      const double factor = schedule_factor(o.schedule, step, total, warmup);
      optimizer.set_lr(o.lr * factor);
      boundary_optimizer.set_lr(o.boundary_lr * factor);
      optimizer.step();
      boundary_optimizer.step();
      const double value = loss.item<double>();
      if (!std::isfinite(value))
        fail("[das] layer ", layer, ": the loss became ", value, " at step ", step, "; lower --lr");
      result.losses.push_back(value);
      epoch_loss += value;
      if (on_step) on_step({layer, step + 1, total, value, boundless ? temperature : 0.0});
    }
  }
  result.final_loss = epoch_loss / static_cast<double>(per_epoch);
  reft.train(false);
  if (boundless) {
    boundless->set_temperature(o.temperature_end);
    result.boundary = std::clamp(boundless->boundary(), 1e-3, 1.0);
  }
  result.iia = label_accuracy(interchange_logits(reft, pairs, split.eval, o.eval_batch_size), pairs,
                              split.eval);
  result.train_iia = label_accuracy(interchange_logits(reft, pairs, split.train, o.eval_batch_size),
                                    pairs, split.train);
  return result;
}

DasSweep das_sweep(Model& model, const std::vector<CounterfactualPair>& pairs,
                   const PairSplit& split, const std::vector<int64_t>& layers,
                   const DasOptions& options, const DasCallback& on_step) {
  if (layers.empty()) usage_fail("[das] expected at least one layer, found none");
  DasSweep sweep;
  for (int64_t layer : layers) {
    sweep.results.push_back(train_das(model, pairs, split, layer, options, on_step));
    if (sweep.results.back().iia > sweep.results[sweep.best].iia)
      sweep.best = sweep.results.size() - 1;
  }
  return sweep;
}

}  // namespace reft
