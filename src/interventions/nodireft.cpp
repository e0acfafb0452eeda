/// NodiReFT (the paper's "DiReFT"; pyreft NodireftIntervention): h ← h + W₂ᵀ·act(W₁h + b₁).
/// proj_layer's bias exists when add_bias (and counts as a parameter, as in pyreft) but is unused.

#include "interventions/orthogonal.h"

namespace reft {
namespace {

class NodiReFT final : public Intervention {
 public:
  explicit NodiReFT(const InterventionOptions& o)
      : Intervention(o), act_(act_fn_by_name(o.act_fn)) {
    proj_ = register_module("proj_layer",
                            make_linear(o.embed_dim, o.low_rank_dimension, o.add_bias, o.dtype));
    source_ = register_module("learned_source",
                              make_linear(o.embed_dim, o.low_rank_dimension, true, o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor&) override {
    auto x = h.to(source_->weight.scalar_type());
    return finish(h, torch::matmul(act_(source_->forward(x)), proj_->weight).to(h.scalar_type()));
  }

 private:
  torch::nn::Linear proj_{nullptr}, source_{nullptr};
  ActFn act_;
};

}  // namespace

std::shared_ptr<Intervention> make_nodireft(const InterventionOptions& o) {
  return std::make_shared<NodiReFT>(o);
}

}  // namespace reft
