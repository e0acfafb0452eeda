// GPT-2: the decoder invariants (KV cache = recompute, batched = one by one, padding side never
// matters, logit modes, resume), checkpoint layouts (Conv1D weights, with or without the
// "transformer." prefix, tied head stored or not, old mask buffers) and GPT2Model.

#include <torch/torch.h>

#include "reft/error.h"
#include "reft/generate.h"
#include "reft/model.h"
#include "reft/safetensors.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using test::tensors_close;

nlohmann::json gpt2_config(const nlohmann::json& overrides = {}) {
  nlohmann::json c = {{"architectures", {"GPT2LMHeadModel"}},
                      {"model_type", "gpt2"},
                      {"activation_function", "gelu_new"},
                      {"n_embd", 32},
                      {"n_layer", 3},
                      {"n_head", 4},
                      {"n_inner", nullptr},
                      {"n_positions", 32},
                      {"vocab_size", 64},
                      {"layer_norm_epsilon", 1e-5},
                      {"initializer_range", 0.2},
                      {"bos_token_id", 1},
                      {"eos_token_id", 2}};
  if (overrides.is_object()) c.update(overrides);
  return c;
}

// Rewrites dir/model.safetensors through `edit` (name → tensor map).
void rewrite_weights(const fs::path& dir,
                     const std::function<void(std::map<std::string, torch::Tensor>&)>& edit) {
  auto tensors = load_safetensors(dir / "model.safetensors");
  edit(tensors);
  std::vector<std::pair<std::string, torch::Tensor>> list(tensors.begin(), tensors.end());
  save_safetensors(dir / "model.safetensors", list, {{"format", "pt"}});
}

void write_config(const fs::path& dir, const nlohmann::json& config) {
  std::ofstream(dir / "config.json", std::ios::trunc) << config.dump(2);
}

struct Variant {
  std::string name;
  nlohmann::json config;
};

class Gpt2Invariants : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    write_random_model(tmp_.path(), gpt2_config(GetParam().config), 21);
    model_ = load_model(tmp_.path());
  }
  torch::Tensor logits(const torch::Tensor& ids, const torch::Tensor& mask = {}) {
    torch::NoGradGuard g;
    ForwardInput in;
    in.input_ids = ids;
    in.attention_mask = mask;
    return model_->forward(in).logits;
  }
  TempDir tmp_;
  std::unique_ptr<Model> model_;
};

TEST_P(Gpt2Invariants, KvCacheEqualsRecompute) {
  torch::NoGradGuard g;
  auto ids = torch::randint(3, 64, {2, 11}, torch::kInt64);
  auto full = logits(ids);
  auto cache = model_->new_cache(2, 16);
  ForwardInput in;
  in.cache = &cache;
  in.input_ids = ids.narrow(1, 0, 4);
  EXPECT_TRUE(tensors_close("prefill", model_->forward(in).logits, full.narrow(1, 0, 4), 1e-5));
  for (int64_t t = 4; t < 11; ++t) {
    in.input_ids = ids.narrow(1, t, 1);
    EXPECT_TRUE(tensors_close("step " + std::to_string(t), model_->forward(in).logits,
                              full.narrow(1, t, 1), 1e-5));
  }
  EXPECT_EQ(cache.length, 11);
}

TEST_P(Gpt2Invariants, BatchedEqualsOneByOneWithEitherPadding) {
  const std::vector<int64_t> lengths = {9, 5, 2};
  const int64_t T = 9;
  std::vector<torch::Tensor> seqs;
  for (int64_t n : lengths) seqs.push_back(torch::randint(3, 64, {n}, torch::kInt64));
  for (const bool left : {false, true}) {
    auto ids = torch::zeros({3, T}, torch::kInt64);
    auto mask = torch::zeros({3, T}, torch::kInt64);
    for (int b = 0; b < 3; ++b) {
      const int64_t n = lengths[b], start = left ? T - n : 0;
      ids[b].narrow(0, start, n).copy_(seqs[b]);
      mask[b].narrow(0, start, n).fill_(1);
    }
    auto batched = logits(ids, mask);
    for (int b = 0; b < 3; ++b) {
      const int64_t n = lengths[b], start = left ? T - n : 0;
      EXPECT_TRUE(tensors_close(std::string(left ? "left" : "right") + " row " + std::to_string(b),
                                batched[b].narrow(0, start, n), logits(seqs[b].unsqueeze(0))[0],
                                2e-5));
    }
  }
}

