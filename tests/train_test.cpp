// Training: the base stays bit-identical, weight decay never kills an intervention, R stays
// orthonormal, float64 finite-difference gradients of every intervention type, resume equals an
// uninterrupted run, a NaN stops training, same seed ⇒ same losses, and the data pipeline.

#include <torch/torch.h>

#include <fstream>

#include "interventions/orthogonal.h"
#include "reft/data.h"
#include "reft/error.h"
#include "reft/tokenizer.h"
#include "reft/trainer.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using test::tensors_close;

// A small synthetic dataset over a random model's vocabulary (no tokenizer needed).
Dataset synthetic_dataset(int64_t n, uint64_t seed) {
  std::mt19937 rng(seed);
  Dataset d;
  for (int64_t i = 0; i < n; ++i) {
    Example e;
    const int64_t prompt = 3 + rng() % 4, completion = 2 + rng() % 4;
    for (int64_t t = 0; t < prompt + completion; ++t) e.input_ids.push_back(3 + rng() % 60);
    e.prompt_length = prompt;
    e.labels = e.input_ids;
    for (int64_t t = 0; t < prompt; ++t) e.labels[t] = -100;
    d.examples.push_back(e);
  }
  return d;
}

ReftConfig loreft_config(std::vector<int64_t> layers, OrthogonalMode mode = OrthogonalMode::kLean,
                         InterventionType type = InterventionType::kLoReFT) {
  InterventionOptions o;
  o.type = type;
  o.low_rank_dimension = 2;
  o.orthogonal = mode;
  return ReftConfig::build(layers, Component::kBlockOutput, o, "f1+l1", false);
}

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_tiny_model(tmp_ / "m", {}, 3);
    model_ = load_model(tmp_ / "m");
  }
  TempDir tmp_;
  std::unique_ptr<Model> model_;
};

TEST_F(TrainTest, FrozenMeansFrozen) {
  std::vector<torch::Tensor> before;
  for (const auto& [name, t] : model_->parameters()) before.push_back(t.clone());
  ReftModel reft(*model_, loreft_config({0, 2}), 1);
  TrainOptions o;
  o.max_steps = 5;
  o.lr = 1e-2;
  o.cache_frozen_prefix = false;
  train_reft(reft, synthetic_dataset(6, 1), nullptr, o);
  size_t i = 0;
  for (const auto& [name, t] : model_->parameters()) {
    EXPECT_FALSE(t.requires_grad()) << name;
    EXPECT_FALSE(t.grad().defined()) << name << " received a gradient";
    EXPECT_TRUE(t.equal(before[i++])) << name << " changed";
  }
  // Only intervention tensors are trainable.
  for (const auto& [name, p] : reft.named_parameters())
    EXPECT_NE(name.find("_comp_"), std::string::npos);
}

TEST_F(TrainTest, WeightDecayNeverDisablesAnIntervention) {
  for (const auto mode : {OrthogonalMode::kPyreft, OrthogonalMode::kLean}) {
    ReftModel reft(*model_, loreft_config({1}, mode), 2);
    TrainOptions o;
    o.max_steps = 20;
    o.lr = 1e-2;
    o.weight_decay = 0.1;
    train_reft(reft, synthetic_dataset(4, 2), nullptr, o);
    auto R = reft.interventions()[0]->rotation().detach();
    EXPECT_TRUE(tensors_close("RᵀR", R.t().mm(R), torch::eye(R.size(1)), 1e-5))
        << orthogonal_mode_name(mode);
    // The edit is alive: the intervened forward differs from the base forward.
    auto batch = make_batch(synthetic_dataset(2, 9), {0, 1}, 0);
    torch::NoGradGuard g;
    auto edited = reft.forward(batch).logits;
    ForwardInput in;
    in.input_ids = batch.input_ids;
    in.attention_mask = batch.attention_mask;
    auto base = model_->forward(in).logits;
    EXPECT_GT((edited - base).abs().max().item<double>(), 1e-3) << orthogonal_mode_name(mode);
  }
}

