// pyreft interoperability against pyreft 0.1.0 / pyvene 0.1.7: every saved directory in
// golden/pyreft loads and reproduces pyreft's logits, round trips through reft's format are
// lossless, every golden/reft case loads from a pyreft directory built from its state dict, every
// intervention type survives export → import, and malformed inputs fail with errors that name the
// file.

#include <torch/torch.h>

#include "reft/adapter.h"
#include "reft/error.h"
#include "reft/pyreft.h"
#include "reft/pyreft_common.h"
#include "reft/safetensors.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::tensors_close;

constexpr OrthogonalMode kModes[] = {OrthogonalMode::kLean, OrthogonalMode::kPyreft};

std::string mode_name(OrthogonalMode m) { return std::string(orthogonal_mode_name(m)); }

// The directories of golden/pyreft (held-out ones included: whatever is there).
std::vector<fs::path> golden_dirs() {
  std::vector<fs::path> out;
  const fs::path root = test::shared_dir() / "golden" / "pyreft";
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && fs::exists(e.path() / "config.json")) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The base model of a golden directory: expected.json "model", else the longest model folder
// name that prefixes the directory name ("stories260K-loreft-…" → stories260K).
fs::path model_of(const fs::path& dir) {
  const auto meta = read_json_file(dir / "expected.json");
  const fs::path models = test::shared_dir() / "models";
  if (meta.contains("model")) return models / meta["model"].get<std::string>();
  std::string best;
  const std::string name = dir.filename().string();
  for (const auto& e : fs::directory_iterator(models)) {
    const std::string m = e.path().filename().string();
    if (name.starts_with(m + "-") && m.size() > best.size()) best = m;
  }
  return best.empty() ? fs::path() : models / best;
}

struct Golden {
  fs::path dir;
  json meta;
  std::map<std::string, torch::Tensor> t;
  std::unique_ptr<Model> model;
};

std::vector<Golden> load_goldens() {
  std::vector<Golden> out;
  for (const auto& dir : golden_dirs()) {
    const auto model_dir = model_of(dir);
    if (model_dir.empty() || !test::architecture_supported(model_dir)) {
      std::cout << "[ SKIPPED  ] " << dir.filename() << ": base model unknown or not supported\n";
      continue;
    }
    Golden g{dir, read_json_file(dir / "expected.json"),
             load_safetensors(dir / "expected.safetensors"), load_model(model_dir)};
    out.push_back(std::move(g));
  }
  return out;
}

// `positions` (num_interventions, B, n) → one (B, n) location tensor per intervention.
ReftBatch batch_of(const Golden& g) {
  ReftBatch b;
  b.input_ids = g.t.at("input_ids");
  b.attention_mask = g.t.at("attention_mask");
  for (const auto& p : g.t.at("positions").unbind(0)) b.locations.push_back(p);
  if (g.t.count("source_input_ids")) {  // interchange interventions (DII, DAS)
    b.source_input_ids = g.t.at("source_input_ids");
    b.source_attention_mask = g.t.at("source_attention_mask");
    const auto& sp = g.t.at("source_positions");  // (k, B, n), or (B, n) for one intervention
    for (const auto& p : sp.dim() == 2 ? std::vector<torch::Tensor>{sp} : sp.unbind(0))
      b.source_locations.push_back(p);
  }
  return b;
}

::testing::AssertionResult logits_match(const std::string& what, ReftModel& reft, const Golden& g) {
  torch::NoGradGuard no_grad;
  auto out = reft.forward(batch_of(g));
  return tensors_close(what, out.logits, g.t.at("logits"), 1e-4, 0,
                       g.t.at("attention_mask").unsqueeze(-1));
}

TEST(PyreftGolden, EveryDirectoryReproducesPyreftLogitsInBothModes) {
  REFT_REQUIRE_SHARED("golden/pyreft");
  const auto goldens = load_goldens();
  ASSERT_FALSE(goldens.empty());
  for (const auto& g : goldens) {
    EXPECT_TRUE(is_pyreft_adapter(g.dir)) << g.dir;
    // The reader returns what the .bin files hold (expected.safetensors repeats them).
    const auto adapter = read_pyreft_adapter(g.dir);
    EXPECT_EQ(json(adapter.keys), g.meta["intervention_keys_in_order"]);
    for (size_t i = 0; i < adapter.states.size(); ++i)
      for (const auto& [name, t] : adapter.states[i]) {
        const std::string key = "intervention" + std::to_string(i) + "." + name;
        if (g.t.count(key)) {
          EXPECT_TRUE(torch::equal(pyreft::to_torch(t), g.t.at(key))) << key;
        }
      }
    for (auto mode : kModes) {
      auto reft = load_pyreft_adapter(*g.model, g.dir, {.orthogonal = mode});
      EXPECT_EQ(json(reft->keys()), g.meta["intervention_keys_in_order"]);
      EXPECT_TRUE(logits_match(g.dir.filename().string() + " " + mode_name(mode), *reft, g));
    }
  }
}