TEST_P(Gpt2Invariants, LeftPaddedCacheDecodingEqualsUnpadded) {
  torch::NoGradGuard g;
  auto a = torch::randint(3, 64, {7}, torch::kInt64), b = torch::randint(3, 64, {3}, torch::kInt64);
  auto ids = torch::zeros({2, 7}, torch::kInt64);
  auto mask = torch::zeros({2, 7}, torch::kInt64);
  ids[0].copy_(a);
  mask[0].fill_(1);
  ids[1].narrow(0, 4, 3).copy_(b);
  mask[1].narrow(0, 4, 3).fill_(1);
  auto cache = model_->new_cache(2, 10);
  ForwardInput in;
  in.cache = &cache;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.logits = LogitsMode::kLast;
  model_->forward(in);
  in.input_ids = torch::tensor({{5}, {6}}, torch::kInt64);
  in.attention_mask = torch::ones({2, 1}, torch::kInt64);
  auto step = model_->forward(in).logits;  // (2, V)
  auto ref_a = logits(torch::cat({a, torch::tensor({5}, torch::kInt64)}).unsqueeze(0))[0][-1];
  auto ref_b = logits(torch::cat({b, torch::tensor({6}, torch::kInt64)}).unsqueeze(0))[0][-1];
  EXPECT_TRUE(tensors_close("unpadded row after a cached step", step[0], ref_a, 2e-5));
  EXPECT_TRUE(tensors_close("left-padded row after a cached step", step[1], ref_b, 2e-5));
}

TEST_P(Gpt2Invariants, LogitModesAndResumeAgree) {
  torch::NoGradGuard g;
  auto ids = torch::randint(3, 64, {2, 6}, torch::kInt64);
  ForwardInput in;
  in.input_ids = ids;
  in.output_hidden_states = true;
  auto full = model_->forward(in);
  ASSERT_EQ(full.hidden_states.size(), 4u);
  EXPECT_TRUE(tensors_close("last_hidden", full.last_hidden, full.hidden_states.back(), 0));
  EXPECT_TRUE(tensors_close("logits_from_hidden", model_->logits_from_hidden(full.last_block),
                            full.logits, 1e-6));
  in.output_hidden_states = false;
  in.logits = LogitsMode::kLast;
  EXPECT_TRUE(tensors_close("kLast", model_->forward(in).logits, full.logits.select(1, 5), 1e-6));
  in.logits = LogitsMode::kSelected;
  in.logits_index = torch::tensor({1, 6 + 4}, torch::kInt64);
  EXPECT_TRUE(tensors_close("kSelected", model_->forward(in).logits,
                            torch::stack({full.logits[0][1], full.logits[1][4]}), 1e-6));
  ForwardInput head;
  head.input_ids = ids;
  head.stop_layer = 2;
  auto partial = model_->forward(head);
  EXPECT_FALSE(partial.logits.defined());
  EXPECT_TRUE(tensors_close("stop_layer", partial.last_block, full.hidden_states[2], 0));
  ForwardInput tail;
  tail.input_ids = ids;
  tail.start_layer = 2;
  tail.start_hidden = partial.last_block;
  EXPECT_TRUE(tensors_close("resume", model_->forward(tail).logits, full.logits, 1e-6));
}

TEST_P(Gpt2Invariants, GenerateBatchedEqualsOneByOne) {
  const std::vector<std::vector<int64_t>> prompts = {{5, 9, 13, 20, 7}, {4}, {30, 31, 8}};
  GenerationOptions opt;
  opt.max_new_tokens = 8;
  opt.use_model_eos = false;
  const auto batched = generate(*model_, prompts, opt);
  for (size_t b = 0; b < prompts.size(); ++b)
    EXPECT_EQ(batched[b].new_ids, generate(*model_, {prompts[b]}, opt)[0].new_ids) << "row " << b;
}

INSTANTIATE_TEST_SUITE_P(Variants, Gpt2Invariants,
                         ::testing::Values(Variant{"gpt2", {}},
                                           Variant{"untied_inner_relu",
                                                   {{"tie_word_embeddings", false},
                                                    {"n_inner", 40},
                                                    {"activation_function", "relu"}}},
                                           Variant{"scaled_by_layer",
                                                   {{"scale_attn_by_inverse_layer_idx", true}}}),
                         [](const auto& info) { return info.param.name; });

// The parameters are the checkpoint: HF names, Conv1D (in, out) layout, no lm_head when tied.
TEST(Gpt2Loading, ParametersAreTheCheckpointTensors) {
  TempDir tmp;
  write_random_model(tmp.path(), gpt2_config(), 3);
  auto model = load_model(tmp.path());
  auto file = SafetensorsFile::open(tmp / "model.safetensors");
  EXPECT_EQ(model->parameters().size(), file->entries().size());
  for (const auto& [name, t] : model->parameters()) {
    EXPECT_FALSE(t.requires_grad()) << name;
    ASSERT_TRUE(file->contains(name)) << name;
    EXPECT_TRUE(t.equal(file->tensor(name))) << name;
  }
  EXPECT_EQ(file->tensor("transformer.h.0.attn.c_attn.weight").sizes(),
            (std::vector<int64_t>{32, 96}));
  EXPECT_EQ(file->tensor("transformer.h.1.mlp.c_fc.weight").sizes(),
            (std::vector<int64_t>{32, 128}));
  EXPECT_FALSE(file->contains("lm_head.weight"));
  const auto& info = model->info();
  EXPECT_EQ(info.kind, ModelKind::kCausalLM);
  EXPECT_TRUE(info.causal);
  EXPECT_EQ(info.head_dim, 8);
  EXPECT_EQ(info.intermediate_size, 128);
  EXPECT_EQ(info.max_position_embeddings, 32);
  EXPECT_TRUE(model->lm_head_weight().equal(file->tensor("transformer.wte.weight")));
}

