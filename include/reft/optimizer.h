#pragma once
/// AdamW and learning-rate schedules, numerically identical to torch.optim.AdamW (torch 1.13,
/// single-tensor path) and transformers' schedules.

#include <torch/torch.h>

#include <string>
#include <string_view>
#include <vector>

namespace reft {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class AdamW {
 public:
  /// `decay[i]` says whether params[i] receives weight decay.
  AdamW(std::vector<torch::Tensor> params, std::vector<bool> decay, AdamWOptions options);

  /// One update with the current lr; parameters without a gradient are skipped.
  void step();
  void zero_grad();
  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }
  int64_t steps() const { return step_; }

  /// Moments and step count, for checkpoints ("exp_avg.<i>", "exp_avg_sq.<i>", "step").
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, torch::Tensor>>& state,
                  const std::string& where);

 private:
  std::vector<torch::Tensor> params_;
  std::vector<bool> decay_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

enum class Schedule { kLinear, kCosine, kConstant };
Schedule parse_schedule(std::string_view name);
std::string_view schedule_name(Schedule schedule);

/// The lr multiplier at `step` (0-based) of `total` steps with `warmup` warmup steps, as
/// transformers' get_{linear,cosine,constant}_schedule_with_warmup compute it.
double schedule_factor(Schedule schedule, int64_t step, int64_t total, int64_t warmup);

/// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace reft
