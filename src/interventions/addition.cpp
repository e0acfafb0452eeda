/// Addition: h[:, :k] ← h[:, :k] + s[:, :k] (pyvene AdditionIntervention). With
/// `constant_source` s is the stored buffer `source_representation` (D) — pyvene's constant-source
/// form — so α·v there is activation steering (reft steer): no source run is needed and the edit
/// applies to generated tokens as well.

#include "interventions/interchange.h"

namespace reft {
namespace {

class Addition final : public Intervention {
 public:
  explicit Addition(const InterventionOptions& o) : Intervention(o) {
    if (o.constant_source)
      source_ = register_buffer("source_representation", torch::zeros({o.embed_dim}, o.dtype));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) override {
    auto s = broadcast_source(h, options_.constant_source ? source_ : source, "addition");
    const int64_t k = interchange_width(options_, h.size(-1));
    return replace_leading(h, k,
                           [&](const torch::Tensor& x) { return x + s.narrow(-1, 0, x.size(-1)); });
  }
  bool needs_source() const override { return !options_.constant_source; }
  bool is_constant() const override { return options_.constant_source; }

 private:
  torch::Tensor source_;
};

}  // namespace

std::shared_ptr<Intervention> make_addition(const InterventionOptions& o) {
  return std::make_shared<Addition>(o);
}

}  // namespace reft
