/// LoBiReFT: h ← h + R b, R (D, r) orthonormal, b (r) learned (torch.rand init). The edit does not
/// depend on h: a learned bias confined to an r-dim subspace (pyreft LobireftIntervention).

#include "interventions/orthogonal.h"

namespace reft {
namespace {

class LoBiReFT final : public Intervention {
 public:
  explicit LoBiReFT(const InterventionOptions& o) : Intervention(o) {
    rotate_ = register_module(
        "rotate_layer", RotateLayer(o.embed_dim, o.low_rank_dimension, o.orthogonal, o.dtype));
    b_ = register_parameter("learned_source", torch::rand({o.low_rank_dimension}).to(o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor&) override {
    auto R = rotate_->weight();
    auto edit = torch::matmul(b_, R.t()).to(h.scalar_type());  // (D)
    return finish(h, edit.expand_as(h));
  }
  torch::Tensor rotation() const override { return rotate_->weight(); }

 private:
  RotateLayer rotate_{nullptr};
  torch::Tensor b_;
};

}  // namespace

std::shared_ptr<Intervention> make_lobireft(const InterventionOptions& o) {
  return std::make_shared<LoBiReFT>(o);
}

}  // namespace reft
