// Interchange interventions, DAS and activation tools: vanilla interchange equals a manual patch of
// the source's hidden state, collect equals the forward's hidden states, steering moves the output
// toward the steered token, DAS finds a low-rank name subspace in stories260K (IIA ≥ 0.9 at some
// layer, well above a random rotation), the CLI forms, and one-line errors for malformed pairs.

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "cli_util.h"
#include "reft/activations.h"
#include "reft/adapter.h"
#include "reft/error.h"
#include "reft/generate.h"
#include "reft/interchange.h"
#include "reft/presets.h"
#include "reft/pyreft.h"
#include "reft/safetensors.h"
#include "reft/tokenizer.h"
#include "torch_test_util.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;
using test::tensors_close;

fs::path write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
  return path;
}

CounterfactualPair id_pair(std::vector<int64_t> base, std::vector<int64_t> source,
                           std::vector<int64_t> base_pos, std::vector<int64_t> source_pos) {
  CounterfactualPair p;
  p.base_ids = std::move(base);
  p.source_ids = std::move(source);
  p.base_positions = std::move(base_pos);
  p.source_positions = std::move(source_pos);
  p.where = "pair";
  return p;
}

// Replaces the rows `positions` of a single-row forward at one site with `rows` (n, D).
class PatchHooks final : public SiteHooks {
 public:
  PatchHooks(int layer, Component c, std::vector<int64_t> positions, torch::Tensor rows)
      : layer_(layer), c_(c), positions_(std::move(positions)), rows_(std::move(rows)) {}
  bool wants(int layer, Component c) const override { return layer == layer_ && c == c_; }
  torch::Tensor at_site(int, Component, const torch::Tensor& h) override {
    auto out = h.clone();
    for (size_t j = 0; j < positions_.size(); ++j) out[0][positions_[j]] = rows_[j];
    return out;
  }

 private:
  int layer_;
  Component c_;
  std::vector<int64_t> positions_;
  torch::Tensor rows_;
};

class TinyModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_tiny_model(tmp_ / "m", {}, 11);
    model_ = load_model(tmp_ / "m");
  }
  ForwardOutput plain(const std::vector<int64_t>& ids, SiteHooks* hooks = nullptr) {
    torch::NoGradGuard no_grad;
    ForwardInput in;
    in.input_ids = torch::tensor(ids, torch::kInt64).unsqueeze(0);
    in.output_hidden_states = true;
    in.hooks = hooks;
    return model_->forward(in);
  }
  TempDir tmp_;
  std::unique_ptr<Model> model_;
};

// ---- interchange ----

TEST_F(TinyModelTest, VanillaInterchangeEqualsManualPatch) {
  std::vector<CounterfactualPair> pairs = {
      id_pair({1, 5, 9, 12, 7}, {1, 30, 22, 8}, {2}, {3}),
      id_pair({1, 40, 3}, {1, 4, 6, 8, 10, 12}, {2}, {5}),
      id_pair({1, 14, 15, 16, 17, 18, 19}, {1, 20, 21}, {1, 4}, {2, 1}),  // two positions
  };
  for (int layer : {0, 1}) {
    InterventionOptions vanilla{.type = InterventionType::kVanilla};
    ReftModel reft(*model_,
                   ReftConfig::build({layer}, Component::kBlockOutput, vanilla, "l1", false));
    auto batched = interchange_logits(reft, pairs, {}, /*batch_size=*/3);  // (3, V), left-padded
    for (size_t i = 0; i < pairs.size(); ++i) {
      const auto& p = pairs[i];
      // The source's block output at layer l is HF's hidden_states[l + 1].
      auto source_hidden = plain(p.source_ids).hidden_states[layer + 1][0];  // (T, D)
      auto rows = source_hidden.index_select(0, torch::tensor(p.source_positions, torch::kInt64));
      PatchHooks patch(layer, Component::kBlockOutput, p.base_positions, rows);
      auto expected = plain(p.base_ids, &patch).logits[0][-1];
      EXPECT_TRUE(tensors_close("layer " + std::to_string(layer) + " pair " + std::to_string(i),
                                batched[i], expected, 1e-5, 1e-5));
      EXPECT_FALSE(torch::allclose(expected, plain(p.base_ids).logits[0][-1]))
          << "the patch changes nothing";
    }
    // DII with r = D swaps the whole vector: R(Rᵀs − Rᵀh) = s − h.
    InterventionOptions dii{.type = InterventionType::kLowRankRotated, .low_rank_dimension = 32};
    ReftModel full(*model_, ReftConfig::build({layer}, Component::kBlockOutput, dii, "l1", false),
                   5);
    EXPECT_TRUE(tensors_close("DII r = D", interchange_logits(full, pairs), batched, 1e-4, 1e-4));
  }
}

