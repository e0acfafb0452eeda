// ReFT numerics against pyreft 0.1.0 / pyvene 0.1.7 (golden/reft): intervened logits, loss and
// gradients for every intervention type, the 10-step AdamW trajectory, parameter counts, the
// printed summary, position lists, and pyreft-identical initialisation from a seed.

#include <torch/torch.h>

#include "interventions/orthogonal.h"
#include "reft/optimizer.h"
#include "reft/positions.h"
#include "reft/reft_model.h"
#include "reft/safetensors.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::tensors_close;

struct Case {
  nlohmann::json meta;
  std::map<std::string, torch::Tensor> t;
  std::unique_ptr<Model> model;
  std::unique_ptr<ReftModel> reft;
};

InterventionOptions options_of(const nlohmann::json& meta) {
  InterventionOptions o;
  o.type = parse_intervention_type(meta["intervention_class"].get<std::string>());
  o.low_rank_dimension = meta["rank"];
  o.orthogonal = OrthogonalMode::kPyreft;
  const auto& kw = meta["intervention_kwargs"];
  if (kw.contains("add_bias")) o.add_bias = kw["add_bias"];
  return o;
}

// Copies pyreft's parameters and buffers ("param.<name>", "buffer.<name>") into intervention i.
void load_pyreft_tensors(ReftModel& reft, size_t i, const std::map<std::string, torch::Tensor>& t,
                         const std::string& prefix = "") {
  torch::NoGradGuard g;
  auto& iv = *reft.interventions()[i];
  for (auto& p : iv.named_parameters()) {
    auto it = t.find(prefix + "param." + p.key());
    ASSERT_NE(it, t.end()) << "golden lacks param." << p.key();
    p.value().copy_(it->second);
  }
  for (auto& b : iv.named_buffers()) {
    auto it = t.find(prefix + "buffer." + b.key());
    if (it != t.end()) b.value().copy_(it->second);
  }
}

Case load_case(const fs::path& json_path) {
  Case c;
  c.meta = read_json_file(json_path);
  auto st = json_path;
  c.t = load_safetensors(st.replace_extension(".safetensors"));
  c.model = load_model(test::shared_dir() / "models" / c.meta["model"].get<std::string>());
  auto config = ReftConfig::build({c.meta["layer"].get<int64_t>()},
                                  parse_component(c.meta["component"].get<std::string>()),
                                  options_of(c.meta), "l1", true);
  c.reft = std::make_unique<ReftModel>(*c.model, config, 0);
  return c;
}

ReftBatch batch_of(const Case& c) {
  ReftBatch b;
  b.input_ids = c.t.at("input_ids");
  b.attention_mask = c.t.at("attention_mask");
  b.labels = c.t.at("labels");
  b.locations = {c.t.at("positions")};
  if (c.t.count("source_input_ids")) {
    b.source_input_ids = c.t.at("source_input_ids");
    b.source_attention_mask = c.t.at("source_attention_mask");
    b.source_locations = {c.t.at("source_positions")};
  }
  return b;
}

std::vector<fs::path> case_files() {
  std::vector<fs::path> out;
  for (const auto& f : test::files_with_suffix(test::shared_dir() / "golden" / "reft", ".json")) {
    const auto meta = read_json_file(f);
    if (!meta.contains("intervention_class") || !meta.contains("tensors")) continue;
    if (!test::architecture_supported(test::shared_dir() / "models" /
                                      meta["model"].get<std::string>())) {
      std::cout << "[ SKIPPED  ] " << f.filename() << ": architecture not supported yet\n";
      continue;
    }
    out.push_back(f);
  }
  return out;
}

