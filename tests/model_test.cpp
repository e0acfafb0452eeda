// Models: golden forwards against HF transformers, and the invariants every decoder must keep
// (KV cache = recompute, batched = one by one, padding side never matters, total loading).

#include "reft/model.h"

#include <torch/torch.h>

#include <fstream>

#include "reft/error.h"
#include "reft/safetensors.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

using test::TempDir;
using test::tensors_close;
namespace fs = std::filesystem;

// Every golden/models/<name>.safetensors against ../models/<name>: logits and hidden states of
// every case at the real (unpadded) positions.
TEST(GoldenForward, AllModels) {
  REFT_REQUIRE_SHARED("golden/models");
  int checked = 0;
  for (const auto& file : test::files_with_suffix(shared_path, ".safetensors")) {
    const std::string name = file.stem().string();
    const fs::path model_dir = test::shared_dir() / "models" / name;
    if (!fs::exists(model_dir / "config.json")) continue;
    if (!test::architecture_supported(model_dir)) {
      std::cout << "[ SKIPPED  ] " << name << ": architecture not supported yet\n";
      continue;
    }
    SCOPED_TRACE(name);
    auto model = load_model(model_dir);
    auto golden = load_safetensors(file);
    for (int k = 0; golden.count("case" + std::to_string(k) + ".input_ids"); ++k) {
      const std::string c = "case" + std::to_string(k) + ".";
      ForwardInput in;
      in.input_ids = golden[c + "input_ids"];
      in.attention_mask = golden[c + "attention_mask"];
      if (golden.count(c + "position_ids")) in.position_ids = golden[c + "position_ids"];
      in.output_hidden_states = true;
      torch::NoGradGuard no_grad;
      auto out = model->forward(in);
      auto mask = in.attention_mask.unsqueeze(-1);
      const auto& expected_logits = golden[c + "logits"];
      if (expected_logits.dim() == 3)
        EXPECT_TRUE(
            tensors_close(name + " " + c + "logits", out.logits, expected_logits, 1e-4, 0, mask));
      else
        EXPECT_TRUE(tensors_close(name + " " + c + "logits", out.logits, expected_logits, 1e-4));
      // golden/README.md: hidden states to 1e-4, 1e-5 on the random tiny models.
      const double hidden_tol = name.rfind("tiny-", 0) == 0 ? 1e-5 : 1e-4;
      for (int i = 0; golden.count(c + "hidden." + std::to_string(i)); ++i) {
        ASSERT_LT(i, static_cast<int>(out.hidden_states.size()));
        EXPECT_TRUE(tensors_close(name + " " + c + "hidden." + std::to_string(i),
                                  out.hidden_states[i], golden[c + "hidden." + std::to_string(i)],
                                  hidden_tol, 0, mask));
      }
      if (golden.count(c + "last_block_raw")) {
        EXPECT_TRUE(tensors_close(name + " " + c + "last_block_raw", out.last_block,
                                  golden[c + "last_block_raw"], hidden_tol, 0, mask));
      }
      EXPECT_EQ(out.hidden_states.size(), static_cast<size_t>(model->info().num_layers + 1));
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

struct Variant {
  std::string name;
  nlohmann::json config;
};

std::vector<Variant> variants() {
  return {
      {"llama_gqa", {}},
      {"llama_mha_tied", {{"num_key_value_heads", 4}, {"tie_word_embeddings", true}}},
      {"llama_bias_headdim", {{"attention_bias", true}, {"mlp_bias", true}, {"head_dim", 16}}},
      {"llama3_rope",
       {{"rope_theta", 500000.0},
        {"rope_scaling",
         {{"rope_type", "llama3"},
          {"factor", 8.0},
          {"low_freq_factor", 1.0},
          {"high_freq_factor", 4.0},
          {"original_max_position_embeddings", 8}}}}},
      {"linear_rope", {{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}},
      {"qwen2", {{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}}},
      {"mistral_window",
       {{"architectures", {"MistralForCausalLM"}},
        {"model_type", "mistral"},
        {"sliding_window", 3}}},
  };
}

class DecoderInvariants : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    test::write_tiny_model(tmp_.path(), GetParam().config, 11);
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

TEST_P(DecoderInvariants, KvCacheEqualsRecompute) {
  torch::NoGradGuard g;
  auto ids = torch::randint(3, 64, {2, 11}, torch::kInt64);
  auto full = logits(ids);
  auto cache = model_->new_cache(2, 16);
  ForwardInput in;
  in.cache = &cache;
  in.input_ids = ids.narrow(1, 0, 5);
  auto first = model_->forward(in).logits;
  EXPECT_TRUE(tensors_close("prefill", first, full.narrow(1, 0, 5), 1e-5));
  for (int64_t t = 5; t < 11; ++t) {
    in.input_ids = ids.narrow(1, t, 1);
    auto step = model_->forward(in).logits;
    EXPECT_TRUE(tensors_close("step " + std::to_string(t), step, full.narrow(1, t, 1), 1e-5));
  }
  EXPECT_EQ(cache.length, 11);
}

// Batch-1 decode runs the GEMV path, split over the helper threads once a weight has at least
// 262144 elements: hidden 512 gives 512×512 projections. Cached decode must equal recompute.
TEST(DecodeBatchOne, WideModelCachedDecodeEqualsRecompute) {
  TempDir tmp;
  test::write_tiny_model(tmp.path(),
                         {{"hidden_size", 512},
                          {"intermediate_size", 1024},
                          {"num_hidden_layers", 2},
                          {"num_attention_heads", 8},
                          {"num_key_value_heads", 4},
                          {"initializer_range", 0.02}},
                         5);
  auto model = load_model(tmp.path());
  const int threads = at::get_num_threads();
  at::set_num_threads(std::max(2, threads));
  torch::NoGradGuard g;
  torch::manual_seed(3);
  auto ids = torch::randint(3, 64, {1, 12}, torch::kInt64);
  ForwardInput full_in;
  full_in.input_ids = ids;
  auto full = model->forward(full_in).logits;  // (1, 12, V)
  auto cache = model->new_cache(1, 16);
  ForwardInput in;
  in.cache = &cache;
  in.input_ids = ids.narrow(1, 0, 4);
  EXPECT_TRUE(tensors_close("prefill", model->forward(in).logits, full.narrow(1, 0, 4), 1e-5));
  for (int64_t t = 4; t < 12; ++t) {
    in.input_ids = ids.narrow(1, t, 1);
    auto step = model->forward(in).logits;
    EXPECT_TRUE(
        tensors_close("decode step " + std::to_string(t), step, full.narrow(1, t, 1), 1e-5));
  }
  EXPECT_EQ(cache.length, 12);
  at::set_num_threads(threads);
}

TEST_P(DecoderInvariants, BatchedEqualsOneByOneWithEitherPadding) {
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
      auto alone = logits(seqs[b].unsqueeze(0))[0];
      EXPECT_TRUE(tensors_close(std::string(left ? "left" : "right") + " row " + std::to_string(b),
                                batched[b].narrow(0, start, n), alone, 2e-5));
    }
  }
}

TEST_P(DecoderInvariants, LeftPaddedCacheDecodingEqualsUnpadded) {
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
  auto next = torch::tensor({{5}, {6}}, torch::kInt64);
  in.input_ids = next;
  in.attention_mask = torch::ones({2, 1}, torch::kInt64);
  auto step = model_->forward(in).logits;  // (2, V)
  auto ref_b = logits(torch::cat({b, torch::tensor({6}, torch::kInt64)}).unsqueeze(0))[0][-1];
  EXPECT_TRUE(tensors_close("left-padded row after a cached step", step[1], ref_b, 2e-5));
  auto ref_a = logits(torch::cat({a, torch::tensor({5}, torch::kInt64)}).unsqueeze(0))[0][-1];
  EXPECT_TRUE(tensors_close("unpadded row after a cached step", step[0], ref_a, 2e-5));
}

TEST_P(DecoderInvariants, LogitModesAndResumeAgree) {
  torch::NoGradGuard g;
  auto ids = torch::randint(3, 64, {2, 6}, torch::kInt64);
  ForwardInput in;
  in.input_ids = ids;
  in.output_hidden_states = true;
  auto full = model_->forward(in);
  in.output_hidden_states = false;
  in.logits = LogitsMode::kLast;
  EXPECT_TRUE(tensors_close("kLast", model_->forward(in).logits, full.logits.select(1, 5), 1e-6));
  in.logits = LogitsMode::kSelected;
  in.logits_index = torch::tensor({1, 6 + 4}, torch::kInt64);
  auto sel = model_->forward(in).logits;
  EXPECT_TRUE(
      tensors_close("kSelected", sel, torch::stack({full.logits[0][1], full.logits[1][4]}), 1e-6));
  // Stop after layer 2, then resume from its output: the frozen-prefix cache path.
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

INSTANTIATE_TEST_SUITE_P(Variants, DecoderInvariants, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param.name; });

TEST(ModelLoading, ParametersAreFrozenAndNamedLikeTheCheckpoint) {
  TempDir tmp;
  test::write_tiny_model(tmp.path());
  auto model = load_model(tmp.path());
  auto file = SafetensorsFile::open(tmp / "model.safetensors");
  EXPECT_EQ(model->parameters().size(), file->entries().size());
  for (const auto& [name, t] : model->parameters()) {
    EXPECT_FALSE(t.requires_grad()) << name;
    ASSERT_TRUE(file->contains(name)) << name;
    EXPECT_TRUE(t.equal(file->tensor(name))) << name;
  }
  EXPECT_EQ(model->info().fingerprint.size(), 16u);
}

// Every load error is one line that names the file and the problem.
void expect_load_error(const fs::path& dir, const std::string& needle) {
  try {
    load_model(dir);
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(ModelLoading, ClearErrors) {
  TempDir tmp;
  const auto dir = tmp / "m";
  test::write_tiny_model(dir);
  auto config = read_json_file(dir / "config.json");
  const auto rewrite = [&](const nlohmann::json& c) {
    std::ofstream(dir / "config.json", std::ios::trunc) << c.dump();
  };

  expect_load_error(tmp / "nope", "not found");
  auto c = config;
  c["architectures"] = {"FancyNetForCausalLM"};
  rewrite(c);
  expect_load_error(dir, "FancyNetForCausalLM");
  c = config;
  c["hidden_size"] = "big";
  rewrite(c);
  expect_load_error(dir, "hidden_size");
  c = config;
  c["num_key_value_heads"] = 3;
  rewrite(c);
  expect_load_error(dir, "num_key_value_heads");
  c = config;
  c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  rewrite(c);
  expect_load_error(dir, "yarn");
  c = config;
  c["hidden_act"] = "mish";
  rewrite(c);
  expect_load_error(dir, "hidden_act");
  c = config;
  c["num_hidden_layers"] = 4;  // the checkpoint has 3
  rewrite(c);
  expect_load_error(dir, "model.layers.3.");
  c = config;
  c["num_hidden_layers"] = 2;
  rewrite(c);
  expect_load_error(dir, "unexpected tensor");
  c = config;
  c["intermediate_size"] = 40;
  rewrite(c);
  expect_load_error(dir, "expected shape");
  std::ofstream(dir / "config.json", std::ios::trunc) << "{ not json";
  expect_load_error(dir, "config.json");
  rewrite(config);
  fs::remove(dir / "model.safetensors");
  expect_load_error(dir, "model.safetensors");
}

}  // namespace
}  // namespace reft
