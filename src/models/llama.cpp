// LlamaForCausalLM, and the shared decoder of the LLaMA family (Mistral, Qwen2).
//
// Dimension legend: B batch, T tokens in this call, S key positions, D hidden, H heads,
// Hkv key/value heads, Dh head dim, I intermediate, L layers, V vocab.
//
//   h ← embed(ids)
//   per layer: h ← h + o(attn(rope(q), rope(k), v)(norm₁ h))
//              h ← h + down(act(gate x) · up x), x = norm₂ h
//   logits = lm_head(norm(h))
//
// The forward (mask, cache, sites, resume, logits modes) is BlockModel's (block_runner.h).

#include "models/llama.h"

#include <cmath>

#include "models/block_runner.h"
#include "models/kernels.h"
#include "models/layers.h"
#include "reft/error.h"

namespace reft {
namespace {

class LlamaModel final : public BlockModel {
 public:
  LlamaModel(const ModelSource& source, const LlamaVariant& variant);
  torch::Tensor lm_head_weight() const override { return lm_head_.weight; }
  ForwardCost forward_cost() const override;

 private:
  struct Layer {
    RmsNorm input_norm, post_norm;
    FusedLinear qkv;      // q_proj, k_proj, v_proj
    Linear o;             // o_proj
    FusedLinear gate_up;  // gate_proj, up_proj
    Linear down;          // down_proj
  };
  void prepare(BlockContext& ctx) override;
  torch::Tensor embed(const BlockContext& ctx) override;
  torch::Tensor block(int layer, const torch::Tensor& h, const BlockContext& ctx) override;
  torch::Tensor final_norm(const torch::Tensor& h) const override { return norm_(h); }
  bool has_token_head() const override { return true; }
  torch::Tensor token_head(const torch::Tensor& rows) const override { return lm_head_(rows); }
  torch::Tensor attention(const Layer& layer, int index, const torch::Tensor& x,
                          const BlockContext& ctx) const;

  torch::Tensor embed_;  // (V, D)
  std::vector<Layer> layers_;
  RmsNorm norm_;
  Linear lm_head_;
  std::unique_ptr<Rotary> rotary_;
  Activation act_;
  bool silu_ = false;  // the common case gets the fused SwiGLU kernel
};

LlamaModel::LlamaModel(const ModelSource& source, const LlamaVariant& variant)
    : BlockModel({.sliding_window = variant.sliding_window}) {
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

ForwardCost LlamaModel::forward_cost() const {
  const Layer& l = layers_.front();
  const double weights = l.qkv.fused.weight.numel() + l.o.weight.numel() +
                         l.gate_up.fused.weight.numel() + l.down.weight.numel();
  return {.num_layers = info_.num_layers,
          .layer_flops = 2 * weights,  // the gated MLP has three matrices
          .attention_flops = 4.0 * info_.num_heads * info_.head_dim,
          .head_flops = 2.0 * static_cast<double>(lm_head_.weight.numel()),
          .weight_bytes = weight_bytes_read_per_token({embed_})};
}

void LlamaModel::prepare(BlockContext& ctx) {
  std::tie(ctx.cos, ctx.sin) = rotary_->cos_sin(ctx.positions, info_.dtype);
}

torch::Tensor LlamaModel::embed(const BlockContext& ctx) {
  const auto& ids = ctx.input.input_ids;
  return embed_.index_select(0, ids.reshape({-1}).to(embed_.device()))
      .view({ctx.batch, ctx.tokens, info_.hidden_size});
}

torch::Tensor LlamaModel::attention(const Layer& layer, int index, const torch::Tensor& x,
                                    const BlockContext& ctx) const {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = info_.num_heads, Hkv = info_.num_kv_heads, Dh = info_.head_dim;
  const int64_t window = stack_.sliding_window;
  auto parts = layer.qkv(x);
  auto q = Rotary::apply(parts[0].view({B, T, H, Dh}), ctx.cos, ctx.sin)
               .permute({0, 2, 1, 3});  // (B, H, T, Dh)
  auto k = Rotary::apply(parts[1].view({B, T, Hkv, Dh}), ctx.cos, ctx.sin)
               .permute({0, 2, 1, 3});  // (B, Hkv, T, Dh)
  auto v = parts[2].view({B, T, Hkv, Dh}).permute({0, 2, 1, 3});
  if (ctx.cache)
    std::tie(k, v) = cache_append(*ctx.cache, index, k, v, ctx.past);  // (B, Hkv, S, Dh)
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  // Decode steps (a few queries, no autograd) take the fused kernel; prefill and training the
  // GEMMs.
  auto out = kernels::decode_attention(q, k, v, ctx.key_mask, scale, window);
  if (!out.defined())
    out = kernels::attention(q, k, v, ctx.key_mask, scale, /*causal=*/true, window);
  if (!out.defined())
    out = attend(q, k, v, ctx.bias, scale);  // (B, T, H·Dh): other dtypes, devices
  return layer.o(out);
}

torch::Tensor LlamaModel::block(int l, const torch::Tensor& h_in, const BlockContext& ctx) {
  const Layer& layer = layers_[l];
  auto x = ctx.site(l, Component::kAttentionInput, layer.input_norm(h_in));
  auto a = ctx.site(l, Component::kAttentionOutput, attention(layer, l, x, ctx));
  auto h = h_in + a;
  x = ctx.site(l, Component::kMlpInput, layer.post_norm(h));
  auto gu = layer.gate_up(x);
  auto m = ctx.site(l, Component::kMlpOutput,
                    layer.down(silu_ ? kernels::swiglu(gu[0], gu[1]) : act_(gu[0]) * gu[1]));
  return h + m;
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
