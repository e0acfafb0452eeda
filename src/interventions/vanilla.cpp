/// Vanilla interchange: h[:, :k] ← s[:, :k] (k = interchange_dim, all dims by default).
/// pyvene VanillaIntervention: activation patching with a counterfactual source.

#include "interventions/interchange.h"
#include "reft/error.h"

namespace reft {

torch::Tensor broadcast_source(const torch::Tensor& h, const torch::Tensor& source,
                               const char* who) {
  if (!source.defined()) fail("[", who, "] expected a source representation, found none");
  if (source.size(-1) != h.size(-1))
    fail("[", who, "] expected source rows of width ", h.size(-1), ", found ", source.sizes());
  return source.to(h.scalar_type()).expand_as(h);
}

namespace {

class Vanilla final : public Intervention {
 public:
  using Intervention::Intervention;
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) override {
    auto s = broadcast_source(h, source, "vanilla");
    const int64_t k = interchange_width(options_, h.size(-1));
    return replace_leading(h, k,
                           [&](const torch::Tensor& x) { return s.narrow(-1, 0, x.size(-1)); });
  }
};

}  // namespace

std::shared_ptr<Intervention> make_vanilla(const InterventionOptions& o) {
  return std::make_shared<Vanilla>(o);
}

}  // namespace reft