TEST(Orthogonal, DriftAfterAThousandAdamSteps) {
  for (const auto mode : {OrthogonalMode::kLean, OrthogonalMode::kPyreft}) {
    torch::manual_seed(0);
    RotateLayer layer(48, 6, mode, torch::kFloat32);
    auto target = torch::randn({48, 6});
    AdamW opt({layer->original()}, {false}, {.lr = 1e-2});
    for (int step = 0; step < 1000; ++step) {
      opt.zero_grad();
      auto R = layer->weight();
      (R - target).square().sum().backward();
      opt.step();
    }
    auto R = layer->weight().detach();
    const double drift = (R.t().mm(R) - torch::eye(6)).abs().max().item<double>();
    EXPECT_LT(drift, 2e-5) << orthogonal_mode_name(mode);
  }
}

TEST(Orthogonal, SetWeightReproducesAnyOrthonormalR) {
  for (const auto mode : {OrthogonalMode::kLean, OrthogonalMode::kPyreft}) {
    RotateLayer layer(20, 4, mode, torch::kFloat64);
    auto [q, r] = torch::linalg_qr(torch::randn({20, 4}, torch::kFloat64));
    layer->set_weight(q);
    EXPECT_TRUE(tensors_close("R", layer->weight(), q, 1e-12)) << orthogonal_mode_name(mode);
  }
}

// d(Σ w∘Φ(h, s)) by autograd vs central differences, in float64, for every parameter and input.
TEST(Interventions, FiniteDifferenceGradientsInFloat64) {
  const auto& types = test::kAllInterventionTypes;
  for (const auto mode : {OrthogonalMode::kLean, OrthogonalMode::kPyreft}) {
    for (const auto type : types) {
      SCOPED_TRACE(std::string(intervention_type_name(type)) + " / " +
                   std::string(orthogonal_mode_name(mode)));
      torch::manual_seed(7);
      InterventionOptions o;
      o.type = type;
      o.embed_dim = 6;
      o.low_rank_dimension = 3;
      o.dtype = torch::kFloat64;
      o.orthogonal = mode;
      o.interchange_dim = type == InterventionType::kVanilla ? 4 : 0;
      if (type == InterventionType::kLoReFT || type == InterventionType::kNoReFT) o.act_fn = "tanh";
      auto iv = make_intervention(o);
      {
        // Move X off −I so that the Householder map is exercised away from its base point.
        torch::NoGradGuard g;
        for (auto& p : iv->named_parameters())
          if (p.key().find("original") != std::string::npos)
            p.value().add_(0.3 * torch::randn_like(p.value()).tril(-1));
        for (auto& b : iv->named_buffers())
          if (b.key() == "temperature")
            b.value().fill_(type == InterventionType::kSigmoidMask ? 0.5 : 2.0);
      }
      auto h = torch::randn({4, 6}, torch::kFloat64).requires_grad_(true);
      auto s = torch::randn({4, 6}, torch::kFloat64).requires_grad_(true);
      auto w = torch::randn({4, 6}, torch::kFloat64);
      auto f = [&] { return (iv->forward(h, iv->needs_source() ? s : torch::Tensor()) * w).sum(); };
      std::vector<std::pair<std::string, torch::Tensor>> inputs = {{"h", h}};
      if (iv->needs_source()) inputs.emplace_back("s", s);
      for (auto& p : iv->named_parameters())
        if (p.value().requires_grad()) inputs.emplace_back(p.key(), p.value());
      for (auto& [name, x] : inputs)
        if (x.grad().defined()) x.mutable_grad().zero_();
      if (auto y = f(); y.requires_grad())
        y.backward();  // zero ablation has no gradient path at all
      for (auto& [name, x] : inputs) {
        auto analytic = x.grad().defined() ? x.grad().clone() : torch::zeros_like(x);
        auto numeric = torch::zeros_like(x);
        torch::NoGradGuard g;
        auto flat = x.view({-1});
        auto num = numeric.view({-1});
        const double eps = 1e-6;
        for (int64_t i = 0; i < flat.numel(); ++i) {
          const double v = flat[i].item<double>();
          flat[i].fill_(v + eps);
          const double up = f().item<double>();
          flat[i].fill_(v - eps);
          const double down = f().item<double>();
          flat[i].fill_(v);
          num[i].fill_((up - down) / (2 * eps));
        }
        EXPECT_TRUE(tensors_close("d/d" + name, analytic, numeric, 1e-6, 1e-5));
      }
    }
  }
}

