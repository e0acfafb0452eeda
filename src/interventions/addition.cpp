/// Addition: h[:, :k] ← h[:, :k] + s[:, :k] (pyvene AdditionIntervention). With a fixed source
/// vector scaled by α this is activation steering (reft steer).

#include "interventions/interchange.h"

namespace reft {
namespace {

class Addition final : public Intervention {
 public:
  using Intervention::Intervention;
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) override {
    auto s = broadcast_source(h, source, "addition");
    const int64_t k = interchange_width(options_, h.size(-1));
    return replace_leading(h, k, [&](const torch::Tensor& x) { return x + s.narrow(-1, 0, x.size(-1)); });
  }
  bool needs_source() const override { return true; }
};

}  // namespace

std::shared_ptr<Intervention> make_addition(const InterventionOptions& o) { return std::make_shared<Addition>(o); }

}  // namespace reft