TEST_F(TinyModelTest, PairBatchIsLeftPaddedWithPairedLocations) {
  std::vector<CounterfactualPair> pairs = {id_pair({1, 5, 9}, {1, 8}, {2}, {1}),
                                           id_pair({1, 6}, {1, 7, 8, 9}, {0, 1}, {3, 2})};
  const std::vector<size_t> rows = {0, 1};
  auto b = make_pair_batch(pairs, rows, 0, 2);
  EXPECT_TRUE(torch::equal(b.input_ids, torch::tensor({1, 5, 9, 0, 1, 6}).view({2, 3})));
  EXPECT_TRUE(torch::equal(b.attention_mask, torch::tensor({1, 1, 1, 0, 1, 1}).view({2, 3})));
  EXPECT_TRUE(
      torch::equal(b.source_input_ids, torch::tensor({0, 0, 1, 8, 1, 7, 8, 9}).view({2, 4})));
  ASSERT_EQ(b.locations.size(), 2u);
  EXPECT_TRUE(torch::equal(b.locations[1], torch::tensor({2, -1, 0, 1}).view({2, 2})));
  EXPECT_TRUE(torch::equal(b.source_locations[0], torch::tensor({1, -1, 3, 2}).view({2, 2})));
  pairs[1].source_positions = {3, 4};
  EXPECT_NE(
      error_of([&] { make_pair_batch(pairs, rows, 0); }).find("source position 4 is outside its 4"),
      std::string::npos);
  auto split = split_pairs(10, 0.2, 3);
  EXPECT_EQ(split.eval.size(), 2u);
  EXPECT_EQ(split.train.size(), 8u);
  EXPECT_EQ(split_pairs(10, 0.2, 3).eval, split.eval);
}

// ---- collect ----

TEST_F(TinyModelTest, CollectEqualsForwardHiddenStates) {
  const std::vector<std::vector<int64_t>> seqs = {
      {1, 5, 9, 12, 7}, {1, 3}, {1, 8, 8, 30, 41, 2, 9}};
  auto acts = collect_activations(*model_, seqs,
                                  {.layers = {0, 1, 2}, .positions = "all", .batch_size = 2});
  ASSERT_EQ(acts.rows.size(), 3u);
  ASSERT_EQ(acts.example_index.size(0), 14);
  for (int64_t n = 0; n < acts.example_index.size(0); ++n) {
    const auto i = acts.example_index[n].item<int64_t>();
    const auto p = acts.position[n].item<int64_t>();
    EXPECT_EQ(acts.token_id[n].item<int64_t>(), seqs[i][p]);
    auto out = plain(seqs[i]);
    for (int l = 0; l < 3; ++l) {
      // hidden_states[L] has the final norm applied; the last block's raw output is last_block.
      auto expected = l < 2 ? out.hidden_states[l + 1][0][p] : out.last_block[0][p];
      EXPECT_TRUE(tensors_close("row " + std::to_string(n) + " layer " + std::to_string(l),
                                acts.rows[l][n], expected, 1e-5, 1e-5));
    }
  }
  auto last =
      collect_activations(*model_, seqs, {.layers = {1}, .component = Component::kBlockInput});
  ASSERT_EQ(last.position.size(0), 3);
  EXPECT_EQ(last.position[2].item<int64_t>(), 6);  // "l1": the last token
  EXPECT_TRUE(tensors_close("block_input", last.rows[0][2], plain(seqs[2]).hidden_states[1][0][6],
                            1e-5, 1e-5));
  EXPECT_NE(error_of([&] {
              collect_activations(*model_, seqs, {.layers = {1}, .positions = "4"});
            }).find("[sequence 1]"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { collect_activations(*model_, seqs, {.layers = {3}}); }).find("out of range"),
      std::string::npos);
}

