/// Zero ablation: h[:, :k] ← 0 (pyvene ZeroIntervention).

#include "interventions/interchange.h"

namespace reft {
namespace {

class Zero final : public Intervention {
 public:
  using Intervention::Intervention;
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor&) override {
    const int64_t k = interchange_width(options_, h.size(-1));
    return replace_leading(h, k, [](const torch::Tensor& x) { return torch::zeros_like(x); });
  }
};

}  // namespace

std::shared_ptr<Intervention> make_zero(const InterventionOptions& o) {
  return std::make_shared<Zero>(o);
}

}  // namespace reft