// Without explicit locations the default positions (f1+l1 untied for the doubled layout, l1
// otherwise) resolve to what pyreft's data helpers gave, wherever the golden used those.
TEST(PyreftGolden, DefaultPositionsFollowPyreftsLayout) {
  REFT_REQUIRE_SHARED("golden/pyreft");
  for (const auto& g : load_goldens()) {
    auto reft = load_pyreft_adapter(*g.model, g.dir);
    const auto positions = g.t.at("positions");  // (k, B, n)
    const int64_t k = positions.size(0), B = positions.size(1);
    ReftBatch batch = batch_of(g);
    batch.locations.clear();
    for (int64_t b = 0; b < B; ++b)
      batch.prompt_lengths.push_back(positions.select(1, b).max().item<int64_t>() + 1);
    const auto spec = PositionSpec::parse(reft->config().positions);
    bool same = true;
    for (int64_t i = 0; i < k; ++i)
      for (int64_t b = 0; b < B; ++b) {
        const auto want = positions[i][b];
        const auto got =
            spec.resolve(batch.prompt_lengths[b], reft->config().representations[i].part);
        same = same && torch::equal(torch::tensor(got, torch::kInt64), want);
      }
    if (!same) {
      std::cout << "[ SKIPPED  ] " << g.dir.filename()
                << ": its positions are not pyreft's defaults\n";
      continue;
    }
    torch::NoGradGuard no_grad;
    auto out = reft->forward(batch);
    EXPECT_TRUE(tensors_close(g.dir.filename().string() + " default positions", out.logits,
                              g.t.at("logits"), 1e-4, 0, g.t.at("attention_mask").unsqueeze(-1)));
  }
}

TEST(PyreftGolden, RoundTripThroughReftFormatIsLossless) {
  REFT_REQUIRE_SHARED("golden/pyreft");
  for (const auto& g : load_goldens()) {
    for (auto mode : kModes) {
      SCOPED_TRACE(g.dir.filename().string() + " " + mode_name(mode));
      test::TempDir tmp;
      convert_pyreft_to_reft(*g.model, g.dir, tmp / "reft", {.orthogonal = mode});
      auto loaded = load_adapter(*g.model, tmp / "reft");
      EXPECT_TRUE(logits_match("reft adapter", *loaded.reft, g));
      const auto warnings = convert_reft_to_pyreft(tmp / "reft", tmp / "pyreft");
      EXPECT_TRUE(warnings.empty()) << warnings[0];
      // The re-exported intkey files hold the original tensors: bit for bit with pyreft's
      // parametrization, to float rounding with the lean one (R passes through Householder form).
      // An `original` + `base` pair that reft re-bases (lean mode, square R, diag ≠ ±1) comes
      // back as another pair with the same effective R.
      const auto original = read_pyreft_adapter(g.dir);
      const auto again = read_pyreft_adapter(tmp / "pyreft");
      ASSERT_EQ(original.keys, again.keys);
      for (size_t i = 0; i < original.states.size(); ++i) {
        const auto& before = original.states[i];
        const auto& after = again.states[i];
        ASSERT_EQ(before.size(), after.size());
        const auto* x = pyreft::find(before, pyreft::kOriginal);
        const bool copied = x && mode == OrthogonalMode::kPyreft && x->shape[0] > x->shape[1] &&
                            pyreft::to_torch(*x).diagonal().abs().eq(1).all().item<bool>();
        for (size_t k = 0; k < before.size(); ++k) {
          const auto& [name, t] = before[k];
          const std::string what = original.keys[i] + " " + name;
          EXPECT_EQ(after[k].first, name);
          const bool widened =
              t.dtype == ScalarType::kBFloat16 && after[k].second.dtype == ScalarType::kFloat32;
          EXPECT_TRUE(after[k].second.dtype == t.dtype || widened) << what;
          const bool parametrization = name == pyreft::kOriginal || name == pyreft::kBase;
          if (parametrization && !copied) continue;
          const auto a = pyreft::to_torch(after[k].second),
                     e = pyreft::to_torch(t).to(a.scalar_type());
          if (mode == OrthogonalMode::kPyreft || name != "rotate_layer") {
            EXPECT_TRUE(torch::equal(a, e)) << what;
          } else {
            EXPECT_TRUE(tensors_close(what, a, e, 1e-6));
          }
        }
        if (x && !copied) {
          const auto effective = [](const TensorDict& st) {
            return pyreft::effective_rotation(
                pyreft::to_torch(*pyreft::find(st, pyreft::kOriginal)),
                pyreft::to_torch(*pyreft::find(st, pyreft::kBase)));
          };
          EXPECT_TRUE(tensors_close(original.keys[i] + " effective R", effective(after),
                                    effective(before), 1e-6));
        }
      }
      auto reloaded = load_pyreft_adapter(*g.model, tmp / "pyreft", {.orthogonal = mode});
      EXPECT_TRUE(logits_match("re-exported", *reloaded, g));
    }
  }
}

