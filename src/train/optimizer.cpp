#include "reft/optimizer.h"

#include <cmath>
#include <map>

#include "reft/error.h"

namespace reft {

AdamW::AdamW(std::vector<torch::Tensor> params, std::vector<bool> decay, AdamWOptions options)
    : params_(std::move(params)), decay_(std::move(decay)), options_(options) {
  if (decay_.size() != params_.size()) fail("[AdamW] expected one decay flag per parameter");
  for (const auto& p : params_) {
    exp_avg_.push_back(torch::zeros_like(p));
    exp_avg_sq_.push_back(torch::zeros_like(p));
  }
}

void AdamW::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

void AdamW::step() {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bias_correction1 = 1 - std::pow(options_.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1 - std::pow(options_.beta2, static_cast<double>(step_));
  const double step_size = options_.lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    if (!p.grad().defined()) continue;
    const auto& g = p.grad();
    if (decay_[i] && options_.weight_decay != 0) p.mul_(1 - options_.lr * options_.weight_decay);
    exp_avg_[i].mul_(options_.beta1).add_(g, 1 - options_.beta1);
    exp_avg_sq_[i].mul_(options_.beta2).addcmul_(g, g, 1 - options_.beta2);
    auto denom = (exp_avg_sq_[i].sqrt() / bias_correction2_sqrt).add_(options_.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
  }
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("exp_avg." + std::to_string(i), exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + std::to_string(i), exp_avg_sq_[i]);
  }
  out.emplace_back("step", torch::tensor(step_, torch::kInt64));
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, torch::Tensor>>& state,
                       const std::string& where) {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> m(state.begin(), state.end());
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [name, dst] :
         {std::pair{"exp_avg.", &exp_avg_[i]}, std::pair{"exp_avg_sq.", &exp_avg_sq_[i]}}) {
      auto it = m.find(name + std::to_string(i));
      if (it == m.end() || it->second.sizes() != dst->sizes())
        fail("[", where, "] optimizer state '", name, i, "' is missing or has the wrong shape");
      dst->copy_(it->second);
    }
  }
  auto it = m.find("step");
  if (it == m.end()) fail("[", where, "] optimizer state 'step' is missing");
  step_ = it->second.item<int64_t>();
}

Schedule parse_schedule(std::string_view name) {
  if (name == "linear") return Schedule::kLinear;
  if (name == "cosine") return Schedule::kCosine;
  if (name == "constant") return Schedule::kConstant;
  usage_fail("[--schedule] expected linear, cosine or constant, found '", name, "'");
}

std::string_view schedule_name(Schedule s) {
  return s == Schedule::kLinear ? "linear" : s == Schedule::kCosine ? "cosine" : "constant";
}

double schedule_factor(Schedule schedule, int64_t step, int64_t total, int64_t warmup) {
  if (step < warmup) return static_cast<double>(step) / std::max<int64_t>(1, warmup);
  switch (schedule) {
    case Schedule::kConstant:
      return 1.0;
    case Schedule::kLinear:
      return std::max(0.0,
                      static_cast<double>(total - step) / std::max<int64_t>(1, total - warmup));
    case Schedule::kCosine: {
      const double progress =
          static_cast<double>(step - warmup) / std::max<int64_t>(1, total - warmup);
      return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 0.5 * 2.0 * progress)));
    }
  }
  return 1.0;
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  double total = 0;
  for (const auto& p : params)
    if (p.grad().defined()) total += p.grad().to(torch::kFloat64).square().sum().item<double>();
  total = std::sqrt(total);
  if (max_norm > 0 && total > max_norm) {
    const double scale = max_norm / (total + 1e-6);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return total;
}

}  // namespace reft
