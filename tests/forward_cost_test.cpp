// Model::forward_cost: each architecture counts its own FLOPs and weight bytes. The expected
// values are written out by hand from the configs below (2 FLOPs per multiply-add).

#include <torch/torch.h>

#include "reft/model.h"
#include "reft/presets.h"
#include "torch_test_util.h"

namespace reft {
namespace {

using test::TempDir;

// D 32, L 3, H 4, Hkv 2, Dh 8, I 48, V 64, untied head.
TEST(ForwardCost, LlamaCountsAGatedMlpAndGroupedKeys) {
  TempDir tmp;
  test::write_tiny_model(tmp.path());
  auto model = load_model(tmp.path());
  const double D = 32, L = 3, H = 4, Hkv = 2, Dh = 8, I = 48, V = 64;
  const auto cost = model->forward_cost();
  // q, k, v, o; gate, up, down.
  const double layer_weights = D * H * Dh + 2 * D * Hkv * Dh + H * Dh * D + 3 * D * I;
  EXPECT_EQ(cost.num_layers, 3);
  EXPECT_DOUBLE_EQ(cost.layer_flops, 2 * layer_weights);
  EXPECT_DOUBLE_EQ(cost.attention_flops, 4 * H * Dh);
  EXPECT_DOUBLE_EQ(cost.head_flops, 2 * D * V);
  // fp32: two RMSNorm weights per layer, the final norm, the LM head and one embedding row.
  EXPECT_DOUBLE_EQ(cost.weight_bytes, 4 * (L * (2 * D + layer_weights) + D + V * D + D));
  // A (B 2, T 5) prefill over 3 cached keys, logits on 2 rows.
  EXPECT_DOUBLE_EQ(cost.flops(2, 5, 3, 2),
                   L * (2 * layer_weights * 10 + 4 * H * Dh * 10 * 8) + 2 * D * V * 2);
  // Resuming at layer 1 skips one layer's work.
  EXPECT_DOUBLE_EQ(cost.flops(2, 5, 0, 2) - cost.flops(2, 5, 0, 2, 1),
                   2 * layer_weights * 10 + 4 * H * Dh * 10 * 5);
}

// D 32, L 2, H 4, I 4·D, V 64, P 16, tied head: 24·D² per layer, three quarters of what a gated
// MLP of the same intermediate size would cost (the count reft bench once assumed).
TEST(ForwardCost, Gpt2CountsATwoMatrixMlp) {
  TempDir tmp;
  write_random_model(tmp.path(),
                     {{"architectures", {"GPT2LMHeadModel"}},
                      {"model_type", "gpt2"},
                      {"n_embd", 32},
                      {"n_layer", 2},
                      {"n_head", 4},
                      {"n_positions", 16},
                      {"vocab_size", 64},
                      {"initializer_range", 0.2}},
                     3);
  auto model = load_model(tmp.path());
  const double D = 32, L = 2, I = 4 * D, V = 64;
  const auto cost = model->forward_cost();
  EXPECT_EQ(cost.num_layers, 2);
  EXPECT_DOUBLE_EQ(cost.layer_flops, 24 * D * D);
  EXPECT_DOUBLE_EQ(cost.layer_flops, 2 * (3 * D * D + D * D + 2 * D * I));
  EXPECT_DOUBLE_EQ(cost.attention_flops, 4 * D);
  EXPECT_DOUBLE_EQ(cost.head_flops, 2 * D * V);
  // Per layer: ln_1, ln_2 (weight + bias), c_attn (3D² + 3D), attn c_proj (D² + D), c_fc (DI + I),
  // mlp c_proj (ID + D); then ln_f, one row each of wte and wpe (lookups, not P × D tables), and
  // the tied head read in full.
  const double layer = 4 * D + 3 * D * D + 3 * D + D * D + D + D * I + I + I * D + D;
  EXPECT_DOUBLE_EQ(cost.weight_bytes, 4 * (L * layer + 2 * D + D + D + V * D));
  EXPECT_DOUBLE_EQ(cost.flops(1, 4, 0, 1), L * (24 * D * D * 4 + 4 * D * 4 * 4) + 2 * D * V);
}

TEST(ForwardCost, EncoderHeadsAreCounted) {
  TempDir tmp;
  write_random_model(tmp.path(),
                     {{"architectures", {"BertForSequenceClassification"}},
                      {"model_type", "bert"},
                      {"hidden_size", 32},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 4},
                      {"intermediate_size", 48},
                      {"vocab_size", 64},
                      {"max_position_embeddings", 40},
                      {"id2label", {{"0", "a"}, {"1", "b"}, {"2", "c"}}},
                      {"initializer_range", 0.2}},
                     4);
  auto model = load_model(tmp.path());
  const double D = 32, I = 48, C = 3;
  const auto cost = model->forward_cost();
  EXPECT_DOUBLE_EQ(cost.layer_flops, 2 * (4 * D * D + 2 * D * I));
  EXPECT_DOUBLE_EQ(cost.head_flops, 2 * (D * D + C * D));  // pooler, classifier
}

}  // namespace
}  // namespace reft