// Older and alternative spellings pyvene accepts: dotted intkey names (pyvene < 0.1.4),
// representations as dicts, one class string for all, bf16 learned_source (pyreft's default).
TEST(PyreftGolden, OlderSpellingsLoadToTheSameLogits) {
  REFT_REQUIRE_SHARED("golden/pyreft");
  for (const auto& g : load_goldens()) {
    SCOPED_TRACE(g.dir.filename().string());
    test::TempDir tmp;
    const fs::path dir = tmp / "old";
    fs::create_directories(dir);
    auto config = read_json_file(g.dir / "config.json");
    json dicts = json::array(), dotted = json::array();
    std::map<std::string, int> seen;
    for (const auto& r : config["representations"]) {
      dicts.push_back(
          {{"layer", r[0]}, {"component", r[1]}, {"unit", r[2]}, {"low_rank_dimension", r[4]}});
      const std::string site =
          "layer." + r[0].dump() + ".comp." + r[1].get<std::string>() + ".unit.pos.nunit.1";
      dotted.push_back(site + "#" + std::to_string(seen[site]++));
    }
    config["representations"] = dicts;
    config["sorted_keys"] = dotted;
    config["intervention_types"] = config["intervention_types"][0];
    config.erase("intervention_dimensions");
    std::ofstream(dir / "config.json") << config.dump();
    const auto keys = g.meta["intervention_keys_in_order"];
    for (size_t i = 0; i < keys.size(); ++i)
      fs::copy_file(g.dir / ("intkey_" + keys[i].get<std::string>() + ".bin"),
                    dir / ("intkey_" + dotted[i].get<std::string>() + ".bin"));
    auto reft = load_pyreft_adapter(*g.model, dir);
    EXPECT_TRUE(logits_match("dotted keys, dict representations", *reft, g));
    // pyreft's default bf16 learned_source: read exactly (bf16 → f32 is exact), kept in f32.
    for (size_t i = 0; i < keys.size(); ++i) {
      const fs::path file = dir / ("intkey_" + dotted[i].get<std::string>() + ".bin");
      auto state = read_torch_state_dict(file);
      for (auto& [name, t] : state)
        if (name == "weight" || name == "bias")
          t = pyreft::to_archive(pyreft::to_torch(t).to(torch::kBFloat16));
      write_torch_state_dict(file, state);
    }
    auto rounded = load_pyreft_adapter(*g.model, dir);
    for (size_t i = 0; i < keys.size(); ++i) {
      auto w = rounded->interventions()[i]->named_parameters()["learned_source.weight"];
      EXPECT_EQ(w.scalar_type(), torch::kFloat32);
      EXPECT_TRUE(torch::equal(w, g.t.at("intervention" + std::to_string(i) + ".weight")
                                      .to(torch::kBFloat16)
                                      .to(torch::kFloat32)));
    }
  }
}

// ---- golden/reft cases as pyreft directories: the default state dicts of every type ----

std::string class_of(const std::string& golden_class) {
  if (golden_class.starts_with("pyvene."))
    return "<class 'pyvene.models.interventions." + golden_class.substr(7) + "'>";
  return "<class 'pyreft.interventions." + golden_class + "'>";
}

