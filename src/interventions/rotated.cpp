/// DAS, full rotated-space interchange (pyvene RotatedSpaceIntervention):
/// h ← Q · ( (Qᵀs)[:k] ∪ (Qᵀh)[k:] ), Q (D, D) orthogonal, k = interchange_dim (default r).
/// Q is the Householder-parametrized square rotation (pyvene uses matrix_exp for square maps; both
/// span all rotations near the identity trivialization).

#include "interventions/interchange.h"
#include "interventions/orthogonal.h"

namespace reft {
namespace {

class Rotated final : public Intervention {
 public:
  explicit Rotated(const InterventionOptions& o) : Intervention(o) {
    rotate_ = register_module("rotate_layer",
                              RotateLayer(o.embed_dim, o.embed_dim, o.orthogonal, o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) override {
    auto s = broadcast_source(h, source, "rotated");
    auto Q = rotate_->weight();  // (D, D)
    auto rh = torch::matmul(h.to(Q.scalar_type()), Q);
    auto rs = torch::matmul(s.to(Q.scalar_type()), Q);
    const int64_t k =
        options_.interchange_dim > 0 ? options_.interchange_dim : options_.low_rank_dimension;
    auto mixed = replace_leading(
        rh, k, [&](const torch::Tensor& x) { return rs.narrow(-1, 0, x.size(-1)); });
    return torch::matmul(mixed, Q.t()).to(h.scalar_type());
  }
  torch::Tensor rotation() const override { return rotate_->weight(); }

 private:
  RotateLayer rotate_{nullptr};
};

}  // namespace

std::shared_ptr<Intervention> make_rotated(const InterventionOptions& o) {
  return std::make_shared<Rotated>(o);
}

}  // namespace reft
