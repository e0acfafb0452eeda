/// Subtraction: h[:, :k] ← h[:, :k] − s[:, :k] (pyvene SubtractionIntervention).

#include "interventions/interchange.h"

namespace reft {
namespace {

class Subtraction final : public Intervention {
 public:
  using Intervention::Intervention;
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) override {
    auto s = broadcast_source(h, source, "subtraction");
    const int64_t k = interchange_width(options_, h.size(-1));
    return replace_leading(h, k,
                           [&](const torch::Tensor& x) { return x - s.narrow(-1, 0, x.size(-1)); });
  }
};

}  // namespace

std::shared_ptr<Intervention> make_subtraction(const InterventionOptions& o) {
  return std::make_shared<Subtraction>(o);
}

}  // namespace reft