TEST(PyreftGolden, EveryReftCaseLoadsFromItsStateDictAndExportsItBack) {
  REFT_REQUIRE_SHARED("golden/reft");
  int cases = 0;
  for (const auto& f : test::files_with_suffix(test::shared_dir() / "golden" / "reft", ".json")) {
    const auto meta = read_json_file(f);
    if (!meta.contains("state_dict_keys")) continue;
    const fs::path model_dir = test::shared_dir() / "models" / meta["model"].get<std::string>();
    if (!test::architecture_supported(model_dir)) continue;
    SCOPED_TRACE(f.filename().string());
    auto st = f;
    const auto t = load_safetensors(st.replace_extension(".safetensors"));
    auto model = load_model(model_dir);
    test::TempDir tmp;
    const fs::path dir = tmp / "pyreft";
    fs::create_directories(dir);
    const std::string key = meta["intervention_key"];
    TensorDict state;
    for (const auto& name : meta["state_dict_keys"])
      state.emplace_back(name, pyreft::to_archive(t.at(name)));
    write_torch_state_dict(dir / ("intkey_" + key + ".bin"), state);
    json rep = json::array({meta["layer"], meta["component"], "pos", 1, meta["rank"]});
    for (int k = 0; k < 9; ++k) rep.push_back(nullptr);
    const json config = {{"representations", json::array({rep})},
                         {"intervention_types", {class_of(meta["intervention_class"])}},
                         {"mode", "parallel"},
                         {"sorted_keys", {key}}};
    std::ofstream(dir / "config.json") << config.dump(2);

    ReftBatch batch;
    batch.input_ids = t.at("input_ids");
    batch.attention_mask = t.at("attention_mask");
    batch.locations = {t.at("positions")};
    if (t.count("source_input_ids")) {
      batch.source_input_ids = t.at("source_input_ids");
      batch.source_attention_mask = t.at("source_attention_mask");
      batch.source_locations = {t.at("source_positions")};
    }
    for (auto mode : kModes) {
      auto reft = load_pyreft_adapter(*model, dir, {.orthogonal = mode});
      torch::NoGradGuard no_grad;
      EXPECT_TRUE(tensors_close(f.stem().string() + " " + mode_name(mode),
                                reft->forward(batch).logits, t.at("logits"), 1e-4, 0,
                                batch.attention_mask.unsqueeze(-1)));
      // Export: pyreft's names in pyreft's order; with pyreft's parametrization, the same tensors.
      const auto warnings = write_pyreft_adapter(*reft, tmp / "out");
      const auto exported = read_torch_state_dict(tmp / "out" / ("intkey_" + key + ".bin"));
      ASSERT_EQ(exported.size(), state.size());
      for (size_t k = 0; k < state.size(); ++k) {
        EXPECT_EQ(exported[k].first, state[k].first);
        const auto a = pyreft::to_torch(exported[k].second), e = t.at(state[k].first);
        if (mode == OrthogonalMode::kPyreft) {
          EXPECT_TRUE(torch::equal(a, e)) << state[k].first;
        }
      }
      if (mode == OrthogonalMode::kLean) {
        // A lean R goes out as an orthogonal completion with original = −I: R = base[:, :r].
        std::map<std::string, torch::Tensor> m;
        for (const auto& [name, v] : exported) m[name] = pyreft::to_torch(v);
        if (m.count(std::string(pyreft::kBase))) {
          const auto base = m[std::string(pyreft::kBase)];
          const auto R = reft->interventions()[0]->rotation().detach();
          EXPECT_TRUE(torch::equal(base.narrow(1, 0, R.size(1)), R));
          EXPECT_LT(pyreft::orthonormality_error(base), 1e-5);
          EXPECT_TRUE(
              torch::equal(m[std::string(pyreft::kOriginal)], -torch::eye(R.size(0), R.size(1))));
        }
      }
    }
    ++cases;
  }
  EXPECT_GE(cases, 7);
}

// ---- export of every intervention type on a small random model ----

struct Tiny {
  test::TempDir tmp;
  std::unique_ptr<Model> model;
  Tiny() {
    test::write_tiny_model(tmp / "model");
    model = load_model(tmp / "model");
  }
};

ReftBatch random_batch(int64_t vocab) {
  torch::manual_seed(7);
  ReftBatch b;
  b.input_ids = torch::randint(3, vocab, {2, 7}, torch::kInt64);
  b.attention_mask = torch::ones({2, 7}, torch::kInt64);
  b.attention_mask[1].narrow(0, 5, 2).fill_(0);
  b.prompt_lengths = {6, 4};
  b.source_input_ids = torch::randint(3, vocab, {2, 7}, torch::kInt64);
  b.source_attention_mask = torch::ones({2, 7}, torch::kInt64);
  return b;
}

