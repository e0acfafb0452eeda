/// NoReFT: h ← h + W₂ᵀ(act(W₁h + b₁) − (W₂h + b₂)), no orthogonality constraint.
/// pyreft NoreftIntervention: proj_layer = (W₂, b₂) — its bias sits inside the subtracted term.

#include "interventions/orthogonal.h"

namespace reft {
namespace {

class NoReFT final : public Intervention {
 public:
  explicit NoReFT(const InterventionOptions& o) : Intervention(o), act_(act_fn_by_name(o.act_fn)) {
    proj_ = register_module("proj_layer",
                            make_linear(o.embed_dim, o.low_rank_dimension, o.add_bias, o.dtype));
    source_ = register_module("learned_source",
                              make_linear(o.embed_dim, o.low_rank_dimension, true, o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor&) override {
    auto x = h.to(proj_->weight.scalar_type());
    auto diff = act_(source_->forward(x)) - proj_->forward(x);  // (N, r)
    return finish(h, torch::matmul(diff, proj_->weight).to(h.scalar_type()));
  }

 private:
  torch::nn::Linear proj_{nullptr}, source_{nullptr};
  ActFn act_;
};

}  // namespace

std::shared_ptr<Intervention> make_noreft(const InterventionOptions& o) {
  return std::make_shared<NoReFT>(o);
}

}  // namespace reft
