#pragma once
// Helpers shared by the interchange family: the swapped dimensions k and a partial replacement.

#include <torch/torch.h>

#include "reft/intervention.h"

namespace reft {

/// The number of leading dimensions an interchange touches: interchange_dim, or all when 0.
inline int64_t interchange_width(const InterventionOptions& o, int64_t dim) {
  return o.interchange_dim > 0 ? std::min(o.interchange_dim, dim) : dim;
}

/// x with its first k columns replaced by f(x[:, :k]) (out of place, autograd-friendly).
template <class F>
torch::Tensor replace_leading(const torch::Tensor& x, int64_t k, F&& f) {
  const int64_t d = x.size(-1);
  if (k >= d) return f(x);
  return torch::cat({f(x.narrow(-1, 0, k)), x.narrow(-1, k, d - k)}, -1);
}

/// The source rows, broadcast to h's shape (a single steering vector (D) serves every row).
torch::Tensor broadcast_source(const torch::Tensor& h, const torch::Tensor& source,
                               const char* who);

}  // namespace reft