// Moves every parameter away from its initialisation, as training would (for `original` only
// below the diagonal, where its gradient lives).
void perturb(ReftModel& reft) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  for (auto& [name, p] : reft.named_parameters()) {
    auto noise = torch::randn_like(p) * 0.3;
    if (name.ends_with("original")) noise = noise.tril(-1);
    p.add_(noise);
  }
}

TEST(PyreftExport, EveryInterventionTypeRoundTripsWithIdenticalLogits) {
  Tiny tiny;
  const auto batch = random_batch(tiny.model->info().vocab_size);
  for (auto type : test::kAllInterventionTypes)
    for (auto mode : kModes) {
      SCOPED_TRACE(std::string(intervention_type_name(type)) + " " + mode_name(mode));
      InterventionOptions o{.type = type, .low_rank_dimension = 4, .orthogonal = mode};
      if (type == InterventionType::kLoReFT) o.act_fn = "relu";  // recovered from reft_config
      if (type == InterventionType::kNoReFT)
        o.add_bias = false;  // pyreft writes no proj_layer.bias
      if (type == InterventionType::kVanilla) o.interchange_dim = 5;  // intervention_dimensions
      ReftModel reft(*tiny.model,
                     ReftConfig::build({0, 2}, Component::kBlockOutput, o, "f1+l1", false), 3);
      perturb(reft);
      torch::NoGradGuard no_grad;
      const auto expected = reft.forward(batch).logits;
      test::TempDir dir;
      write_pyreft_adapter(reft, dir / "p");
      const auto config = read_json_file(dir / "p" / "config.json");
      ASSERT_EQ(config["representations"].size(), 4u);
      EXPECT_EQ(config["representations"][0],
                json({0, "block_output", "pos", 1, 4, nullptr, nullptr, nullptr, nullptr, nullptr,
                      nullptr, nullptr, nullptr, nullptr}));
      EXPECT_EQ(config["intervention_types"][0], pyreft::class_string(type));
      EXPECT_EQ(config["sorted_keys"], json(reft.keys()));
      EXPECT_EQ(fs::exists(dir / "p" / ("intkey_" + reft.keys()[3] + ".bin")),
                !pyreft::is_stateless(type));
      auto back = load_pyreft_adapter(*tiny.model, dir / "p");
      EXPECT_EQ(back->config().to_json(), reft.config().to_json());
      EXPECT_TRUE(tensors_close("logits", back->forward(batch).logits, expected, 1e-5));
      // The other mode reads the same files to the same function.
      const auto other =
          mode == OrthogonalMode::kLean ? OrthogonalMode::kPyreft : OrthogonalMode::kLean;
      auto crossed = load_pyreft_adapter(*tiny.model, dir / "p", {.orthogonal = other});
      EXPECT_TRUE(
          tensors_close("logits, other mode", crossed->forward(batch).logits, expected, 1e-5));
      // Without the reft_config record, the same layout, types and tensors come back from
      // pyreft's fields alone (positions by default: f1+l1 untied for this doubled layout).
      auto bare = config;
      bare.erase("reft_config");
      std::ofstream(dir / "p" / "config.json") << bare.dump();
      auto plain = load_pyreft_adapter(*tiny.model, dir / "p", {.orthogonal = mode});
      EXPECT_EQ(plain->config().positions, "f1+l1");
      if (type != InterventionType::kLoReFT) {  // act_fn is what pyreft cannot record
        EXPECT_TRUE(tensors_close("logits from pyreft's fields", plain->forward(batch).logits,
                                  expected, 1e-5));
      }
    }
}

