/// Collect: h unchanged; the gathered rows (N, D) are recorded, detached, for reft collect and
/// for gathering source representations (pyvene CollectIntervention).

#include "interventions/collect.h"

namespace reft {

torch::Tensor CollectIntervention::forward(const torch::Tensor& h, const torch::Tensor&) {
  collected_.push_back(h.detach());
  return h;
}

std::vector<torch::Tensor> CollectIntervention::take() { return std::exchange(collected_, {}); }

std::shared_ptr<Intervention> make_collect(const InterventionOptions& o) {
  return std::make_shared<CollectIntervention>(o);
}

}  // namespace reft