// ---- steering ----

TEST_F(TinyModelTest, SteeringTowardATokenRaisesItsLogit) {
  const int64_t target = 17;
  const std::vector<int64_t> prompt = {1, 5, 9, 12, 7};
  auto direction = model_->lm_head_weight()[target].detach().clone();
  const auto logit_of = [&](SiteHooks* hooks) { return plain(prompt, hooks).logits[0][-1]; };
  auto before = logit_of(nullptr);
  auto steer = make_steering_model(*model_, direction, 4.0, 2);
  auto hooks = steer->generation_hooks(false);
  auto after = logit_of(hooks.get());
  EXPECT_GT((after[target] - after.mean()).item<double>(),
            (before[target] - before.mean()).item<double>() + 1.0);

  // Strong enough, the greedy continuation becomes the target token.
  auto strong = make_steering_model(*model_, direction, 50.0, 2);
  GenerationOptions g;
  g.max_new_tokens = 4;
  g.use_model_eos = false;
  auto plain_out = generate(*model_, {prompt}, g);
  auto steered = generate(*model_, {prompt}, g, strong->generation_hooks(true).get());
  EXPECT_EQ(steered[0].new_ids, std::vector<int64_t>(4, target));
  EXPECT_NE(plain_out[0].new_ids, steered[0].new_ids);

  // The stored vector survives an adapter round trip.
  save_adapter(*strong, tmp_ / "steer");
  EXPECT_TRUE(read_adapter_config(tmp_ / "steer").dump().find("\"constant_source\":true") !=
              std::string::npos);
  auto loaded = load_adapter(*model_, tmp_ / "steer");
  auto again = generate(*model_, {prompt}, g, loaded.reft->generation_hooks(true).get());
  EXPECT_EQ(again[0].new_ids, steered[0].new_ids);
  // pyvene's constant source has no place in pyreft's files: the export refuses it.
  EXPECT_NE(error_of([&] { write_pyreft_adapter(*strong, tmp_ / "py"); }).find("no pyreft form"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { make_steering_model(*model_, direction, std::nan(""), 2); }).find("[alpha]"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              make_steering_model(*model_, direction.narrow(0, 0, 8), 1.0, 2);
            }).find("shape (32)"),
            std::string::npos);
}

TEST_F(TinyModelTest, SteeringVectorIsTheMeanDifference) {
  const std::vector<std::vector<int64_t>> pos = {{1, 5, 9}, {1, 6, 6, 6}},
                                          neg = {{1, 30}, {1, 31, 32, 33, 34}};
  SteeringOptions s{.layer = 1, .positions = "all"};
  auto v = steering_vector(*model_, pos, neg, s);
  CollectOptions c{.layers = {1}, .positions = "all"};
  auto expected = collect_activations(*model_, pos, c).rows[0].mean(0) -
                  collect_activations(*model_, neg, c).rows[0].mean(0);
  EXPECT_TRUE(tensors_close("steering vector", v, expected, 1e-5, 1e-5));
  EXPECT_NE(error_of([&] { steering_vector(*model_, pos, {{1}}, {.layer = 1}); }).find("negative"),
            std::string::npos);
  // Errors name the offending prompt when names are given.
  const std::vector<std::string> pos_where = {"p.jsonl:1 positive", "p.jsonl:2 positive"},
                                 neg_where = {"p.jsonl:1 negative", "p.jsonl:2 negative"};
  EXPECT_NE(error_of([&] {
              steering_vector(*model_, pos, neg, {.layer = 1, .positions = "3"}, pos_where,
                              neg_where);
            }).find("[p.jsonl:1 positive] position"),
            std::string::npos);
}