// The eight types without a pyvene golden, checked against pyvene 0.1.7's own definitions
// (pyvene/models/interventions.py, written out here rather than taken from reft's tables):
// str(type(intervention)) for config.json, and intervention.state_dict() in its order (own
// parameters, then own buffers: embed_dim and interchange_dim from Intervention.__init__, then
// children; torch's orthogonal() adds `original` and the buffer `0.base`). pyvene saves
// intkey_<key>.bin only for a TrainableIntervention or one with a source_representation.
TEST(PyreftExport, UngoldenedTypesMatchPyvenesDefinitions) {
  const std::string rotation = "rotate_layer.parametrizations.weight.";
  struct Expected {
    InterventionType type;
    std::string cls;
    std::vector<std::string> keys;  // empty: no state file
  };
  const std::vector<Expected> cases = {
      {InterventionType::kVanilla, "VanillaIntervention", {}},
      {InterventionType::kAddition, "AdditionIntervention", {}},
      {InterventionType::kSubtraction, "SubtractionIntervention", {}},
      {InterventionType::kZero, "ZeroIntervention", {}},
      {InterventionType::kCollect, "CollectIntervention", {}},
      {InterventionType::kRotated,
       "RotatedSpaceIntervention",
       {"embed_dim", "interchange_dim", rotation + "original", rotation + "0.base"}},
      {InterventionType::kBoundlessRotated,
       "BoundlessRotatedSpaceIntervention",
       {"intervention_boundaries", "temperature", "intervention_population", "embed_dim",
        "interchange_dim", rotation + "original", rotation + "0.base"}},
      {InterventionType::kSigmoidMask,
       "SigmoidMaskIntervention",
       {"mask", "temperature", "embed_dim", "interchange_dim"}},
  };
  Tiny tiny;
  const int64_t D = tiny.model->info().hidden_size;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.cls);
    InterventionOptions o{.type = c.type, .low_rank_dimension = 4};
    if (c.type == InterventionType::kVanilla) o.interchange_dim = 5;
    ReftModel reft(*tiny.model, ReftConfig::build({1}, Component::kBlockOutput, o, "l1", false), 3);
    test::TempDir dir;
    write_pyreft_adapter(reft, dir / "p");
    const auto config = read_json_file(dir / "p" / "config.json");
    EXPECT_EQ(config["intervention_types"][0],
              "<class 'pyvene.models.interventions." + c.cls + "'>");
    const fs::path bin = dir / "p" / ("intkey_" + reft.keys()[0] + ".bin");
    ASSERT_EQ(fs::exists(bin), !c.keys.empty());
    if (c.keys.empty()) continue;
    const auto state = read_torch_state_dict(bin);
    std::vector<std::string> names;
    for (const auto& [name, v] : state) names.push_back(name);
    EXPECT_EQ(names, c.keys);
    std::map<std::string, torch::Tensor> t;
    for (const auto& [name, v] : state) t[name] = pyreft::to_torch(v);
    // Shapes and values pyvene's constructor gives.
    EXPECT_EQ(t["embed_dim"].item<int64_t>(), D);
    EXPECT_EQ(t["embed_dim"].dim(), 0);
    if (t.count(rotation + "original")) {
      EXPECT_EQ(t[rotation + "original"].sizes(), (std::vector<int64_t>{D, D}));  // RotateLayer
    }
    if (c.type == InterventionType::kBoundlessRotated) {
      EXPECT_EQ(t["intervention_boundaries"].sizes(), (std::vector<int64_t>{1}));
      EXPECT_EQ(t["temperature"].dim(), 0);
      EXPECT_TRUE(torch::equal(t["intervention_population"], torch::arange(D)));
    }
    if (c.type == InterventionType::kSigmoidMask) {
      EXPECT_EQ(t["mask"].sizes(), (std::vector<int64_t>{D}));
      EXPECT_EQ(t["temperature"].dim(), 0);
    }
  }
}

TEST(PyreftExport, ConversionWithoutModelWritesTheSameFiles) {
  Tiny tiny;
  InterventionOptions o{.type = InterventionType::kDiReFT, .low_rank_dimension = 3};
  ReftModel reft(*tiny.model, ReftConfig::build({1}, Component::kBlockOutput, o, "l1", false), 5);
  perturb(reft);
  test::TempDir dir;
  write_pyreft_adapter(reft, dir / "direct");
  save_adapter(reft, dir / "reft");
  EXPECT_TRUE(convert_reft_to_pyreft(dir / "reft", dir / "converted").empty());
  for (const auto& name :
       {"config.json", "intkey_layer_1_comp_block_output_unit_pos_nunit_1#0.bin"})
    EXPECT_EQ(read_file(dir / "direct" / name), read_file(dir / "converted" / name)) << name;
  EXPECT_FALSE(is_pyreft_adapter(dir / "reft"));
  EXPECT_FALSE(is_pyreft_adapter(tiny.tmp / "model"));
  // load_adapter_auto takes both kinds; a reft adapter keeps its own positions.
  auto a = load_adapter_auto(*tiny.model, dir / "converted", {.positions = "l1"});
  auto b = load_adapter_auto(*tiny.model, dir / "reft");
  EXPECT_EQ(a.reft->config().to_json(), b.reft->config().to_json());
  EXPECT_THROW(load_adapter_auto(*tiny.model, dir / "reft", {.positions = "f1+l1"}), UsageError);
  const auto warnings = write_pyreft_adapter(
      ReftModel(*tiny.model, ReftConfig::build({1}, Component::kBlockOutput,
                                               {.type = InterventionType::kNoReFT}, "l1", false)),
      dir / "noreft");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("add_bias"), std::string::npos);
}

