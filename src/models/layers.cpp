#include "models/layers.h"

#include <cmath>
#include <limits>

#include "models/kernels.h"
#include "reft/error.h"

namespace reft {

torch::Tensor Linear::operator()(const torch::Tensor& x) const {
  const int64_t in = weight.size(1);
  if (x.numel() == in) {
    auto v = x.reshape({in});
    auto y = kernels::gemv(weight, bias, v);
    if (!y.defined()) y = bias.defined() ? at::addmv(bias, weight, v) : at::mv(weight, v);
    auto shape = x.sizes().vec();
    shape.back() = weight.size(0);
    return y.view(shape);
  }
  return kernels::linear(x, weight, bias);
}

Linear load_linear(const WeightBuilder& w, const std::string& name, int64_t out, int64_t in,
                   bool bias) {
  Linear l;
  l.weight = w.get(name + ".weight", {out, in});
  if (bias) l.bias = w.get(name + ".bias", {out});
  return l;
}

std::vector<torch::Tensor> FusedLinear::operator()(const torch::Tensor& x) const {
  return fused(x).split_with_sizes(sizes, -1);
}

FusedLinear load_fused_linear(const WeightBuilder& w, const std::vector<std::string>& names,
                              const std::vector<int64_t>& outs, int64_t in, bool bias) {
  std::vector<torch::Tensor> weights, biases;
  for (size_t i = 0; i < names.size(); ++i) {
    weights.push_back(w.get(names[i] + ".weight", {outs[i], in}));
    if (bias) biases.push_back(w.get(names[i] + ".bias", {outs[i]}));
  }
  FusedLinear f;
  f.sizes = outs;
  f.fused.weight = torch::cat(weights, 0);
  if (bias) f.fused.bias = torch::cat(biases, 0);
  int64_t offset = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    w.register_parameter(names[i] + ".weight", f.fused.weight.narrow(0, offset, outs[i]));
    if (bias) w.register_parameter(names[i] + ".bias", f.fused.bias.narrow(0, offset, outs[i]));
    offset += outs[i];
  }
  return f;
}

torch::Tensor RmsNorm::operator()(const torch::Tensor& x) const {
  return kernels::rms_norm(x, weight, eps);
}

