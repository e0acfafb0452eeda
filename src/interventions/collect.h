#pragma once
// The collect intervention, exposed so that callers can read what it recorded.

#include "reft/intervention.h"

namespace reft {

class CollectIntervention final : public Intervention {
 public:
  using Intervention::Intervention;
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) override;
  /// The rows recorded since the last take(), one tensor per forward, in call order.
  std::vector<torch::Tensor> take();

 private:
  std::vector<torch::Tensor> collected_;
};

}  // namespace reft
