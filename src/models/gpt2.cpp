// GPT2LMHeadModel and GPT2Model (HF modeling_gpt2): a pre-LN decoder with learned positions.
//
// Dimension legend: B batch, T tokens in this call, S key positions (past + T), D hidden (n_embd),
// H heads (n_head), Dh head dim, I inner MLP size (n_inner, default 4·D), L layers, V vocab,
// P positions (n_positions).
//
//   h ← wte(ids) + wpe(pos)
//   per layer: h ← h + c_proj(attn(c_attn(ln_1 h)));  h ← h + mlp.c_proj(act(c_fc(ln_2 h)))
//   logits = ln_f(h) · wteᵀ (tied lm_head)
//
// The forward (mask, cache, sites, resume, logits modes) is BlockModel's (block_runner.h).
//
// Weights: GPT-2's Conv1D stores its weight as (in, out), the transpose of nn.Linear. The
// parameters keep that layout under their HF names (parameters() equals the checkpoint, so
// write_random_model round-trips); the Linear maps compute with a transposed view, no copy.

#include <cmath>

#include "models/block_runner.h"
#include "models/layers.h"
#include "models/loading.h"
#include "reft/error.h"

namespace reft {
namespace {

/// A GPT-2 Conv1D `name` (weight (in, out), bias (out)) as a Linear whose weight is the (out, in)
/// transposed view of the registered checkpoint tensor.
Linear load_conv1d(const WeightBuilder& w, const std::string& name, int64_t in, int64_t out) {
  Linear l;
  l.weight = w.get(name + ".weight", {in, out}).t();
  l.bias = w.get(name + ".bias", {out});
  return l;
}

class Gpt2Model final : public BlockModel {
 public:
  Gpt2Model(const ModelSource& source, bool lm_head);
  torch::Tensor lm_head_weight() const override { return lm_head_.weight; }
  ForwardCost forward_cost() const override;

 private:
  struct Layer {
    LayerNorm ln_1, ln_2;
    FusedLinear c_attn;  // attn.c_attn: q, k, v in one Conv1D
    Linear attn_proj;    // attn.c_proj
    Linear c_fc;         // mlp.c_fc
    Linear mlp_proj;     // mlp.c_proj
    double scale = 1.0;  // of q·kᵀ
  };
  torch::Tensor embed(const BlockContext& ctx) override;
  torch::Tensor block(int layer, const torch::Tensor& h, const BlockContext& ctx) override;
  torch::Tensor final_norm(const torch::Tensor& h) const override { return ln_f_(h); }
  bool has_token_head() const override { return lm_head_.weight.defined(); }
  torch::Tensor token_head(const torch::Tensor& rows) const override { return lm_head_(rows); }
  torch::Tensor attention(const Layer& layer, int index, const torch::Tensor& x,
                          const BlockContext& ctx) const;

