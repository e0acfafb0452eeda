#pragma once
// Building blocks shared by the architectures: linear maps, norms, rotary embeddings, attention
// with GQA, padding masks and a KV cache, and the MLPs.
//
// Dimension legend: B batch, T tokens in this call, S key positions (past + T), D hidden,
// H query heads, Hkv key/value heads, G = H / Hkv, Dh head dim, I intermediate size.

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "models/loading.h"

namespace reft {

/// y = x Wᵀ + b with W (out, in). Single rows use a matrix-vector product, which streams the
/// weight at memory speed; the GEMM path with one row does not (measured 3× slower here).
struct Linear {
  torch::Tensor weight;  // (out, in)
  torch::Tensor bias;    // (out) or undefined
  torch::Tensor operator()(const torch::Tensor& x) const;
  int64_t out_features() const { return weight.size(0); }
};

/// Loads `name.weight` (out, in) and, when `bias`, `name.bias`.
Linear load_linear(const WeightBuilder& w, const std::string& name, int64_t out, int64_t in,
                   bool bias);

/// Several linear maps over the same input fused into one matmul (q/k/v; gate/up). The parts
/// stay registered under their HF names as views of the fused weight, so nothing is duplicated.
struct FusedLinear {
  Linear fused;
  std::vector<int64_t> sizes;  // output sizes of the parts
  std::vector<torch::Tensor> operator()(const torch::Tensor& x) const;
};
FusedLinear load_fused_linear(const WeightBuilder& w, const std::vector<std::string>& names,
                              const std::vector<int64_t>& outs, int64_t in, bool bias);

/// x · rsqrt(mean(x²) + eps) · w, computed in float32 as HF does.
struct RmsNorm {
  torch::Tensor weight;
  double eps = 1e-6;
  torch::Tensor operator()(const torch::Tensor& x) const;
};

struct LayerNorm {
  torch::Tensor weight, bias;
  double eps = 1e-5;
  torch::Tensor operator()(const torch::Tensor& x) const;
};

/// Rotary position embedding (HF "rotate_half" layout) with optional llama3 / linear scaling.
class Rotary {
 public:
  /// Reads rope_theta, rope_scaling and the partial rotary factor from config.json.
  Rotary(const ConfigReader& config, int64_t head_dim);
  /// cos, sin: (B, 1, T, Dh) in `dtype` for the given positions (B, T).
  std::pair<torch::Tensor, torch::Tensor> cos_sin(const torch::Tensor& positions,
                                                  torch::Dtype dtype);
  /// x * cos + rotate_half(x) * sin for x (B, H, T, Dh).
  static torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& cos,
                             const torch::Tensor& sin);

 private:
  void grow(int64_t length, torch::Device device);
  torch::Tensor inv_freq_;   // (Dh/2) float32
  torch::Tensor cos_, sin_;  // (capacity, Dh) float32
  int64_t head_dim_;
};

/// The additive attention bias (B, 1, T, S): 0 where a query may attend, a large negative value
/// elsewhere (finite, so rows with no valid key give uniform weights instead of NaN, as HF's
/// eager path does). `key_mask` (B, S) marks real keys; `causal` hides future keys, with query t
/// sitting at key position past + t; `sliding_window` > 0 also hides keys older than the window.
torch::Tensor attention_bias(const torch::Tensor& key_mask, int64_t past, int64_t T, bool causal,
                             int64_t sliding_window, torch::Dtype dtype);

/// softmax(q kᵀ / √Dh + bias) v with grouped key/value heads.
/// q (B, H, T, Dh), k/v (B, Hkv, S, Dh), bias (B, 1, T, S) or undefined → (B, T, H·Dh).
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& bias, double scale);

/// Writes k/v (B, Hkv, T, Dh) at [past, past+T) of the layer's cache tensors and returns the
/// filled prefix [0, past+T) as views.
std::pair<torch::Tensor, torch::Tensor> cache_append(KVCache& cache, int layer,
                                                     const torch::Tensor& k, const torch::Tensor& v,
                                                     int64_t past);

/// Default positions: the number of real tokens before each position (left padding aware), offset
/// by the real tokens already in the cache. mask (B, T) int64.
torch::Tensor default_positions(const torch::Tensor& mask, const KVCache* cache);

/// Activation by HF name: silu, gelu, gelu_new, gelu_pytorch_tanh, relu, … Throws for others.
using Activation = torch::Tensor (*)(const torch::Tensor&);
Activation activation_by_name(const std::string& name, const std::string& where);

/// Indices (N) b·T + t into a (B·T) flattening → rows of x (B, T, D) as (N, D).
torch::Tensor gather_rows(const torch::Tensor& x, const torch::Tensor& flat_index);

}  // namespace reft
