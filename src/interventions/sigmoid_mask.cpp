/// Sigmoid mask in the original basis (pyvene SigmoidMaskIntervention):
/// h ← (1 − σ(a/τ))∘h + σ(a/τ)∘s, a (D) learned (init 0), τ = 0.01.

#include "interventions/interchange.h"

namespace reft {
namespace {

class SigmoidMask final : public Intervention {
 public:
  explicit SigmoidMask(const InterventionOptions& o) : Intervention(o) {
    mask_ = register_parameter("mask", torch::zeros({o.embed_dim}, o.dtype));
    temperature_ = register_buffer("temperature", torch::tensor(0.01, o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) override {
    auto s = broadcast_source(h, source, "sigmoid_mask");
    auto m = torch::sigmoid(mask_ / temperature_).to(h.scalar_type());
    return (1 - m) * h + m * s;
  }

 private:
  torch::Tensor mask_, temperature_;
};

}  // namespace

std::shared_ptr<Intervention> make_sigmoid_mask(const InterventionOptions& o) {
  return std::make_shared<SigmoidMask>(o);
}

}  // namespace reft