torch::Tensor LayerNorm::operator()(const torch::Tensor& x) const {
  return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

Rotary::Rotary(const ConfigReader& config, int64_t head_dim) {
  const RopeConfig rope = read_rope_config(config, head_dim);
  head_dim_ = head_dim;
  // Computed in float32 exactly as HF does: 1 / theta^(2i/d).
  auto exponent = torch::arange(0, head_dim_, 2, torch::kInt64).to(torch::kFloat32) /
                  static_cast<double>(head_dim_);
  inv_freq_ = torch::pow(rope.theta, exponent).reciprocal();
  if (rope.scaling == RopeConfig::Scaling::kLinear) {
    inv_freq_ = inv_freq_ / rope.factor;
  } else if (rope.scaling == RopeConfig::Scaling::kLlama3) {
    const double factor = rope.factor;
    const double low = rope.low_freq_factor;
    const double high = rope.high_freq_factor;
    const double old_context = rope.original_max_position_embeddings;
    const double low_wavelen = old_context / low, high_wavelen = old_context / high;
    auto wavelen = 2 * M_PI / inv_freq_;
    auto scaled = torch::where(wavelen > low_wavelen, inv_freq_ / factor, inv_freq_);
    auto smooth = (old_context / wavelen - low) / (high - low);
    auto smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv_freq_ = torch::where(medium, smoothed, scaled);
  }
}

void Rotary::grow(int64_t length, torch::Device device) {
  if (cos_.defined() && cos_.size(0) >= length && cos_.device() == device) return;
  int64_t capacity = std::max<int64_t>(length, cos_.defined() ? 2 * cos_.size(0) : 256);
  auto pos = torch::arange(capacity, torch::kInt64).to(torch::kFloat32);
  auto freqs = pos.unsqueeze(1) * inv_freq_.unsqueeze(0);  // (capacity, Dh/2)
  auto emb = torch::cat({freqs, freqs}, -1);
  cos_ = emb.cos().to(device);
  sin_ = emb.sin().to(device);
}

std::pair<torch::Tensor, torch::Tensor> Rotary::cos_sin(const torch::Tensor& positions,
                                                        torch::Dtype dtype) {
  const int64_t max_pos = positions.numel() ? positions.max().item<int64_t>() : 0;
  grow(max_pos + 1, positions.device());
  auto flat = positions.reshape({-1});
  auto shape = positions.sizes().vec();  // (B, T)
  shape.push_back(1);
  shape.push_back(head_dim_);  // (B, T, 1, Dh)
  auto cos = cos_.index_select(0, flat).view(shape);
  auto sin = sin_.index_select(0, flat).view(shape);
  if (dtype != torch::kFloat32) {
    cos = cos.to(dtype);
    sin = sin.to(dtype);
  }
  return {cos, sin};
}

torch::Tensor Rotary::apply(const torch::Tensor& x, const torch::Tensor& cos,
                            const torch::Tensor& sin) {
  return kernels::rotary(x, cos, sin);
}

torch::Tensor attention_bias(const torch::Tensor& key_mask, int64_t past, int64_t T, bool causal,
                             int64_t sliding_window, torch::Dtype dtype) {
  const int64_t B = key_mask.size(0), S = key_mask.size(1);
  auto options = torch::TensorOptions().device(key_mask.device());
  auto allowed = key_mask.to(torch::kBool).view({B, 1, 1, S});
  if (causal || sliding_window > 0) {
    auto q_pos = torch::arange(past, past + T, options.dtype(torch::kInt64)).view({T, 1});
    auto k_pos = torch::arange(S, options.dtype(torch::kInt64)).view({1, S});
    auto ok = causal ? k_pos.le(q_pos) : torch::ones({T, S}, options.dtype(torch::kBool));
    if (sliding_window > 0) ok = ok.logical_and(k_pos.gt(q_pos - sliding_window));
    allowed = allowed.logical_and(ok.view({1, 1, T, S}));
  } else {
    allowed = allowed.expand({B, 1, T, S});
  }
  const double lowest = std::numeric_limits<float>::lowest();
  auto zero = torch::zeros({}, options.dtype(dtype));
  auto neg = torch::full({}, dtype == torch::kFloat32 ? lowest : -1e4, options.dtype(dtype));
  if (dtype == torch::kBFloat16 || dtype == torch::kFloat64)
    neg = torch::full({}, -3.0e38, options.dtype(dtype));
  return torch::where(allowed, zero, neg);
}

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& bias, double scale) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dh = q.size(3);
  const int64_t Hkv = k.size(1), S = k.size(2), G = H / Hkv;
  // Query heads h = j·G + g share key/value head j (HF repeat_kv): fold G into the rows.
  auto qg = q.reshape({B, Hkv, G * T, Dh});
  // libtorch 1.13's CPU bmm runs a transposed (strided) operand ~5× slower than a contiguous one,
  // so kᵀ is materialised (S·Dh per head: small next to the products).
  auto scores = torch::matmul(qg, k.transpose(-1, -2).contiguous());  // (B, Hkv, G·T, S)
  scores.mul_(scale);
  if (bias.defined()) scores = scores.view({B, Hkv, G, T, S}).add_(bias.view({B, 1, 1, T, S}));
  auto probs = scores.dtype() == torch::kFloat32
                   ? torch::softmax(scores, -1)
                   : torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
  auto out = torch::matmul(probs.view({B, Hkv, G * T, S}), v.contiguous());  // (B, Hkv, G·T, Dh)
  return out.view({B, H, T, Dh}).transpose(1, 2).reshape({B, T, H * Dh});
}

std::pair<torch::Tensor, torch::Tensor> cache_append(KVCache& cache, int layer,
                                                     const torch::Tensor& k, const torch::Tensor& v,
                                                     int64_t past) {
  const int64_t T = k.size(2);
  if (past + T > cache.capacity())
    fail("[KVCache] expected at most ", cache.capacity(), " positions, found ", past + T,
         "; create the cache with a larger capacity");
  auto& ck = cache.keys[layer];
  auto& cv = cache.values[layer];
  ck.narrow(2, past, T).copy_(k);
  cv.narrow(2, past, T).copy_(v);
  return {ck.narrow(2, 0, past + T), cv.narrow(2, 0, past + T)};
}

torch::Tensor default_positions(const torch::Tensor& mask, const KVCache* cache) {
  auto pos = mask.cumsum(1) - 1;
  if (cache && cache->length > 0) pos = pos + cache->mask.sum(1, /*keepdim=*/true);
  return pos.clamp_min(0);
}

namespace {
torch::Tensor act_silu(const torch::Tensor& x) { return torch::silu(x); }
torch::Tensor act_gelu(const torch::Tensor& x) { return torch::gelu(x); }
torch::Tensor act_gelu_tanh(const torch::Tensor& x) { return torch::gelu(x, "tanh"); }
torch::Tensor act_relu(const torch::Tensor& x) { return torch::relu(x); }
torch::Tensor act_quick_gelu(const torch::Tensor& x) { return x * torch::sigmoid(1.702 * x); }
}  // namespace

Activation activation_by_name(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return act_silu;
  if (name == "gelu") return act_gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast")
    return act_gelu_tanh;
  if (name == "relu") return act_relu;
  if (name == "quick_gelu") return act_quick_gelu;
  fail("[", where,
       "] expected an activation (silu, gelu, gelu_new, gelu_pytorch_tanh, relu, quick_gelu), "
       "found '",
       name, "'");
}

torch::Tensor gather_rows(const torch::Tensor& x, const torch::Tensor& flat_index) {
  return x.reshape({-1, x.size(-1)}).index_select(0, flat_index);
}

}  // namespace reft