// The original OpenAI conversion: no "transformer." prefix, attn.bias / attn.masked_bias
// buffers, and the tied lm_head.weight stored anyway. All load to the same model.
TEST(Gpt2Loading, PrefixlessCheckpointWithOldBuffersAndStoredHead) {
  TempDir tmp;
  write_random_model(tmp / "a", gpt2_config(), 4);
  fs::create_directories(tmp / "b");
  fs::copy_file(tmp / "a" / "model.safetensors", tmp / "b" / "model.safetensors");
  fs::copy_file(tmp / "a" / "config.json", tmp / "b" / "config.json");
  rewrite_weights(tmp / "b", [](auto& t) {
    std::map<std::string, torch::Tensor> renamed;
    for (auto& [name, x] : t) renamed[name.substr(std::string("transformer.").size())] = x;
    renamed["lm_head.weight"] = renamed["wte.weight"].clone();
    for (int l = 0; l < 3; ++l) {
      renamed["h." + std::to_string(l) + ".attn.bias"] = torch::ones({1, 1, 32, 32}).tril();
      renamed["h." + std::to_string(l) + ".attn.masked_bias"] = torch::tensor(-1e4);
    }
    t = std::move(renamed);
  });
  auto a = load_model(tmp / "a");
  auto b = load_model(tmp / "b");
  torch::NoGradGuard g;
  ForwardInput in;
  in.input_ids = torch::randint(3, 64, {2, 7}, torch::kInt64);
  EXPECT_TRUE(tensors_close("prefixless", b->forward(in).logits, a->forward(in).logits, 0));
  EXPECT_EQ(b->num_parameters(), a->num_parameters());
}

// GPT2Model: the same body without a head; its checkpoint has no prefix. Hidden states match
// the LM model's; logits are undefined and asking for them is a clear error.
TEST(Gpt2Loading, BareGpt2ModelGivesHiddenStatesOnly) {
  TempDir tmp;
  write_random_model(tmp / "bare", gpt2_config({{"architectures", {"GPT2Model"}}}), 5);
  auto file = SafetensorsFile::open(tmp / "bare" / "model.safetensors");
  EXPECT_TRUE(file->contains("wte.weight"));
  EXPECT_TRUE(file->contains("h.0.attn.c_attn.weight"));
  auto bare = load_model(tmp / "bare");
  EXPECT_EQ(bare->info().kind, ModelKind::kEncoder);
  EXPECT_FALSE(bare->lm_head_weight().defined());
  // The same weights as an LM.
  write_config(tmp / "bare", gpt2_config());
  auto lm = load_model(tmp / "bare");
  torch::NoGradGuard g;
  ForwardInput in;
  in.input_ids = torch::randint(3, 64, {2, 5}, torch::kInt64);
  in.output_hidden_states = true;
  auto h = bare->forward(in);
  auto ref = lm->forward(in);
  EXPECT_FALSE(h.logits.defined());
  ASSERT_EQ(h.hidden_states.size(), ref.hidden_states.size());
  for (size_t i = 0; i < h.hidden_states.size(); ++i)
    EXPECT_TRUE(
        tensors_close("hidden." + std::to_string(i), h.hidden_states[i], ref.hidden_states[i], 0));
  EXPECT_TRUE(tensors_close("last_hidden", h.last_hidden, ref.last_hidden, 0));
  EXPECT_THROW(bare->logits_from_hidden(h.last_hidden), Error);
  EXPECT_THROW(bare->classify(h.last_hidden.select(1, 0)), Error);
  GenerationOptions opt;
  opt.max_new_tokens = 2;
  try {
    generate(*bare, {{3, 4}}, opt);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no LM head"), std::string::npos) << e.what();
  }
}

TEST(Gpt2Loading, PositionsBeyondNPositionsAreAClearError) {
  TempDir tmp;
  write_random_model(tmp.path(), gpt2_config(), 6);
  auto model = load_model(tmp.path());
  ForwardInput in;
  in.input_ids = torch::randint(3, 64, {1, 33}, torch::kInt64);
  try {
    torch::NoGradGuard g;
    model->forward(in);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_positions (32)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace reft
