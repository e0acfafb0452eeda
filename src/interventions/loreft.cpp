/// LoReFT: h ← h + R(act(W h + b) − Rᵀh), R (D, r) with orthonormal columns (the paper's Rᵀ).
/// pyreft LoreftIntervention; the edit lives in the r-dim subspace spanned by R.

#include "interventions/orthogonal.h"

namespace reft {
namespace {

class LoReFT final : public Intervention {
 public:
  explicit LoReFT(const InterventionOptions& o) : Intervention(o), act_(act_fn_by_name(o.act_fn)) {
    rotate_ = register_module(
        "rotate_layer", RotateLayer(o.embed_dim, o.low_rank_dimension, o.orthogonal, o.dtype));
    source_ = register_module("learned_source",
                              make_linear(o.embed_dim, o.low_rank_dimension, true, o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor&) override {
    auto R = rotate_->weight();  // (D, r)
    auto x = h.to(R.scalar_type());
    auto diff = act_(source_->forward(x)) - torch::matmul(x, R);  // (N, r)
    return finish(h, torch::matmul(diff, R.t()).to(h.scalar_type()));
  }
  torch::Tensor rotation() const override { return rotate_->weight(); }

 private:
  RotateLayer rotate_{nullptr};
  torch::nn::Linear source_{nullptr};
  ActFn act_;
};

}  // namespace

std::shared_ptr<Intervention> make_loreft(const InterventionOptions& o) {
  return std::make_shared<LoReFT>(o);
}

}  // namespace reft