TEST_F(TrainTest, ResumeAfterAKillEqualsAnUninterruptedRun) {
  const auto data = synthetic_dataset(7, 4);
  TrainOptions o;
  o.max_steps = 8;
  o.batch_size = 3;
  o.lr = 5e-3;
  o.save_every = 3;
  o.seed = 11;
  o.output_dir = tmp_ / "a";
  ReftModel a(*model_, loreft_config({1, 2}), 5);
  const auto full = train_reft(a, data, nullptr, o);

  o.output_dir = tmp_ / "b";
  ReftModel b(*model_, loreft_config({1, 2}), 5);
  TrainCallbacks kill;
  kill.on_step = [](const TrainEvent& e) {
    if (e.step == 5) throw std::runtime_error("killed");
  };
  EXPECT_THROW(train_reft(b, data, nullptr, o, nullptr, kill), std::runtime_error);
  ReftModel c(*model_, loreft_config({1, 2}),
              99);  // a fresh process: different init, same checkpoint
  o.resume = true;
  const auto resumed = train_reft(c, data, nullptr, o);
  EXPECT_TRUE(resumed.resumed_from_checkpoint);
  EXPECT_EQ(resumed.start_step, 3);
  ASSERT_EQ(resumed.losses.size(), full.losses.size());
  for (size_t i = 0; i < full.losses.size(); ++i)
    EXPECT_NEAR(resumed.losses[i], full.losses[i], 1e-6) << i;
  auto pa = a.named_parameters(), pc = c.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_TRUE(tensors_close(pa[i].first, pc[i].second, pa[i].second, 1e-6));
  // metrics.jsonl is the frontend's (tools/reft/run_outputs.h): cli_usability_test checks that a
  // resumed run's file has each step once.
}

TEST_F(TrainTest, SameSeedSameLosses) {
  const auto data = synthetic_dataset(9, 5);
  TrainOptions o;
  o.max_steps = 6;
  o.batch_size = 2;
  std::vector<double> first;
  for (int run = 0; run < 2; ++run) {
    ReftModel reft(*model_, loreft_config({0, 1}), 8);
    auto s = train_reft(reft, data, nullptr, o);
    if (run == 0)
      first = s.losses;
    else
      EXPECT_EQ(s.losses, first);
  }
}

// The frozen-prefix cache (resuming at the lowest layer, or one past it for block_output sites)
// changes nothing but speed.
TEST_F(TrainTest, PrefixCacheMatchesTheFullForward) {
  const auto data = synthetic_dataset(6, 12);
  for (const auto component : {Component::kBlockOutput, Component::kMlpOutput}) {
    InterventionOptions o;
    o.low_rank_dimension = 2;
    auto config = ReftConfig::build({1, 2}, component, o, "f1+l1", false);
    std::vector<std::vector<double>> losses;
    for (const bool cache : {false, true}) {
      ReftModel reft(*model_, config, 21);
      TrainOptions t;
      t.max_steps = 6;
      t.batch_size = 3;
      t.cache_frozen_prefix = cache;
      losses.push_back(train_reft(reft, data, nullptr, t).losses);
    }
    ASSERT_EQ(losses[0].size(), losses[1].size());
    for (size_t i = 0; i < losses[0].size(); ++i)
      EXPECT_NEAR(losses[0][i], losses[1][i], 1e-5) << component_name(component) << " step " << i;
  }
}