// ---- DAS: validation before any work ----

TEST_F(TinyModelTest, DasRejectsBadOptionsAndDataUpFront) {
  const auto option_error = [&](int64_t layer, const DasOptions& o) {
    return error_of([&] { check_das_options(*model_, layer, o); });
  };
  EXPECT_EQ(option_error(2, {}), "(no error)");
  EXPECT_NE(option_error(2, {.type = InterventionType::kLoReFT}).find("[DasOptions.type]"),
            std::string::npos);
  EXPECT_NE(option_error(3, {}).find("out of range"), std::string::npos);
  EXPECT_NE(option_error(0, {.low_rank_dimension = 33})
                .find("[DasOptions.low_rank_dimension] expected a subspace"),
            std::string::npos);
  EXPECT_NE(option_error(0, {.type = InterventionType::kRotated, .low_rank_dimension = 0})
                .find("[DasOptions.low_rank_dimension]"),
            std::string::npos);
  EXPECT_EQ(option_error(0, {.type = InterventionType::kBoundlessRotated, .low_rank_dimension = 0}),
            "(no error)")
      << "boundless DAS learns its width; --rank does not apply";
  EXPECT_NE(option_error(0, {.epochs = 0}).find("[DasOptions.epochs]"), std::string::npos);
  EXPECT_NE(option_error(0, {.lr = std::nan("")}).find("[DasOptions.lr]"), std::string::npos);
  EXPECT_NE(option_error(0, {.temperature_end = 0}).find("temperature"), std::string::npos);

  std::vector<CounterfactualPair> pairs = {id_pair({1, 5}, {1, 6}, {1}, {1}),
                                           id_pair({1, 7}, {1, 8}, {1}, {1})};
  pairs[0].label_id = 6;
  const auto pair_error = [&](const PairSplit& split) {
    return error_of([&] { check_das_pairs(*model_, pairs, split); });
  };
  EXPECT_NE(pair_error({.train = {0}}).find("at least 2 pairs"), std::string::npos);
  EXPECT_NE(pair_error({.train = {0, 1}}).find("held-out"), std::string::npos);
  EXPECT_NE(pair_error({.train = {0}, .eval = {1}}).find("[pair] expected a label token"),
            std::string::npos)
      << "pair 1 has no label";
  pairs[1].label_id = 8;
  EXPECT_EQ(pair_error({.train = {0}, .eval = {1}}), "(no error)");
}

// stories260K ships tokenizer.model and tokenizer.json, and the automatic choice is SentencePiece,
// which cannot be loaded next to libtorch in sanitizer builds (this binary runs under ASan with
// the unit tests). The same tokenizer through tokenizer.json: symlinks to every file but
// tokenizer.model, for this process and the reft processes it starts.
fs::path without_sentencepiece(const fs::path& model, const fs::path& dir) {
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(model))
    if (entry.path().filename() != "tokenizer.model")
      fs::create_symlink(fs::absolute(entry.path()), dir / entry.path().filename());
  return dir;
}

// ---- pairs from files: malformed input ----