// ---- malformed input ----

// Runs `f` and checks that it throws reft::Error whose one-line message contains every fragment.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "expected a reft::Error mentioning " << *fragments.begin();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    for (const auto& s : fragments)
      EXPECT_NE(m.find(s), std::string::npos) << "'" << s << "' not in: " << m;
  }
}

TEST(PyreftErrors, MalformedDirectoriesNameTheFile) {
  Tiny tiny;
  InterventionOptions o{.type = InterventionType::kLoReFT, .low_rank_dimension = 4};
  ReftModel reft(*tiny.model, ReftConfig::build({1}, Component::kBlockOutput, o, "l1", false), 1);
  test::TempDir tmp;
  const fs::path good = tmp / "good";
  write_pyreft_adapter(reft, good);
  const std::string key = reft.keys()[0];
  const auto config = read_json_file(good / "config.json");
  int n = 0;
  // A copy of the good directory with config.json replaced (or removed when null).
  const auto variant = [&](const json& c) {
    const fs::path dir = tmp / ("v" + std::to_string(n++));
    fs::copy(good, dir);
    if (c.is_null())
      fs::remove(dir / "config.json");
    else
      std::ofstream(dir / "config.json") << c.dump();
    return dir;
  };
  const auto load = [&](const fs::path& dir) {
    return [&tiny, dir] { load_pyreft_adapter(*tiny.model, dir); };
  };

  expect_error(load(tmp / "absent"), {"absent", "not found"});
  expect_error(load(variant(nullptr)), {"config.json", "not found"});
  {
    const auto dir = variant(json::object());
    std::ofstream(dir / "config.json") << "{\"representations\": [";
    expect_error(load(dir), {"config.json"});
  }
  expect_error(load(variant(json::array())), {"config.json", "IntervenableConfig"});
  expect_error(load(variant({{"architectures", {"LlamaForCausalLM"}}})),
               {"config.json", "representations"});
  auto c = config;
  c["representations"][0][1] = "model.layers[1].output";
  expect_error(load(variant(c)), {"config.json", "representations[0]", "module path"});
  c = config;
  c["representations"][0][2] = "h.pos";
  expect_error(load(variant(c)), {"config.json", "unit"});
  c = config;
  c["representations"][0][8] = "group";
  expect_error(load(variant(c)), {"config.json", "group_key"});
  c = config;
  c["intervention_types"][0] = "<class 'pyvene.models.interventions.PCARotatedSpaceIntervention'>";
  expect_error(load(variant(c)),
               {"config.json", "intervention_types[0]", "PCARotatedSpaceIntervention"});
  c = config;
  c["intervention_types"] = json::array();
  expect_error(load(variant(c)), {"config.json", "intervention_types"});
  c = config;
  c["sorted_keys"][0] = "layer_7_comp_block_output_unit_pos_nunit_1#0";
  expect_error(load(variant(c)), {"config.json", "sorted_keys[0]"});
  c = config;
  c["mode"] = "serial";
  expect_error(load(variant(c)), {"config.json", "parallel"});
  c = config;
  c.erase("reft_config");
  c.erase("sorted_keys");
  c["representations"][0][0] = 9;
  {
    const auto dir = variant(c);
    fs::rename(dir / ("intkey_" + key + ".bin"),
               dir / "intkey_layer_9_comp_block_output_unit_pos_nunit_1#0.bin");
    expect_error(load(dir), {"config.json", "layer 9", "out of range"});
  }
  c["representations"][0][0] = 1;
  c["representations"][0][4] = 8;
  expect_error(load(variant(c)), {"intkey_" + key + ".bin", "rank 8"});
  {
    const auto dir = variant(config);
    fs::remove(dir / ("intkey_" + key + ".bin"));
    expect_error(load(dir), {"intkey_" + key + ".bin", "no such file"});
  }
  {
    const auto dir = variant(config);
    std::ofstream(dir / ("intkey_" + key + ".bin")) << "not a zip";
    expect_error(load(dir), {"intkey_" + key + ".bin"});
  }
  // State dicts with a missing, unexpected, misshapen or degenerate tensor.
  const auto with_state = [&](TensorDict state) {
    const auto dir = variant(config);
    write_torch_state_dict(dir / ("intkey_" + key + ".bin"), state);
    return dir;
  };
  const auto state = read_torch_state_dict(good / ("intkey_" + key + ".bin"));
  expect_error(load(with_state({state[0], state[2]})), {"intkey_" + key + ".bin", "'bias'"});
  auto extra = state;
  extra.emplace_back("scale", pyreft::to_archive(torch::ones({1})));
  expect_error(load(with_state(extra)), {"intkey_" + key + ".bin", "'scale'"});
  auto zeroed = state;
  auto R = pyreft::to_torch(zeroed[2].second);
  R.select(1, 2).zero_();
  zeroed[2].second = pyreft::to_archive(R);
  expect_error(load(with_state(zeroed)), {"intkey_" + key + ".bin", "orthonormal", "int(diag"});
  // Another model's adapter: hidden size 64 onto a hidden-size-32 model.
  test::write_tiny_model(tmp / "wide", {{"hidden_size", 64}});
  auto wide = load_model(tmp / "wide");
  ReftModel wide_reft(*wide, ReftConfig::build({1}, Component::kBlockOutput, o, "l1", false), 1);
  write_pyreft_adapter(wide_reft, tmp / "wide_adapter");
  expect_error([&] { load_pyreft_adapter(*tiny.model, tmp / "wide_adapter"); },
               {"intkey_" + key + ".bin", "hidden size 32", "64"});
}

