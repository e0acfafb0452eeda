// The post-LN encoders: BertModel, BertForMaskedLM, BertForSequenceClassification and the RoBERTa
// equivalents (HF modeling_bert / modeling_roberta).
//
// Dimension legend: B batch, T tokens, D hidden, H heads, Dh head dim, I intermediate size,
// L layers, V vocab, P positions (max_position_embeddings), C num_labels.
//
//   h ← LayerNorm(word(ids) + position(pos) + token_type(types))
//   per layer: a ← LayerNorm(h + attention.output.dense(attn(q, k, v of h)))
//              h ← LayerNorm(a + output.dense(act(intermediate.dense(a))))
//   MLM:            logits = decoder(LayerNorm(act(dense(h)))) + bias, decoder tied to `word`
//   classification: BERT    logits = classifier(tanh(pooler.dense(h[:, 0])))
//                   RoBERTa logits = out_proj(tanh(dense(h[:, 0])))
//
// Sites (the same six as the decoders; pyvene has no BERT/RoBERTa mapping, see docs/models.md):
//   block_input       h entering layer l (the residual stream)
//   attention_input   the same values, feeding q/k/v only (the residual add uses block_input)
//   attention_output  attention.output.dense output, before the residual add + LayerNorm
//   mlp_input         a, feeding intermediate.dense only (the residual add uses a)
//   mlp_output        output.dense output, before the residual add + LayerNorm
//   block_output      the layer's output = hidden.(l+1); what pyreft hooks as `layer[l].output`

#include <cmath>

#include "models/block_runner.h"
#include "models/layers.h"
#include "models/loading.h"
#include "reft/error.h"

namespace reft {
namespace {

enum class Head { kNone, kMaskedLM, kClassification };

/// What distinguishes BERT from RoBERTa and the head classes from each other.
struct EncoderVariant {
  bool roberta = false;
  Head head = Head::kNone;
};

class EncoderModel final : public BlockModel {
 public:
  EncoderModel(const ModelSource& source, const EncoderVariant& variant);
  torch::Tensor lm_head_weight() const override { return decoder_.weight; }
  torch::Tensor classify(const torch::Tensor& pooled) const override;
  ForwardCost forward_cost() const override;

 private:
  struct Layer {
    FusedLinear qkv;      // attention.self.query, .key, .value
    Linear attn_out;      // attention.output.dense
    LayerNorm attn_norm;  // attention.output.LayerNorm
    Linear inter;         // intermediate.dense
    Linear out;           // output.dense
    LayerNorm out_norm;   // output.LayerNorm
  };
  torch::Tensor embed(const BlockContext& ctx) override;
  torch::Tensor block(int layer, const torch::Tensor& h, const BlockContext& ctx) override;
  bool has_token_head() const override { return variant_.head == Head::kMaskedLM; }
  /// The MLM head: decoder(LayerNorm(act(dense(h)))) + bias.
  torch::Tensor token_head(const torch::Tensor& h) const override;
  void load_heads(const ModelSource& source, const WeightBuilder& root, const WeightBuilder& body,
                  double eps);
  torch::Tensor positions(const ForwardInput& input, const torch::Tensor& ids) const;