TEST(PairData, MalformedPairsNameFileAndLine) {
  REFT_REQUIRE_SHARED("models/stories260K");
  auto tok = Tokenizer::load(shared_path, {.backend = TokenizerBackend::kJson});
  TempDir tmp;
  const auto check = [&](const std::string& line, const std::string& needle) {
    auto file =
        write_lines(tmp / "pairs.jsonl",
                    {R"({"base": "Tom ran.", "source": "Sue ran.", "label": " Sue"})", line});
    const auto message = error_of([&] { make_pair_dataset(read_records(file), *tok); });
    EXPECT_NE(message.find("pairs.jsonl:2]"), std::string::npos) << line << " → " << message;
    EXPECT_NE(message.find(needle), std::string::npos) << line << " → " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  };
  check(R"({"base": "Tom ran."})", "'source'");
  check(R"({"base": "Tom ran.", "source": "Sue ran."})", "'label'");
  check(R"({"base": "Tom ran.", "source": 7, "label": " Sue"})", "expected a string");
  check(R"({"base": "", "source": "Sue ran.", "label": " Sue"})", "empty");
  check(R"({"base": "Tom ran.", "source": "Sue ran.", "label": " Sue", "base_position": 40})",
        "outside");
  check(R"({"base": "Tom ran.", "source": "Sue ran.", "label": " Sue", "source_position": -9})",
        "outside");
  check(R"({"base": "Tom ran.", "source": "Sue ran.", "label": " Sue", "base_position": "x1"})",
        "base_position");
  check(R"({"base": "Tom ran.", "source": "Sue ran.", "label": " Sue", "base_position": [1]})",
        "integer or a position");
  check(R"({"base": "Tom ran.", "source": "Sue ran.", "label": " Sue", "base_position": "all"})",
        "as many");
  check(R"({"base": "Tom ran.", "source": "Sue ran.", "label": 100000})", "outside the vocabulary");
  check(R"({"base": "Tom ran.", "source": "Sue ran.", "label": [1]})", "expected label text");
  check(R"({"base": "Once upon a ti", "source": "Sue ran.", "label": "me"})",
        "does not start a new token");
  auto ok = make_pair_dataset(
      read_records(write_lines(tmp / "ok.jsonl",
                               {R"({"base": "Tom ran.", "source": "Sue ran!", "expected": " Sue",)"
                                R"( "base_position": 1, "source_position": "l1"})"})),
      *tok);
  ASSERT_EQ(ok.pairs.size(), 1u);
  EXPECT_EQ(ok.pairs[0].base_positions, std::vector<int64_t>{1});
  EXPECT_EQ(ok.pairs[0].source_positions,
            std::vector<int64_t>{static_cast<int64_t>(ok.pairs[0].source_ids.size()) - 1});
  EXPECT_EQ(ok.pairs[0].label_id, tok->token_to_id("▁S").value());  // " Sue" → ▁S u e
}

// ---- DAS on stories260K ----

// Story openings after which stories260K continues with the character's name ("… named Tom. One
// day," → "▁T"). A name-swap pair takes the base from one opening and the source from another with
// a different name; the intervened base should continue with the source's name. Five name classes
// (by first token; Ben/Bob, Sue/Sam and Max/Mia share theirs and are never swapped for each other)
// differ along four directions, which a rank-4 subspace can hold.
const std::vector<std::string> kFrames = {
    "Once upon a time, there was a little girl named {}. One day,",
    "Once upon a time, there was a little boy named {}. One day,",
    "Once upon a time, there was a kind girl named {}. One day,",
    "Once upon a time, there was a happy boy named {}. One day,",
    "Once upon a time, in a small town, there lived a boy named {}. One day,",
};
const std::vector<std::string> kNames = {"Lily", "Ben", "Sue", "Tom", "Max", "Mia", "Sam", "Bob"};

struct Opening {
  std::string text, name;
  int64_t name_position = 0;  // the name's first token (BOS included)
};