// ---- the CLI: reft convert ----

// Runs the reft binary with `args`; returns the exit status and stderr.
std::pair<int, std::string> run_cli(const std::string& args, const fs::path& tmp) {
  const fs::path err = tmp / "stderr.txt";
  const int status = std::system(
      ("'" + std::string(REFT_CLI) + "' " + args + " 2>'" + err.string() + "'").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(err)};
}

TEST(PyreftCli, ConvertBothWays) {
  REFT_REQUIRE_SHARED("golden/pyreft/stories260K-loreft-l1l3-f1l1-untied");
  if (std::string(REFT_CLI).empty() || !fs::exists(REFT_CLI))
    GTEST_SKIP() << "reft binary not built";
  test::TempDir tmp;
  const std::string in = shared_path.string(),
                    model = (test::shared_dir() / "models" / "stories260K").string();
  const auto q = [](const fs::path& p) { return "'" + p.string() + "'"; };
  auto [status, err] = run_cli("convert --from pyreft " + q(in) + " --model " + q(model) +
                                   " --out " + q(tmp / "reft") + " --orthogonal pyreft --threads 1",
                               tmp.path());
  EXPECT_EQ(status, 0) << err;
  EXPECT_NE(err.find("positions f1+l1"), std::string::npos) << err;
  std::tie(status, err) =
      run_cli("convert --to pyreft " + q(tmp / "reft") + " --out " + q(tmp / "py"), tmp.path());
  EXPECT_EQ(status, 0) << err;
  for (const auto& key : read_pyreft_adapter(in).keys) {
    const std::string name = "intkey_" + key + ".bin";
    const auto a = read_torch_state_dict(tmp / "py" / name),
               e = read_torch_state_dict(fs::path(in) / name);
    ASSERT_EQ(a.size(), e.size()) << name;
    for (size_t k = 0; k < e.size(); ++k)
      EXPECT_TRUE(torch::equal(pyreft::to_torch(a[k].second), pyreft::to_torch(e[k].second)))
          << name;
  }
  std::tie(status, err) =
      run_cli("convert --from pyreft " + q(in) + " --out " + q(tmp / "x"), tmp.path());
  EXPECT_EQ(status, 2);
  EXPECT_NE(err.find("--model"), std::string::npos) << err;
  std::tie(status, err) =
      run_cli("convert --to pyreft " + q(tmp / "absent") + " --out " + q(tmp / "y"), tmp.path());
  EXPECT_EQ(status, 1);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("absent"), std::string::npos) << err;
}

}  // namespace
}  // namespace reft