  torch::Tensor wte_;  // (V, D)
  torch::Tensor wpe_;  // (P, D)
  std::vector<Layer> layers_;
  LayerNorm ln_f_;
  Linear lm_head_;  // undefined weight for GPT2Model
  Activation act_;
};

Gpt2Model::Gpt2Model(const ModelSource& source, bool lm_head) : BlockModel({}) {
  const auto& cfg = source.config;
  auto& in = info_;
  in.hidden_size = cfg.positive_any({"n_embd", "hidden_size"});
  in.num_layers = cfg.positive_any({"n_layer", "num_hidden_layers"});
  in.num_heads = cfg.positive_any({"n_head", "num_attention_heads"});
  in.num_kv_heads = in.num_heads;
  in.vocab_size = cfg.positive("vocab_size");
  in.max_position_embeddings = cfg.positive_any({"n_positions", "max_position_embeddings"});
  in.intermediate_size = cfg.has("n_inner") ? cfg.positive("n_inner") : 4 * in.hidden_size;
  in.kind = lm_head ? ModelKind::kCausalLM : ModelKind::kEncoder;
  in.causal = true;
  if (in.hidden_size % in.num_heads != 0)
    fail("[", cfg.where(), "] field 'n_head': expected a divisor of n_embd (", in.hidden_size,
         "), found ", in.num_heads);
  in.head_dim = in.hidden_size / in.num_heads;
  if (cfg.boolean_or("add_cross_attention", false))
    cfg.bad("add_cross_attention", "false (GPT-2 with cross-attention is not supported)");
  act_ = activation_by_name(cfg.string_or("activation_function", "gelu_new"),
                            cfg.where() + "] field 'activation_function'");
  const double eps = cfg.number_or("layer_norm_epsilon", 1e-5);
  const bool scale_weights = cfg.boolean_or("scale_attn_weights", true);
  const bool by_layer = cfg.boolean_or("scale_attn_by_inverse_layer_idx", false);
  // reorder_and_upcast_attn only changes the order of fp16/bf16 roundings: read, type-checked,
  // and otherwise the same math (attend already runs the softmax in float32).
  cfg.boolean_or("reorder_and_upcast_attn", false);

  const int64_t D = in.hidden_size, I = in.intermediate_size;
  WeightBuilder root(source);
  // GPT2LMHeadModel checkpoints name the body "transformer."; GPT2Model checkpoints (and the
  // original OpenAI conversion) have no prefix. Synthesized models follow HF's save_pretrained.
  std::string prefix = lm_head ? "transformer." : "";
  if (root.contains("transformer.wte.weight"))
    prefix = "transformer.";
  else if (root.contains("wte.weight"))
    prefix = "";
  const auto w = root.sub(prefix);
  wte_ = w.get("wte.weight", {in.vocab_size, D});
  wpe_ = w.get("wpe.weight", {in.max_position_embeddings, D});
  for (int64_t l = 0; l < in.num_layers; ++l) {
    const auto lw = w.sub("h." + std::to_string(l) + ".");
    Layer layer;
    layer.ln_1 = {lw.get("ln_1.weight", {D}), lw.get("ln_1.bias", {D}), eps};
    layer.c_attn = {load_conv1d(lw, "attn.c_attn", D, 3 * D), {D, D, D}};
    layer.attn_proj = load_conv1d(lw, "attn.c_proj", D, D);
    // The causal-mask buffers older transformers versions saved with the weights.
    lw.ignore("attn.bias");
    lw.ignore("attn.masked_bias");
    layer.ln_2 = {lw.get("ln_2.weight", {D}), lw.get("ln_2.bias", {D}), eps};
    layer.c_fc = load_conv1d(lw, "mlp.c_fc", D, I);
    layer.mlp_proj = load_conv1d(lw, "mlp.c_proj", I, D);
    layer.scale = scale_weights ? 1.0 / std::sqrt(static_cast<double>(in.head_dim)) : 1.0;
    if (by_layer) layer.scale /= static_cast<double>(l + 1);
    layers_.push_back(std::move(layer));
  }
  ln_f_ = {w.get("ln_f.weight", {D}), w.get("ln_f.bias", {D}), eps};
  if (lm_head) {
    if (cfg.boolean_or("tie_word_embeddings", true)) {
      lm_head_.weight = wte_;
      root.ignore("lm_head.weight");  // written by some exporters; the tie wins, as in HF
    } else {
      lm_head_.weight = root.get("lm_head.weight", {in.vocab_size, D});
    }
  }
  params_ = root.finish();
  finish_model_info(source, params_, info_);
}

ForwardCost Gpt2Model::forward_cost() const {
  const Layer& l = layers_.front();
  const double weights = l.c_attn.fused.weight.numel() + l.attn_proj.weight.numel() +
                         l.c_fc.weight.numel() + l.mlp_proj.weight.numel();
  return {.num_layers = info_.num_layers,
          .layer_flops = 2 * weights,  // a plain two-matrix MLP: 12·D² per layer when I = 4·D
          .attention_flops = 4.0 * info_.num_heads * info_.head_dim,
          .head_flops = has_token_head() ? 2.0 * static_cast<double>(lm_head_.weight.numel()) : 0,
          .weight_bytes = weight_bytes_read_per_token({wte_, wpe_})};
}

torch::Tensor Gpt2Model::embed(const BlockContext& ctx) {
  // Positions count the real tokens before each one, so left padding does not shift them; HF
  // uses arange(T) when none are passed, which agrees on the real tokens of right-padded rows.
  const auto& positions = ctx.positions;
  const int64_t P = info_.max_position_embeddings;
  if (positions.numel() && positions.max().item<int64_t>() >= P)
    fail("[forward] expected positions below n_positions (", P, "), found ",
         positions.max().item<int64_t>(), "; the sequence is longer than this GPT-2 supports");
  auto h = wte_.index_select(0, ctx.input.input_ids.reshape({-1}).to(wte_.device())) +
           wpe_.index_select(0, positions.reshape({-1}));
  return h.view({ctx.batch, ctx.tokens, info_.hidden_size});  // (B, T, D)
}

torch::Tensor Gpt2Model::attention(const Layer& layer, int index, const torch::Tensor& x,
                                   const BlockContext& ctx) const {
  const int64_t B = x.size(0), T = x.size(1), H = info_.num_heads, Dh = info_.head_dim;
  auto parts = layer.c_attn(x);
  auto q = parts[0].view({B, T, H, Dh}).permute({0, 2, 1, 3});  // (B, H, T, Dh)
  auto k = parts[1].view({B, T, H, Dh}).permute({0, 2, 1, 3});
  auto v = parts[2].view({B, T, H, Dh}).permute({0, 2, 1, 3});
  if (ctx.cache) std::tie(k, v) = cache_append(*ctx.cache, index, k, v, ctx.past);  // (B, H, S, Dh)
  return layer.attn_proj(attend(q, k, v, ctx.bias, layer.scale));                   // (B, T, D)
}

torch::Tensor Gpt2Model::block(int l, const torch::Tensor& h_in, const BlockContext& ctx) {
  const Layer& layer = layers_[l];
  auto x = ctx.site(l, Component::kAttentionInput, layer.ln_1(h_in));
  auto h = h_in + ctx.site(l, Component::kAttentionOutput, attention(layer, l, x, ctx));
  x = ctx.site(l, Component::kMlpInput, layer.ln_2(h));
  return h + ctx.site(l, Component::kMlpOutput, layer.mlp_proj(act_(layer.c_fc(x))));
}

}  // namespace

std::unique_ptr<Model> load_gpt2_lm_head(const ModelSource& source) {
  return std::make_unique<Gpt2Model>(source, /*lm_head=*/true);
}

std::unique_ptr<Model> load_gpt2_model(const ModelSource& source) {
  return std::make_unique<Gpt2Model>(source, /*lm_head=*/false);
}

}  // namespace reft