// `count` name-swap pairs as JSON lines, paired at the last token or (`at_name`) at the names'
// first tokens, over the openings the base model itself continues with the name (at least 80% must
// be).
std::vector<std::string> name_pair_lines(Model& model, const Tokenizer& tok, const fs::path& tmp,
                                         size_t count, bool at_name) {
  std::vector<Opening> openings;
  std::vector<std::string> lines;
  for (const auto& frame : kFrames)
    for (const auto& name : kNames) {
      const auto hole = frame.find("{}");
      std::string text = frame;
      text.replace(hole, 2, name);
      const auto prefix = tok.encode(frame.substr(0, hole - 1), true);  // "… named"
      openings.push_back({text, name, static_cast<int64_t>(prefix.size())});
      lines.push_back(
          nlohmann::json{{"base", text}, {"source", text}, {"label", " " + name}}.dump());
    }
  auto checks =
      make_pair_dataset(read_records(write_lines(tmp / "openings.jsonl", lines)), tok).pairs;
  auto predicted = plain_logits(model, checks).argmax(-1);
  std::vector<size_t> valid;
  for (size_t i = 0; i < checks.size(); ++i) {
    // The name's first token sits at name_position and is the label.
    EXPECT_EQ(checks[i].base_ids.at(openings[i].name_position), checks[i].label_id)
        << openings[i].text;
    if (predicted[i].item<int64_t>() == checks[i].label_id) valid.push_back(i);
  }
  EXPECT_GE(valid.size(), checks.size() * 8 / 10)
      << "stories260K should continue most openings with the name";
  std::mt19937_64 rng(7);
  lines.clear();
  while (lines.size() < count) {
    const size_t b = valid[rng() % valid.size()], s = valid[rng() % valid.size()];
    if (checks[b].label_id == checks[s].label_id) continue;
    nlohmann::json j = {{"base", openings[b].text},
                        {"source", openings[s].text},
                        {"label", " " + openings[s].name}};
    if (at_name) {
      j["base_position"] = openings[b].name_position;
      j["source_position"] = openings[s].name_position;
    }
    lines.push_back(j.dump());
  }
  return lines;
}

class StoriesDas : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto dir = test::shared_dir() / "models/stories260K";
    if (test::shared_dir().empty() || !fs::exists(dir)) return;
    tmp_ = new TempDir();
    model_dir_ = without_sentencepiece(dir, tmp_->path() / "stories260K");
    model_ = load_model(model_dir_).release();
    tokenizer_ = Tokenizer::load(model_dir_).release();
    at_name_ = write_lines(*tmp_ / "at_name.jsonl",
                           name_pair_lines(*model_, *tokenizer_, tmp_->path(), 240, true));
    at_last_ = write_lines(*tmp_ / "at_last.jsonl",
                           name_pair_lines(*model_, *tokenizer_, tmp_->path(), 240, false));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tokenizer_;
    delete tmp_;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "reference data models/stories260K not found";
  }
  static inline Model* model_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
  static inline TempDir* tmp_ = nullptr;
  static inline fs::path model_dir_, at_name_, at_last_;
};

// Acceptance of issue 5: a rank ≤ 4 subspace with IIA ≥ 0.9 on held-out pairs at some layer, and a
// random rotation clearly lower.
TEST_F(StoriesDas, LowRankSubspaceAtTheNameReachesHighIIA) {
  const auto pairs = make_pair_dataset(read_records(at_name_), *tokenizer_).pairs;
  const auto split = split_pairs(pairs.size(), 0.25, 0);
  const auto sweep =
      das_sweep(*model_, pairs, split, {0, 1, 2, 3, 4}, {.low_rank_dimension = 4, .epochs = 8});
  for (const auto& r : sweep.results)
    std::printf(
        "layer %lld: DAS IIA %.3f  random %.3f  vanilla %.3f  unintervened %.3f  train %.3f  "
        "loss %.4f\n",
        static_cast<long long>(r.layer), r.iia, r.random_iia, r.vanilla_iia, r.unintervened,
        r.train_iia, r.final_loss);
  const auto& best = sweep.results[sweep.best];
  EXPECT_GE(best.iia, 0.9) << "at layer " << best.layer;
  EXPECT_LE(best.random_iia, best.iia - 0.3)
      << "a random rank-4 rotation should score clearly lower";
  EXPECT_LE(best.unintervened, 0.05) << "the base alone predicts its own name, never the source's";
  ASSERT_TRUE(best.reft);
  auto R = best.reft->interventions()[0]->rotation();  // (D, r) with orthonormal columns
  EXPECT_TRUE(tensors_close("RᵀR", R.t().matmul(R), torch::eye(4), 1e-5));
}

