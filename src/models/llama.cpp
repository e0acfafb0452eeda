// LlamaForCausalLM, and the shared decoder of the LLaMA family (Mistral, Qwen2).
//
// Dimension legend: B batch, T tokens in this call, S key positions, D hidden, H heads,
// Hkv key/value heads, Dh head dim, I intermediate, L layers, V vocab.
//
//   h ← embed(ids)
//   per layer: h ← h + o(attn(rope(q), rope(k), v)(norm₁ h));  h ← h + down(act(gate x) · up x), x
//   = norm₂ h logits = lm_head(norm(h))

#include "models/llama.h"

#include <cmath>

#include "models/kernels.h"
#include "models/layers.h"
#include "reft/error.h"

namespace reft {
namespace {

class LlamaModel final : public Model {
 public:
  LlamaModel(const ModelSource& source, const LlamaVariant& variant);
  ForwardOutput forward(const ForwardInput& input) override;
  torch::Tensor lm_head_weight() const override { return lm_head_.weight; }
  torch::Tensor logits_from_hidden(const torch::Tensor& last_hidden) const override {
    return lm_head_(last_hidden);
  }

 private:
  struct Layer {
    RmsNorm input_norm, post_norm;
    FusedLinear qkv;      // q_proj, k_proj, v_proj
    Linear o;             // o_proj
    FusedLinear gate_up;  // gate_proj, up_proj
    Linear down;          // down_proj
  };
  torch::Tensor attention(const Layer& layer, int index, const torch::Tensor& x,
                          const torch::Tensor& cos, const torch::Tensor& sin,
                          const torch::Tensor& bias, const torch::Tensor& key_mask, KVCache* cache,
                          int64_t past);