TEST_F(TrainTest, NanStopsTrainingAndKeepsTheLastGoodCheckpoint) {
  ReftModel reft(*model_, loreft_config({1}, OrthogonalMode::kLean, InterventionType::kNoReFT), 3);
  TrainOptions o;
  o.max_steps = 20;
  o.lr = 1e35;
  o.max_grad_norm = 0;
  o.save_every = 1;
  o.output_dir = tmp_ / "nan";
  try {
    train_reft(reft, synthetic_dataset(4, 6), nullptr, o);
    ADD_FAILURE() << "expected training to stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
  // Whatever checkpoint exists holds finite tensors.
  if (fs::exists(tmp_ / "nan" / "checkpoint" / "adapter")) {
    auto loaded = load_adapter(*model_, tmp_ / "nan" / "checkpoint" / "adapter");
    for (const auto& [name, t] : loaded.reft->state())
      EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;
  }
}

TEST_F(TrainTest, AdapterRoundTripAndWrongBase) {
  ReftModel reft(*model_, loreft_config({0, 2}), 4);
  save_adapter(reft, tmp_ / "adapter");
  auto loaded = load_adapter(*model_, tmp_ / "adapter");
  auto a = reft.state(), b = loaded.reft->state();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].second.equal(b[i].second)) << a[i].first;
  test::write_tiny_model(tmp_ / "other", {}, 77);
  auto other = load_model(tmp_ / "other");
  try {
    load_adapter(*other, tmp_ / "adapter");
    ADD_FAILURE() << "expected a fingerprint error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fingerprint"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(load_adapter(*other, tmp_ / "adapter", /*allow_base_mismatch=*/true));
}

TEST(Data, FormatsAndErrorsNameFileLineAndField) {
  TempDir tmp;
  std::ofstream(tmp / "a.jsonl")
      << "{\"prompt\": \"a\", \"completion\": \"b\"}\n\n{\"prompt\": \"c\"}\n";
  try {
    auto records = read_records(tmp / "a.jsonl");
    ASSERT_EQ(records.size(), 2u);
    EXPECT_NE(records[1].where.find("a.jsonl:3"), std::string::npos);
    DataOptions o;
    // A tokenizer is needed only after the field checks; use the tiny preset's.
    write_preset_model("tiny", tmp / "m", 0);
    auto tok = Tokenizer::load(tmp / "m");
    make_lm_dataset(records, *tok, o);
    ADD_FAILURE() << "expected a missing-field error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("a.jsonl:3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'completion'"), std::string::npos) << msg;
  }
  std::ofstream(tmp / "b.jsonl") << "{\"prompt\": \"a\", \"completion\": \"b\"}\n{oops\n";
  try {
    read_records(tmp / "b.jsonl");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.jsonl:2"), std::string::npos) << e.what();
  }
  std::ofstream(tmp / "c.csv") << "prompt,completion\n\"a, with comma\",\"say \"\"hi\"\"\"\nx\n";
  try {
    read_records(tmp / "c.csv");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.csv:3"), std::string::npos) << e.what();
  }
  std::ofstream(tmp / "d.csv") << "prompt,completion\n\"a, with comma\",\"say \"\"hi\"\"\"\n";
  auto csv = read_records(tmp / "d.csv");
  ASSERT_EQ(csv.size(), 1u);
  EXPECT_EQ(csv[0].fields["prompt"], "a, with comma");
  EXPECT_EQ(csv[0].fields["completion"], "say \"hi\"");
  std::ofstream(tmp / "e.json") << R"([{"instruction": "Add", "input": "2 and 3", "output": "5"},
                                     {"messages": [{"role": "user", "content": "hi"}]}])";
  auto json = read_records(tmp / "e.json");
  auto tok = Tokenizer::load(tmp / "m");
  auto ds = make_lm_dataset({json[0]}, *tok, {});
  EXPECT_NE(ds.examples[0].prompt.find("### Input:\n2 and 3"), std::string::npos);
  EXPECT_EQ(ds.examples[0].completion, "5");
  try {
    DataOptions chat;
    chat.format = DataFormat::kChat;
    make_lm_dataset({json[1]}, *tok, chat);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("assistant"), std::string::npos) << e.what();
  }
}

// A JSONL line of 10,000 '[' (the campaign's deep-nesting data set): one line naming the file
// and the line, refused while parsing instead of recursing.
TEST(Data, DeeplyNestedJsonlLineIsOneLine) {
  TempDir tmp;
  std::ofstream(tmp / "deep.jsonl") << "{\"prompt\": \"a\", \"completion\": \"b\"}\n"
                                    << std::string(10000, '[') << "\n";
  try {
    read_records(tmp / "deep.jsonl");
    ADD_FAILURE() << "expected a nesting error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("deep.jsonl:2]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nested at most 256 levels"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  std::ofstream(tmp / "deep.json") << std::string(10000, '[');
  try {
    read_records(tmp / "deep.json");
    ADD_FAILURE() << "expected a nesting error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nested at most 256 levels"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace reft