TEST_F(StoriesDas, BoundlessDasAnnealsAndLearnsABoundary) {
  const auto pairs = make_pair_dataset(read_records(at_name_), *tokenizer_).pairs;
  const auto split = split_pairs(pairs.size(), 0.25, 0);
  std::vector<double> temperatures;
  auto r = train_das(*model_, pairs, split, 1,
                     {.type = InterventionType::kBoundlessRotated, .epochs = 3},
                     [&](const DasEvent& e) { temperatures.push_back(e.temperature); });
  ASSERT_EQ(temperatures.size(), r.losses.size());
  EXPECT_DOUBLE_EQ(temperatures.front(), 50.0);
  EXPECT_NEAR(temperatures.back(), 0.1, 1e-12);
  EXPECT_GT(r.boundary, 0.0);
  EXPECT_LT(r.boundary, 1.0);
  EXPECT_NE(r.boundary, 0.5) << "the boundary should move from its initial value";
  EXPECT_GE(r.iia, 0.9);
  EXPECT_EQ(set_boundless_temperature(*r.reft, 0.1), 1);
  EXPECT_DOUBLE_EQ(
      label_accuracy(interchange_logits(*r.reft, pairs, split.eval), pairs, split.eval), r.iia)
      << "IIA is measured at the final temperature";
}

// ---- CLI ----

bool cli_built() { return !std::string(REFT_CLI).empty() && fs::exists(REFT_CLI); }

