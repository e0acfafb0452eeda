/// DII, distributed interchange intervention (pyvene LowRankRotatedSpaceIntervention):
/// h ← h + R(Rᵀs − Rᵀh), R (D, r) orthonormal: h takes the source's coordinates in the subspace.

#include "interventions/interchange.h"
#include "interventions/orthogonal.h"

namespace reft {
namespace {

class LowRankRotated final : public Intervention {
 public:
  explicit LowRankRotated(const InterventionOptions& o) : Intervention(o) {
    rotate_ = register_module(
        "rotate_layer", RotateLayer(o.embed_dim, o.low_rank_dimension, o.orthogonal, o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) override {
    auto s = broadcast_source(h, source, "low_rank_rotated");
    auto R = rotate_->weight();
    auto x = h.to(R.scalar_type());
    auto diff = torch::matmul(s.to(R.scalar_type()), R) - torch::matmul(x, R);  // (N, r)
    return (x + torch::matmul(diff, R.t())).to(h.scalar_type());
  }
  torch::Tensor rotation() const override { return rotate_->weight(); }

 private:
  RotateLayer rotate_{nullptr};
};

}  // namespace

std::shared_ptr<Intervention> make_low_rank_rotated(const InterventionOptions& o) {
  return std::make_shared<LowRankRotated>(o);
}

}  // namespace reft
