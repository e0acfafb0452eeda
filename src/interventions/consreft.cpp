/// ConsReFT: h ← h + R(b − Rᵀh), R (D, r) orthonormal, b (r) a learned constant (torch.rand init).
/// pyreft ConsreftIntervention: it moves h's coordinates in the subspace to the constant b.

#include "interventions/orthogonal.h"

namespace reft {
namespace {

class ConsReFT final : public Intervention {
 public:
  explicit ConsReFT(const InterventionOptions& o) : Intervention(o) {
    rotate_ = register_module(
        "rotate_layer", RotateLayer(o.embed_dim, o.low_rank_dimension, o.orthogonal, o.dtype));
    b_ = register_parameter("learned_source", torch::rand({o.low_rank_dimension}).to(o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor&) override {
    auto R = rotate_->weight();
    auto x = h.to(R.scalar_type());
    return finish(h, torch::matmul(b_ - torch::matmul(x, R), R.t()).to(h.scalar_type()));
  }
  torch::Tensor rotation() const override { return rotate_->weight(); }

 private:
  RotateLayer rotate_{nullptr};
  torch::Tensor b_;
};

}  // namespace

std::shared_ptr<Intervention> make_consreft(const InterventionOptions& o) {
  return std::make_shared<ConsReFT>(o);
}

}  // namespace reft