TEST_F(StoriesDas, CliPrintsTheIIATable) {
  if (!cli_built()) GTEST_SKIP() << "reft binary not built";
  const std::string model = model_dir_.string();
  const auto adapter = tmp_->path() / "das-adapter";
  // Paired at the last token, the name arrives only in the last layer's output.
  auto r = test::reft({"das", "--model", model, "--data", at_last_.string(), "--layers", "3-4",
                       "--epochs", "8", "--eval-fraction", "0.25", "--output", adapter.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string header, row3, row4, best;
  std::getline(lines, header), std::getline(lines, row3), std::getline(lines, row4),
      std::getline(lines, best);
  std::printf("%s\n", r.out.c_str());
  EXPECT_NE(header.find("DAS IIA  random IIA  vanilla IIA  unintervened"), std::string::npos)
      << r.out;
  double iia = 0, random_iia = 1;
  long long layer = -1;
  char component[32];
  ASSERT_EQ(std::sscanf(row4.c_str(), "%lld %31s %lf %lf", &layer, component, &iia, &random_iia), 4)
      << row4;
  EXPECT_EQ(layer, 4);
  EXPECT_STREQ(component, "block_output");
  EXPECT_GE(iia, 0.9);
  EXPECT_LE(random_iia, iia - 0.3);
  EXPECT_EQ(best.rfind("best: layer 4", 0), 0u) << best;
  EXPECT_EQ(read_adapter_config(adapter).value("task", ""), "das");

  // reft interchange runs the saved intervention over every pair: one JSON line each, IIA on
  // stderr (train and held-out pairs together here).
  r = test::reft({"interchange", "--model", model, "--data", at_last_.string(), "--adapter",
                  adapter.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 240);
  EXPECT_NE(r.out.find(R"("hit":true)"), std::string::npos) << r.out.substr(0, 400);
  const auto at = r.err.find("IIA ");
  ASSERT_NE(at, std::string::npos) << r.err;
  EXPECT_GE(std::stod(r.err.substr(at + 4)), 0.9) << r.err;

  // Malformed pairs: exit 1 with one line naming file:line.
  auto bad = write_lines(tmp_->path() / "bad.jsonl",
                         {R"({"base": "Tom ran.", "source": "Sue ran.", "label": " Sue"})",
                          R"({"base": "Tom ran.", "label": " Sue"})"});
  test::expect_error(test::reft({"das", "--model", model, "--data", bad.string()}), 1,
                     "bad.jsonl:2] expected field 'source'");

  // Bad flags: exit 2 with one line naming the flag, before any training or output.
  const auto flag_error = [&](const std::string& flag, const std::string& value,
                              const std::string& needle) {
    test::expect_error(test::reft({"das", "--model", model, "--data", at_last_.string(), "--output",
                                   (tmp_->path() / "never").string(), flag, value}),
                       2, needle);
  };
  flag_error("--rank", "65", "[--rank] expected a subspace dimension in [1, 64]");
  flag_error("--type", "loreft", "[--type]");
  flag_error("--layers", "5", "out of range");
  flag_error("--position", "x9", "[--position]");
  EXPECT_FALSE(fs::exists(tmp_->path() / "never"));
}

TEST(AnalysisCli, CollectMatchesForwardAndSteerSavesAnAdapter) {
  if (!cli_built()) GTEST_SKIP() << "reft binary not built";
  TempDir tmp;
  write_preset_model("tiny", tmp / "m", 3);
  const std::string model = (tmp / "m").string();
  const std::string text = "the cat sat on the mat";
  auto data = write_lines(tmp / "texts.jsonl",
                          {nlohmann::json{{"text", text}}.dump(), R"({"text": "a dog"})"});
  auto r = test::reft({"collect", "--model", model, "--data", data.string(), "--layers", "0-1",
                       "--position", "all", "--batch-size", "1", "--out",
                       (tmp / "acts.safetensors").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  r = test::reft(
      {"forward", "--model", model, "--text", text, "--out", (tmp / "fwd.safetensors").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  auto acts = load_safetensors(tmp / "acts.safetensors");
  auto fwd = load_safetensors(tmp / "fwd.safetensors");
  auto first = acts.at("example_index").eq(0);
  const int64_t T = fwd.at("input_ids").size(1);
  ASSERT_EQ(first.sum().item<int64_t>(), T);
  EXPECT_TRUE(torch::equal(acts.at("position").index({first}), torch::arange(T)));
  EXPECT_TRUE(torch::equal(acts.at("token_id").index({first}), fwd.at("input_ids")[0]));
  for (int l : {0, 1})
    EXPECT_TRUE(
        tensors_close("layer " + std::to_string(l),
                      acts.at("layer_" + std::to_string(l) + ".block_output").index({first}),
                      fwd.at("hidden." + std::to_string(l + 1))[0], 1e-6));

  auto pairs = write_lines(tmp / "contrast.jsonl",
                           {R"({"positive": "the cat is happy", "negative": "the cat is sad"})",
                            R"({"positive": "a happy dog", "negative": "a sad dog"})"});
  const std::vector<std::string> steer = {"steer",   "--model",          model,
                                          "--pairs", pairs.string(),     "--layer",
                                          "2",       "--max-new-tokens", "6"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = steer;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  r = test::reft(with({"--alpha", "8", "--prompt", "the dog", "--save", (tmp / "steer").string()}));
  ASSERT_EQ(r.status, 0) << r.err;
  auto generated =
      test::reft({"generate", "--model", model, "--adapter", (tmp / "steer").string(),
                  "--intervene-generated", "--prompt", "the dog", "--max-new-tokens", "6"});
  ASSERT_EQ(generated.status, 0) << generated.err;
  EXPECT_EQ(generated.out, r.out) << "the saved steering adapter reproduces reft steer";
  auto plain =
      test::reft({"generate", "--model", model, "--prompt", "the dog", "--max-new-tokens", "6"});
  EXPECT_NE(plain.out, r.out) << "alpha 8 should change the continuation";
  test::expect_error(test::reft(with({})), 2, "--prompt");
  test::expect_error(test::reft(with({"--prompt", "the dog", "--apply-position", "zz"})), 2,
                     "[--apply-position]");
  test::expect_error(test::reft(with({"--prompt", "the dog", "--alpha", "nan"})), 2, "[--alpha]");
}

}  // namespace
}  // namespace reft
