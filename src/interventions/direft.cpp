/// DiReFT (pyreft DireftIntervention): h ← h + R·act(W h + b), R (D, r) with orthonormal columns.
/// Unlike LoReFT it does not subtract the projection Rᵀh.

#include "interventions/orthogonal.h"

namespace reft {
namespace {

class DiReFT final : public Intervention {
 public:
  explicit DiReFT(const InterventionOptions& o) : Intervention(o), act_(act_fn_by_name(o.act_fn)) {
    rotate_ = register_module(
        "rotate_layer", RotateLayer(o.embed_dim, o.low_rank_dimension, o.orthogonal, o.dtype));
    source_ = register_module("learned_source",
                              make_linear(o.embed_dim, o.low_rank_dimension, true, o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor&) override {
    auto R = rotate_->weight();
    auto x = h.to(source_->weight.scalar_type());
    return finish(
        h, torch::matmul(act_(source_->forward(x)).to(R.scalar_type()), R.t()).to(h.scalar_type()));
  }
  torch::Tensor rotation() const override { return rotate_->weight(); }

 private:
  RotateLayer rotate_{nullptr};
  torch::nn::Linear source_{nullptr};
  ActFn act_;
};

}  // namespace

std::shared_ptr<Intervention> make_direft(const InterventionOptions& o) {
  return std::make_shared<DiReFT>(o);
}

}  // namespace reft