  EncoderVariant variant_;
  std::string where_;
  torch::Tensor word_, position_, token_type_;  // (V, D), (P, D), (type_vocab_size, D)
  LayerNorm embed_norm_;
  std::vector<Layer> layers_;
  Activation act_ = nullptr;
  int64_t pad_id_ = 0;
  // Heads; each is present only where the class has it.
  Linear pooler_;                       // BERT pooler.dense (tanh)
  Linear transform_;                    // MLM: cls.predictions.transform.dense / lm_head.dense
  LayerNorm transform_norm_;            // MLM: its LayerNorm
  Activation transform_act_ = nullptr;  // MLM: hidden_act for BERT, exact gelu for RoBERTa
  Linear decoder_;                      // MLM: (V, D) tied to word_, bias (V)
  Linear cls_dense_, cls_out_;          // classification: BERT classifier = cls_out_ only
};

EncoderModel::EncoderModel(const ModelSource& source, const EncoderVariant& variant)
    : BlockModel({.final_norm = false}), variant_(variant) {
  const auto& cfg = source.config;
  where_ = cfg.where();
  auto& in = info_;
  in.hidden_size = cfg.positive("hidden_size");
  in.num_layers = cfg.positive("num_hidden_layers");
  in.num_heads = cfg.positive("num_attention_heads");
  in.num_kv_heads = in.num_heads;
  in.intermediate_size = cfg.positive("intermediate_size");
  in.vocab_size = cfg.positive("vocab_size");
  in.max_position_embeddings = cfg.positive("max_position_embeddings");
  in.causal = false;
  in.kind = variant.head == Head::kMaskedLM         ? ModelKind::kMaskedLM
            : variant.head == Head::kClassification ? ModelKind::kSequenceClassification
                                                    : ModelKind::kEncoder;
  if (in.hidden_size % in.num_heads != 0)
    fail("[", where_, "] field 'num_attention_heads': expected a divisor of hidden_size (",
         in.hidden_size, "), found ", in.num_heads);
  in.head_dim = in.hidden_size / in.num_heads;
  const std::string position_type = cfg.string_or("position_embedding_type", "absolute");
  if (position_type != "absolute")
    cfg.bad("position_embedding_type",
            "\"absolute\" (relative position embeddings are not supported)");
  if (cfg.boolean_or("is_decoder", false))
    cfg.bad("is_decoder", "false (BERT/RoBERTa as a causal decoder is not supported)");
  if (cfg.boolean_or("add_cross_attention", false))
    cfg.bad("add_cross_attention", "false (cross-attention is not supported)");
  act_ = activation_by_name(cfg.string_or("hidden_act", "gelu"), where_ + "] field 'hidden_act'");
  // RoBERTa's positions count from padding_idx = pad_token_id, so it must be known.
  pad_id_ = cfg.integer_or("pad_token_id", variant.roberta ? 1 : 0);  // HF's config defaults
  const double eps = cfg.number_or("layer_norm_eps", 1e-12);
  const int64_t types = cfg.has("type_vocab_size") ? cfg.positive("type_vocab_size") : 2;
  if (variant.head == Head::kClassification) {
    const auto& json = cfg.json();
    if (json.contains("id2label") && json["id2label"].is_object() && !json["id2label"].empty())
      in.num_labels = static_cast<int64_t>(json["id2label"].size());
    else
      in.num_labels = cfg.has("num_labels") ? cfg.positive("num_labels") : 2;  // HF's default
  }

  const int64_t D = in.hidden_size, I = in.intermediate_size;
  WeightBuilder root(source);
  // Head classes save the body under "bert." / "roberta."; bare models usually without it.
  const std::string base = variant.roberta ? "roberta." : "bert.";
  std::string prefix = variant.head == Head::kNone ? "" : base;
  if (root.contains(base + "embeddings.word_embeddings.weight"))
    prefix = base;
  else if (root.contains("embeddings.word_embeddings.weight"))
    prefix = "";
  const auto body = root.sub(prefix);
  const auto emb = body.sub("embeddings.");
  word_ = emb.get("word_embeddings.weight", {in.vocab_size, D});
  position_ = emb.get("position_embeddings.weight", {in.max_position_embeddings, D});
  token_type_ = emb.get("token_type_embeddings.weight", {types, D});
  embed_norm_ = {emb.get("LayerNorm.weight", {D}), emb.get("LayerNorm.bias", {D}), eps};
  emb.ignore("position_ids");    // persistent arange buffer in older checkpoints
  emb.ignore("token_type_ids");  // and its zeros twin
  for (int64_t l = 0; l < in.num_layers; ++l) {
    const auto lw = body.sub("encoder.layer." + std::to_string(l) + ".");
    Layer layer;
    layer.qkv = load_fused_linear(lw.sub("attention.self."), {"query", "key", "value"}, {D, D, D},
                                  D, /*bias=*/true);
    layer.attn_out = load_linear(lw, "attention.output.dense", D, D, true);
    layer.attn_norm = {lw.get("attention.output.LayerNorm.weight", {D}),
                       lw.get("attention.output.LayerNorm.bias", {D}), eps};
    layer.inter = load_linear(lw, "intermediate.dense", I, D, true);
    layer.out = load_linear(lw, "output.dense", D, I, true);
    layer.out_norm = {lw.get("output.LayerNorm.weight", {D}), lw.get("output.LayerNorm.bias", {D}),
                      eps};
    layers_.push_back(std::move(layer));
  }
  load_heads(source, root, body, eps);
  params_ = root.finish();
  finish_model_info(source, params_, info_);
}

void EncoderModel::load_heads(const ModelSource& source, const WeightBuilder& root,
                              const WeightBuilder& body, double eps) {
  const auto& cfg = source.config;
  const int64_t D = info_.hidden_size, V = info_.vocab_size;
  const bool synthesized = !source.checkpoint.has_value();
  // The pooler: BERT classification needs it; bare models keep it when the checkpoint has it (HF
  // builds it by default, so synthesized bare models get one); MLM heads and RoBERTa
  // classification have none, and HF drops a stored one unused, as done here.
  const bool bare = variant_.head == Head::kNone;
  const bool bert_cls = !variant_.roberta && variant_.head == Head::kClassification;
  if (bert_cls || (bare && (synthesized || body.contains("pooler.dense.weight")))) {
    pooler_ = load_linear(body, "pooler.dense", D, D, true);
  } else {
    body.ignore("pooler.dense.weight");
    body.ignore("pooler.dense.bias");
  }
  const bool tied = cfg.boolean_or("tie_word_embeddings", true);
  if (variant_.head == Head::kMaskedLM) {
    // BERT: cls.predictions.{transform.dense, transform.LayerNorm, decoder, bias};
    // RoBERTa: lm_head.{dense, layer_norm, decoder, bias}, always with exact gelu.
    const auto head = variant_.roberta ? root.sub("lm_head.") : root.sub("cls.predictions.");
    const std::string dense = variant_.roberta ? "dense" : "transform.dense";
    const std::string norm = variant_.roberta ? "layer_norm" : "transform.LayerNorm";
    transform_ = load_linear(head, dense, D, D, true);
    transform_norm_ = {head.get(norm + ".weight", {D}), head.get(norm + ".bias", {D}), eps};
    transform_act_ = variant_.roberta ? activation_by_name("gelu", where_)
                                      : activation_by_name(cfg.string_or("hidden_act", "gelu"),
                                                           where_ + "] field 'hidden_act'");
    if (tied) {
      decoder_.weight = word_;
      head.ignore("decoder.weight");  // older checkpoints store the tied copy
    } else {
      decoder_.weight = head.get("decoder.weight", {V, D});
    }
    // decoder.bias is tied to `bias` in HF; old checkpoints store both, new ones only `bias`.
    if (synthesized || head.contains("bias")) {
      decoder_.bias = head.get("bias", {V});
      head.ignore("decoder.bias");
    } else {
      decoder_.bias = head.get("decoder.bias", {V});
    }
    // BertForPreTraining checkpoints (bert-base-*) also carry the next-sentence head.
    if (!variant_.roberta) {
      root.ignore("cls.seq_relationship.weight");
      root.ignore("cls.seq_relationship.bias");
    }
  }
  if (variant_.head == Head::kClassification) {
    const int64_t C = info_.num_labels;
    if (variant_.roberta) {
      cls_dense_ = load_linear(root, "classifier.dense", D, D, true);
      cls_out_ = load_linear(root, "classifier.out_proj", C, D, true);
    } else {
      cls_out_ = load_linear(root, "classifier", C, D, true);
    }
  }
}

torch::Tensor EncoderModel::token_head(const torch::Tensor& h) const {
  return decoder_(transform_norm_(transform_act_(transform_(h))));
}

torch::Tensor EncoderModel::classify(const torch::Tensor& pooled) const {
  if (variant_.head != Head::kClassification) return Model::classify(pooled);
  if (variant_.roberta) return cls_out_(torch::tanh(cls_dense_(pooled)));
  return cls_out_(torch::tanh(pooler_(pooled)));
}

torch::Tensor EncoderModel::positions(const ForwardInput& input, const torch::Tensor& ids) const {
  const auto device = word_.device();
  torch::Tensor pos;
  if (input.position_ids.defined()) {
    pos = input.position_ids.to(device, torch::kInt64);
  } else if (variant_.roberta) {
    // HF create_position_ids_from_input_ids: real tokens count from padding_idx + 1, pad tokens
    // sit at padding_idx. Derived from the ids, not the attention mask, exactly as HF does.
    auto real = ids.ne(pad_id_).to(torch::kInt64);
    pos = real.cumsum(1) * real + pad_id_;
  } else {
    pos = torch::arange(ids.size(1), torch::dtype(torch::kInt64).device(device))
              .unsqueeze(0)
              .expand({ids.size(0), ids.size(1)});
  }
  const int64_t P = info_.max_position_embeddings;
  if (pos.numel() && (pos.max().item<int64_t>() >= P || pos.min().item<int64_t>() < 0))
    fail("[forward] expected positions in [0, max_position_embeddings = ", P, "), found ",
         pos.max().item<int64_t>(), "; the sequence is longer than this model supports");
  return pos;
}

ForwardCost EncoderModel::forward_cost() const {
  const Layer& l = layers_.front();
  const double weights = l.qkv.fused.weight.numel() + l.attn_out.weight.numel() +
                         l.inter.weight.numel() + l.out.weight.numel();
  const auto numel = [](const Linear& x) {
    return x.weight.defined() ? static_cast<double>(x.weight.numel()) : 0.0;
  };
  // Per output row: MLM transform + decoder; classification pooler/dense + classifier.
  double head = 0;
  if (variant_.head == Head::kMaskedLM) head = numel(transform_) + numel(decoder_);
  if (variant_.head == Head::kClassification)
    head = numel(variant_.roberta ? cls_dense_ : pooler_) + numel(cls_out_);
  return {.num_layers = info_.num_layers,
          .layer_flops = 2 * weights,
          .attention_flops = 4.0 * info_.num_heads * info_.head_dim,  // every key: bidirectional
          .head_flops = 2 * head,
          .weight_bytes = weight_bytes_read_per_token({word_, position_, token_type_})};
}

torch::Tensor EncoderModel::embed(const BlockContext& ctx) {
  const auto device = word_.device();
  const auto ids = ctx.input.input_ids.to(device, torch::kInt64);
  const int64_t B = ctx.batch, T = ctx.tokens;
  auto types = ctx.input.token_type_ids.defined()
                   ? ctx.input.token_type_ids.to(device, torch::kInt64)
                   : torch::zeros({B, T}, torch::dtype(torch::kInt64).device(device));
  if (types.sizes() != ids.sizes())
    fail("[forward] expected token_type_ids of shape ", ids.sizes(), ", found ", types.sizes());
  if (types.numel() &&
      (types.min().item<int64_t>() < 0 || types.max().item<int64_t>() >= token_type_.size(0)))
    fail("[forward] expected token_type_ids in [0, type_vocab_size = ", token_type_.size(0),
         "), found ", types.max().item<int64_t>());
  auto pos = positions(ctx.input, ids);
  auto h = word_.index_select(0, ids.reshape({-1})) +
           token_type_.index_select(0, types.reshape({-1})) +
           position_.index_select(0, pos.reshape({-1}));
  return embed_norm_(h.view({B, T, info_.hidden_size}));  // (B, T, D)
}

torch::Tensor EncoderModel::block(int l, const torch::Tensor& h, const BlockContext& ctx) {
  const Layer& layer = layers_[l];
  const int64_t B = ctx.batch, T = ctx.tokens, H = info_.num_heads, Dh = info_.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  // Bidirectional: every query sees every real key (ctx.bias hides the padding).
  auto x = ctx.site(l, Component::kAttentionInput, h);
  auto parts = layer.qkv(x);
  auto q = parts[0].view({B, T, H, Dh}).permute({0, 2, 1, 3});  // (B, H, T, Dh)
  auto k = parts[1].view({B, T, H, Dh}).permute({0, 2, 1, 3});
  auto v = parts[2].view({B, T, H, Dh}).permute({0, 2, 1, 3});
  auto a =
      ctx.site(l, Component::kAttentionOutput, layer.attn_out(attend(q, k, v, ctx.bias, scale)));
  a = layer.attn_norm(a + h);  // (B, T, D)
  x = ctx.site(l, Component::kMlpInput, a);
  auto m = ctx.site(l, Component::kMlpOutput, layer.out(act_(layer.inter(x))));
  // Post-LN: no final norm follows, so hidden.L is the raw output of the last layer.
  return layer.out_norm(m + a);
}

std::unique_ptr<Model> make_encoder(const ModelSource& source, bool roberta, Head head) {
  return std::make_unique<EncoderModel>(source, EncoderVariant{.roberta = roberta, .head = head});
}

}  // namespace

std::unique_ptr<Model> load_bert_model(const ModelSource& s) {
  return make_encoder(s, false, Head::kNone);
}
std::unique_ptr<Model> load_bert_masked_lm(const ModelSource& s) {
  return make_encoder(s, false, Head::kMaskedLM);
}
std::unique_ptr<Model> load_bert_classifier(const ModelSource& s) {
  return make_encoder(s, false, Head::kClassification);
}
std::unique_ptr<Model> load_roberta_model(const ModelSource& s) {
  return make_encoder(s, true, Head::kNone);
}
std::unique_ptr<Model> load_roberta_masked_lm(const ModelSource& s) {
  return make_encoder(s, true, Head::kMaskedLM);
}
std::unique_ptr<Model> load_roberta_classifier(const ModelSource& s) {
  return make_encoder(s, true, Head::kClassification);
}

}  // namespace reft