  torch::Tensor embed_;  // (V, D)
  std::vector<Layer> layers_;
  RmsNorm norm_;
  Linear lm_head_;
  std::unique_ptr<Rotary> rotary_;
  Activation act_;
  bool silu_ = false;  // the common case gets the fused SwiGLU kernel
  int64_t sliding_window_;
};

LlamaModel::LlamaModel(const ModelSource& source, const LlamaVariant& variant) {
  const auto& cfg = source.config;
  auto& in = info_;
  in.hidden_size = cfg.positive("hidden_size");
  in.num_layers = cfg.positive("num_hidden_layers");
  in.num_heads = cfg.positive("num_attention_heads");
  in.num_kv_heads =
      cfg.has("num_key_value_heads") ? cfg.positive("num_key_value_heads") : in.num_heads;
  in.head_dim = cfg.has("head_dim") ? cfg.positive("head_dim") : in.hidden_size / in.num_heads;
  in.intermediate_size = cfg.positive("intermediate_size");
  in.vocab_size = cfg.positive("vocab_size");
  in.max_position_embeddings = cfg.integer_or("max_position_embeddings", 0);
  in.kind = ModelKind::kCausalLM;
  in.causal = true;
  if (in.num_heads % in.num_kv_heads != 0)
    fail("[", cfg.where(),
         "] field 'num_key_value_heads': expected a divisor of num_attention_heads (", in.num_heads,
         "), found ", in.num_kv_heads);
  if (!cfg.has("head_dim") && in.hidden_size % in.num_heads != 0)
    fail("[", cfg.where(), "] field 'num_attention_heads': expected a divisor of hidden_size (",
         in.hidden_size, "), found ", in.num_heads);
  if (cfg.integer_or("pretraining_tp", 1) < 1) cfg.bad("pretraining_tp", "a positive integer");
  act_ =
      activation_by_name(cfg.string_or("hidden_act", "silu"), cfg.where() + "] field 'hidden_act'");
  silu_ = cfg.string_or("hidden_act", "silu") == "silu" ||
          cfg.string_or("hidden_act", "silu") == "swish";
  sliding_window_ = variant.sliding_window;
  rotary_ = std::make_unique<Rotary>(cfg, in.head_dim);
  const double eps = cfg.number_or("rms_norm_eps", 1e-6);
  const bool tied = cfg.boolean_or("tie_word_embeddings", variant.tie_default);

  const int64_t D = in.hidden_size, H = in.num_heads, Hkv = in.num_kv_heads, Dh = in.head_dim;
  WeightBuilder w(source);
  embed_ = w.get("model.embed_tokens.weight", {in.vocab_size, D});
  for (int64_t l = 0; l < in.num_layers; ++l) {
    const auto lw = w.sub("model.layers." + std::to_string(l) + ".");
    Layer layer;
    layer.input_norm = {lw.get("input_layernorm.weight", {D}), eps};
    const auto att = lw.sub("self_attn.");
    layer.qkv = load_fused_linear(att, {"q_proj", "k_proj", "v_proj"}, {H * Dh, Hkv * Dh, Hkv * Dh},
                                  D, variant.qkv_bias);
    layer.o = load_linear(att, "o_proj", D, H * Dh, variant.o_bias);
    att.ignore("rotary_emb.inv_freq");  // a non-persistent buffer some older checkpoints contain
    layer.post_norm = {lw.get("post_attention_layernorm.weight", {D}), eps};
    const auto mlp = lw.sub("mlp.");
    layer.gate_up =
        load_fused_linear(mlp, {"gate_proj", "up_proj"},
                          {in.intermediate_size, in.intermediate_size}, D, variant.mlp_bias);
    layer.down = load_linear(mlp, "down_proj", D, in.intermediate_size, variant.mlp_bias);
    layers_.push_back(std::move(layer));
  }
  norm_ = {w.get("model.norm.weight", {D}), eps};
  if (tied) {
    lm_head_.weight = embed_;
    w.ignore("lm_head.weight");  // saved anyway by some exporters; the tie wins, as in HF
  } else {
    lm_head_.weight = w.get("lm_head.weight", {in.vocab_size, D});
  }
  params_ = w.finish();
  finish_model_info(source, params_, info_);
}

torch::Tensor LlamaModel::attention(const Layer& layer, int index, const torch::Tensor& x,
                                    const torch::Tensor& cos, const torch::Tensor& sin,
                                    const torch::Tensor& bias, const torch::Tensor& key_mask,
                                    KVCache* cache, int64_t past) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = info_.num_heads, Hkv = info_.num_kv_heads, Dh = info_.head_dim;
  auto parts = layer.qkv(x);
  auto q =
      Rotary::apply(parts[0].view({B, T, H, Dh}), cos, sin).permute({0, 2, 1, 3});  // (B, H, T, Dh)
  auto k = Rotary::apply(parts[1].view({B, T, Hkv, Dh}), cos, sin)
               .permute({0, 2, 1, 3});  // (B, Hkv, T, Dh)
  auto v = parts[2].view({B, T, Hkv, Dh}).permute({0, 2, 1, 3});
  if (cache) std::tie(k, v) = cache_append(*cache, index, k, v, past);  // (B, Hkv, S, Dh)
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  // Decode steps (a few queries, no autograd) take the fused kernel; prefill and training the
  // GEMMs.
  auto out = kernels::decode_attention(q, k, v, key_mask, scale, sliding_window_);
  if (!out.defined())
    out = kernels::attention(q, k, v, key_mask, scale, /*causal=*/true, sliding_window_);
  if (!out.defined()) out = attend(q, k, v, bias, scale);  // (B, T, H·Dh): other dtypes and devices
  return layer.o(out);
}

ForwardOutput LlamaModel::forward(const ForwardInput& input) {
  const auto& ids = input.input_ids;
  if (!ids.defined() || ids.dim() != 2) fail("[forward] expected input_ids of shape (B, T)");
  const int64_t B = ids.size(0), T = ids.size(1), L = info_.num_layers;
  const auto device = embed_.device();
  auto mask = input.attention_mask.defined()
                  ? input.attention_mask.to(device, torch::kInt64)
                  : torch::ones({B, T}, torch::dtype(torch::kInt64).device(device));
  KVCache* cache = input.cache;
  const int64_t past = cache ? cache->length : 0;
  if (cache && cache->batch() != B)
    fail("[forward] expected a cache for ", B, " rows, found ", cache->batch());
  auto positions = input.position_ids.defined() ? input.position_ids.to(device, torch::kInt64)
                                                : default_positions(mask, cache);
  auto key_mask = cache && past > 0 ? torch::cat({cache->mask, mask}, 1) : mask;  // (B, S)
  const int64_t S = past + T;
  const bool window_bites = sliding_window_ > 0 && S > sliding_window_;
  torch::Tensor bias;
  if (T > 1 || window_bites || !key_mask.all().item<bool>())
    bias = attention_bias(key_mask, past, T, /*causal=*/true, sliding_window_, info_.dtype);
  auto [cos, sin] = rotary_->cos_sin(positions, info_.dtype);

  const int stop = input.stop_layer >= 0 ? std::min<int>(input.stop_layer, L) : static_cast<int>(L);
  ForwardOutput out;
  torch::Tensor h;
  if (input.start_hidden.defined()) {
    h = input.start_hidden;
  } else {
    h = embed_.index_select(0, ids.reshape({-1}).to(device)).view({B, T, info_.hidden_size});
  }
  if (input.output_hidden_states) out.hidden_states.push_back(h);
  SiteHooks* hooks = input.hooks;
  if (hooks) hooks->begin_forward(input);
  auto site = [&](int l, Component c, torch::Tensor x) {
    return hooks && hooks->wants(l, c) ? hooks->at_site(l, c, x) : x;
  };
  // A resumed forward's state is the output of block start_layer − 1: its block_output site fires
  // here, so an intervention there applies to the cached state (frozen-prefix caching).
  if (input.start_hidden.defined() && input.start_layer > 0)
    h = site(input.start_layer - 1, Component::kBlockOutput, h);
  for (int l = input.start_layer; l < stop; ++l) {
    const Layer& layer = layers_[l];
    h = site(l, Component::kBlockInput, h);
    auto x = site(l, Component::kAttentionInput, layer.input_norm(h));
    auto a = site(l, Component::kAttentionOutput,
                  attention(layer, l, x, cos, sin, bias, key_mask, cache, past));
    h = h + a;
    x = site(l, Component::kMlpInput, layer.post_norm(h));
    auto gu = layer.gate_up(x);
    auto m = site(l, Component::kMlpOutput,
                  layer.down(silu_ ? kernels::swiglu(gu[0], gu[1]) : act_(gu[0]) * gu[1]));
    h = h + m;
    h = site(l, Component::kBlockOutput, h);
    if (input.output_hidden_states && l + 1 < L) out.hidden_states.push_back(h);
  }
  if (cache) {
    cache->mask = torch::cat({cache->mask, mask}, 1);
    cache->length += T;
  }
  out.last_block = h;
  if (stop < L) return out;

  switch (input.logits) {
    case LogitsMode::kLast:
    case LogitsMode::kSelected: {
      auto rows = input.logits == LogitsMode::kLast ? h.select(1, T - 1)
                                                    : gather_rows(h, input.logits_index);
      if (input.output_hidden_states) {
        out.last_hidden = norm_(h);
        out.hidden_states.push_back(out.last_hidden);
      }
      out.logits = lm_head_(norm_(rows));
      break;
    }
    case LogitsMode::kAll:
    case LogitsMode::kNone:
      out.last_hidden = norm_(h);
      if (input.output_hidden_states) out.hidden_states.push_back(out.last_hidden);
      if (input.logits == LogitsMode::kAll) out.logits = lm_head_(out.last_hidden);
      break;
  }
  return out;
}

}  // namespace

std::unique_ptr<Model> build_llama_family(const ModelSource& source, const LlamaVariant& variant) {
  return std::make_unique<LlamaModel>(source, variant);
}

std::unique_ptr<Model> load_llama(const ModelSource& source) {
  LlamaVariant v;
  v.qkv_bias = v.o_bias = source.config.boolean_or("attention_bias", false);
  v.mlp_bias = source.config.boolean_or("mlp_bias", false);
  return build_llama_family(source, v);
}

}  // namespace reft
