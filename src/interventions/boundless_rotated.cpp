/// Boundless DAS (pyvene BoundlessRotatedSpaceIntervention): h ← Q((1 − m)∘Qᵀh + m∘Qᵀs) with the
/// soft boundary m_i = σ(i/τ)·σ((β·D − i)/τ), β ∈ [1e-3, 1] learned (init 0.5), τ annealed by the
/// trainer (init 50; see set_temperature).

#include "interventions/boundless_rotated.h"

#include "interventions/interchange.h"

namespace reft {

BoundlessRotated::BoundlessRotated(const InterventionOptions& o) : Intervention(o) {
  rotate_ =
      register_module("rotate_layer", RotateLayer(o.embed_dim, o.embed_dim, o.orthogonal, o.dtype));
  boundary_ = register_parameter("intervention_boundaries", torch::tensor({0.5}, o.dtype));
  temperature_ = register_buffer("temperature", torch::tensor(50.0, o.dtype));
}

torch::Tensor BoundlessRotated::mask() const {
  const int64_t d = options_.embed_dim;
  auto population = torch::arange(d, boundary_.options());
  auto upper = boundary_.clamp(1e-3, 1.0)[0] * static_cast<double>(d);
  return torch::sigmoid(population / temperature_) *
         torch::sigmoid((upper - population) / temperature_);
}

torch::Tensor BoundlessRotated::forward(const torch::Tensor& h, const torch::Tensor& source) {
  auto s = broadcast_source(h, source, "boundless_rotated");
  auto Q = rotate_->weight();
  auto rh = torch::matmul(h.to(Q.scalar_type()), Q);
  auto rs = torch::matmul(s.to(Q.scalar_type()), Q);
  auto m = mask().to(Q.scalar_type());
  return torch::matmul((1 - m) * rh + m * rs, Q.t()).to(h.scalar_type());
}

void BoundlessRotated::set_temperature(double t) {
  torch::NoGradGuard no_grad;
  temperature_.fill_(t);
}

std::shared_ptr<Intervention> make_boundless_rotated(const InterventionOptions& o) {
  return std::make_shared<BoundlessRotated>(o);
}

}  // namespace reft