TEST(ReftGolden, LogitsLossAndGradientsOfEveryCase) {
  REFT_REQUIRE_SHARED("golden/reft");
  const auto files = case_files();
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    SCOPED_TRACE(f.filename().string());
    auto c = load_case(f);
    load_pyreft_tensors(*c.reft, 0, c.t);
    const auto batch = batch_of(c);
    auto mask = batch.attention_mask.unsqueeze(-1);
    auto out = c.reft->forward(batch);
    EXPECT_TRUE(
        tensors_close(f.stem().string() + " logits", out.logits, c.t.at("logits"), 1e-4, 0, mask));
    auto loss = c.reft->lm_loss(batch);
    const double expected = c.t.at("loss").item<double>();
    EXPECT_NEAR(loss.item<double>(), expected, 1e-5 * std::abs(expected)) << "loss";
    auto* rotate = dynamic_cast<RotateLayerImpl*>(
        c.reft->interventions()[0]->named_children().contains("rotate_layer")
            ? c.reft->interventions()[0]->named_children()["rotate_layer"].get()
            : nullptr);
    if (rotate) const_cast<torch::Tensor&>(rotate->last_weight()).retain_grad();
    loss.backward();
    for (auto& p : c.reft->interventions()[0]->named_parameters()) {
      const std::string key = "grad." + p.key();
      if (!c.t.count(key)) {
        EXPECT_FALSE(p.value().grad().defined() && p.value().grad().abs().max().item<double>() > 0)
            << p.key() << " gets a gradient pyreft does not give";
        continue;
      }
      ASSERT_TRUE(p.value().grad().defined()) << key;
      EXPECT_TRUE(
          tensors_close(f.stem().string() + " " + key, p.value().grad(), c.t.at(key), 1e-5, 1e-3));
    }
    if (rotate && c.t.count("grad.R")) {
      EXPECT_TRUE(tensors_close(f.stem().string() + " grad.R", rotate->last_weight().grad(),
                                c.t.at("grad.R"), 1e-5, 1e-3));
    }
    // The printed summary, verbatim.
    EXPECT_EQ(c.reft->trainable_parameters_summary(),
              c.meta["print_trainable_parameters"].get<std::string>());
  }
}

// torch::manual_seed(init_seed) and construction in pyreft's order give pyreft's exact initial
// tensors (the golden cases store untrained interventions).
TEST(ReftGolden, PyreftModeReproducesInitialisationFromSeed) {
  REFT_REQUIRE_SHARED("golden/reft");
  for (const auto& f : case_files()) {
    SCOPED_TRACE(f.filename().string());
    const auto meta = read_json_file(f);
    auto c = load_case(f);
    auto config = ReftConfig::build({meta["layer"].get<int64_t>()}, Component::kBlockOutput,
                                    options_of(meta), "l1", true);
    ReftModel fresh(*c.model, config, meta["init_seed"].get<uint64_t>());
    for (auto& p : fresh.interventions()[0]->named_parameters())
      EXPECT_TRUE(tensors_close("init " + p.key(), p.value(), c.t.at("param." + p.key()), 1e-6));
    for (auto& b : fresh.interventions()[0]->named_buffers()) {
      if (c.t.count("buffer." + b.key())) {
        EXPECT_TRUE(tensors_close("init " + b.key(), b.value(), c.t.at("buffer." + b.key()), 1e-5));
      }
    }
  }
}

