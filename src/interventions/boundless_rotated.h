#pragma once
// Boundless DAS, exposed for its temperature schedule and learned boundary.

#include "interventions/orthogonal.h"

namespace reft {

class BoundlessRotated final : public Intervention {
 public:
  explicit BoundlessRotated(const InterventionOptions& o);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) override;
  torch::Tensor rotation() const override { return rotate_->weight(); }
  void set_temperature(double t);
  /// The soft mask over rotated dims (D).
  torch::Tensor mask() const;
  /// The learned boundary β (fraction of dims swapped).
  double boundary() const { return boundary_.item<double>(); }

 private:
  RotateLayer rotate_{nullptr};
  torch::Tensor boundary_, temperature_;
};

}  // namespace reft