TEST(ReftGolden, TenStepTrajectory) {
  REFT_REQUIRE_SHARED("golden/reft/stories260K-loreft-trajectory.json");
  const auto meta = read_json_file(shared_path);
  auto t = load_safetensors(fs::path(shared_path).replace_extension(".safetensors"));
  auto model = load_model(test::shared_dir() / "models" / meta["model"].get<std::string>());
  InterventionOptions o;
  o.type = InterventionType::kLoReFT;
  o.low_rank_dimension = meta["rank"];
  o.orthogonal = OrthogonalMode::kPyreft;
  ReftModel reft(
      *model,
      ReftConfig::build({meta["layer"].get<int64_t>()}, Component::kBlockOutput, o, "l1", true), 0);
  auto& iv = *reft.interventions()[0];
  {
    torch::NoGradGuard g;
    iv.named_parameters()["rotate_layer.parametrizations.weight.original"].copy_(
        t.at("init.original"));
    iv.named_buffers()["rotate_layer.parametrizations.weight.0.base"].copy_(t.at("init.base"));
    iv.named_parameters()["learned_source.weight"].copy_(t.at("init.W"));
    iv.named_parameters()["learned_source.bias"].copy_(t.at("init.b"));
  }
  EXPECT_TRUE(tensors_close("init.R", iv.rotation(), t.at("init.R"), 1e-6));
  ReftBatch batch;
  batch.input_ids = t.at("input_ids");
  batch.attention_mask = t.at("attention_mask");
  batch.labels = t.at("labels");
  batch.locations = {t.at("positions")};
  // pyreft's optimizer order: original, learned_source.weight, learned_source.bias.
  auto params = iv.named_parameters();
  std::vector<torch::Tensor> order = {params["rotate_layer.parametrizations.weight.original"],
                                      params["learned_source.weight"],
                                      params["learned_source.bias"]};
  AdamW opt(order, {true, true, true}, {.lr = meta["optimizer"]["lr"].get<double>()});
  auto expected = t.at("trajectory.losses");
  for (int step = 0; step < expected.size(0); ++step) {
    opt.zero_grad();
    auto loss = reft.lm_loss(batch);
    EXPECT_NEAR(loss.item<double>(), expected[step].item<double>(), 1e-4) << "step " << step;
    loss.backward();
    if (step == 0) {
      EXPECT_TRUE(tensors_close("step0.grad.original", order[0].grad(), t.at("step0.grad.original"),
                                1e-5, 1e-3));
      EXPECT_TRUE(tensors_close("step0.grad.W", order[1].grad(), t.at("step0.grad.W"), 1e-5, 1e-3));
      EXPECT_TRUE(tensors_close("step0.grad.b", order[2].grad(), t.at("step0.grad.b"), 1e-5, 1e-3));
    }
    opt.step();
  }
  EXPECT_TRUE(tensors_close("final.original", order[0], t.at("final.original"), 1e-3));
  EXPECT_TRUE(tensors_close("final.W", order[1], t.at("final.W"), 1e-3));
  EXPECT_TRUE(tensors_close("final.b", order[2], t.at("final.b"), 1e-3));
  EXPECT_TRUE(tensors_close("final.R", iv.rotation(), t.at("final.R"), 1e-3));
}

TEST(ReftGolden, ParameterCounts) {
  REFT_REQUIRE_SHARED("golden/reft/param_counts.jsonl");
  int checked = 0;
  for (const auto& row : test::read_jsonl(shared_path)) {
    InterventionOptions o;
    o.type = parse_intervention_type(row["intervention"].get<std::string>());
    o.embed_dim = row["embed_dim"];
    o.low_rank_dimension = row["rank"];
    o.orthogonal = OrthogonalMode::kLean;  // counts never include the trivialization base
    auto iv = make_intervention(o);
    EXPECT_EQ(iv->num_trainable_parameters(), row["trainable_params"].get<int64_t>()) << row.dump();
    std::map<std::string, int64_t> breakdown;
    for (const auto& p : iv->named_parameters())
      if (p.value().requires_grad()) breakdown[p.key()] = p.value().numel();
    EXPECT_EQ(nlohmann::json(breakdown), row["breakdown"]) << row["intervention"];
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(ReftGolden, PyreftInterventionLocations) {
  REFT_REQUIRE_SHARED("golden/reft/positions.jsonl");
  int checked = 0;
  for (const auto& row : test::read_jsonl(shared_path)) {
    const auto got = pyreft_intervention_locations(
        row["last_position"], row["positions"].get<std::string>(), row["share_weights"],
        row["num_interventions"], row["pad_mode"].get<std::string>());
    EXPECT_EQ(nlohmann::json(got), row["result"]) << row.dump();
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace reft
