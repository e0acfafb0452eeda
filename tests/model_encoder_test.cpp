// BERT / RoBERTa encoders (padding invariance, token types, RoBERTa positions, heads, checkpoint
// layouts), the site probe over every architecture, config errors, and the vocab-file tokenizers
// these families ship (vocab.txt, vocab.json + merges.txt).

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "cli_util.h"
#include "reft/error.h"
#include "reft/model.h"
#include "reft/safetensors.h"
#include "reft/tokenizer.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using test::tensors_close;

constexpr int64_t kVocab = 64;

nlohmann::json encoder_config(const std::string& arch, const nlohmann::json& overrides = {}) {
  const bool roberta = arch.rfind("Roberta", 0) == 0;
  nlohmann::json c = {{"architectures", {arch}},
                      {"model_type", roberta ? "roberta" : "bert"},
                      {"hidden_size", 32},
                      {"num_hidden_layers", 3},
                      {"num_attention_heads", 4},
                      {"intermediate_size", 48},
                      {"hidden_act", "gelu"},
                      {"vocab_size", kVocab},
                      {"max_position_embeddings", roberta ? 42 : 40},
                      {"type_vocab_size", 2},
                      {"layer_norm_eps", 1e-12},
                      {"initializer_range", 0.2},
                      {"pad_token_id", roberta ? 1 : 0},
                      {"position_embedding_type", "absolute"}};
  if (arch.find("SequenceClassification") != std::string::npos)
    c["id2label"] = {{"0", "NEG"}, {"1", "NEU"}, {"2", "POS"}};
  if (overrides.is_object()) c.update(overrides);
  return c;
}

nlohmann::json gpt2_config() {
  return {{"architectures", {"GPT2LMHeadModel"}},
          {"model_type", "gpt2"},
          {"n_embd", 32},
          {"n_layer", 3},
          {"n_head", 4},
          {"n_positions", 32},
          {"vocab_size", kVocab},
          {"activation_function", "gelu_new"},
          {"initializer_range", 0.2}};
}

nlohmann::json llama_family_config(const std::string& arch, const std::string& type) {
  return {{"architectures", {arch}},  {"model_type", type},     {"hidden_size", 32},
          {"intermediate_size", 48},  {"num_hidden_layers", 3}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"vocab_size", kVocab},   {"rms_norm_eps", 1e-6},
          {"initializer_range", 0.2}};
}

std::unique_ptr<Model> random_model(const TempDir& tmp, const nlohmann::json& config,
                                    uint64_t seed = 7) {
  write_random_model(tmp.path(), config, seed);
  return load_model(tmp.path());
}

ForwardOutput run(Model& model, const torch::Tensor& ids, const torch::Tensor& mask = {},
                  const torch::Tensor& types = {}) {
  torch::NoGradGuard g;
  ForwardInput in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.token_type_ids = types;
  in.output_hidden_states = true;
  return model.forward(in);
}

// ---- encoders ----

struct Arch {
  std::string name;
  ModelKind kind;
};

class Encoders : public ::testing::TestWithParam<Arch> {};

TEST_P(Encoders, LoadsTotallyWithHfNamesAndFrozenWeights) {
  TempDir tmp;
  auto model = random_model(tmp, encoder_config(GetParam().name));
  const auto& info = model->info();
  EXPECT_FALSE(info.causal);
  EXPECT_EQ(info.kind, GetParam().kind);
  EXPECT_EQ(info.num_labels, info.kind == ModelKind::kSequenceClassification ? 3 : 0);
  auto file = SafetensorsFile::open(tmp / "model.safetensors");
  EXPECT_EQ(model->parameters().size(), file->entries().size());
  for (const auto& [name, t] : model->parameters()) {
    EXPECT_FALSE(t.requires_grad()) << name;
    ASSERT_TRUE(file->contains(name)) << name;
    EXPECT_TRUE(t.equal(file->tensor(name))) << name;
  }
  EXPECT_THROW(model->new_cache(1, 8), Error);
  KVCache cache;
  ForwardInput in;
  in.input_ids = torch::randint(4, kVocab, {1, 4}, torch::kInt64);
  in.cache = &cache;
  EXPECT_THROW(model->forward(in), Error);
}

// A padded row equals the row run alone, at its real positions: right padding for both (BERT
// positions are arange), left padding too for RoBERTa (its positions skip pad ids).
TEST_P(Encoders, PaddedRowsEqualRowsAlone) {
  TempDir tmp;
  auto model = random_model(tmp, encoder_config(GetParam().name));
  const bool roberta = GetParam().name.rfind("Roberta", 0) == 0;
  const int64_t pad = roberta ? 1 : 0, T = 8;
  const std::vector<int64_t> lengths = {8, 5, 2};
  std::vector<torch::Tensor> seqs;
  for (int64_t n : lengths) seqs.push_back(torch::randint(4, kVocab, {n}, torch::kInt64));
  for (const bool left : roberta ? std::vector<bool>{false, true} : std::vector<bool>{false}) {
    auto ids = torch::full({3, T}, pad, torch::kInt64);
    auto mask = torch::zeros({3, T}, torch::kInt64);
    for (int b = 0; b < 3; ++b) {
      const int64_t n = lengths[b], start = left ? T - n : 0;
      ids[b].narrow(0, start, n).copy_(seqs[b]);
      mask[b].narrow(0, start, n).fill_(1);
    }
    auto batched = run(*model, ids, mask);
    for (int b = 0; b < 3; ++b) {
      const int64_t n = lengths[b], start = left ? T - n : 0;
      auto alone = run(*model, seqs[b].unsqueeze(0));
      const std::string what = std::string(left ? "left" : "right") + " row " + std::to_string(b);
      EXPECT_TRUE(tensors_close(what + " hidden", batched.last_hidden[b].narrow(0, start, n),
                                alone.last_hidden[0], 2e-5));
      if (GetParam().kind == ModelKind::kMaskedLM) {
        EXPECT_TRUE(tensors_close(what + " logits", batched.logits[b].narrow(0, start, n),
                                  alone.logits[0], 2e-5));
      }
      if (GetParam().kind == ModelKind::kSequenceClassification && !left) {
        EXPECT_TRUE(tensors_close(what + " logits", batched.logits[b], alone.logits[0], 2e-5));
      }
    }
  }
}

TEST_P(Encoders, TokenTypesDefaultToZerosAndMatter) {
  TempDir tmp;
  auto model = random_model(tmp, encoder_config(GetParam().name));
  auto ids = torch::randint(4, kVocab, {2, 6}, torch::kInt64);
  auto plain = run(*model, ids);
  auto zeros = run(*model, ids, {}, torch::zeros({2, 6}, torch::kInt64));
  EXPECT_TRUE(tensors_close("explicit zeros", zeros.last_hidden, plain.last_hidden, 0));
  auto types = torch::zeros({2, 6}, torch::kInt64);
  types.narrow(1, 3, 3).fill_(1);
  auto pair = run(*model, ids, {}, types);
  EXPECT_GT((pair.last_hidden - plain.last_hidden).abs().max().item<double>(), 1e-3);
  EXPECT_THROW(run(*model, ids, {}, torch::full({2, 6}, 2, torch::kInt64)), Error);
}

TEST_P(Encoders, HeadsPooledAndResume) {
  TempDir tmp;
  auto model = random_model(tmp, encoder_config(GetParam().name));
  auto ids = torch::randint(4, kVocab, {2, 6}, torch::kInt64);
  auto full = run(*model, ids);
  const int64_t L = model->info().num_layers;
  ASSERT_EQ(full.hidden_states.size(), static_cast<size_t>(L + 1));
  EXPECT_TRUE(tensors_close("hidden.L is the raw last layer", full.hidden_states.back(),
                            full.last_block, 0));
  EXPECT_TRUE(tensors_close("pooled", full.pooled, full.last_hidden.select(1, 0), 0));
  torch::NoGradGuard g;
  switch (GetParam().kind) {
    case ModelKind::kSequenceClassification:
      EXPECT_EQ(full.logits.sizes(), (std::vector<int64_t>{2, 3}));
      EXPECT_TRUE(tensors_close("classify", model->classify(full.pooled), full.logits, 0));
      EXPECT_THROW(model->logits_from_hidden(full.last_hidden), Error);
      break;
    case ModelKind::kMaskedLM: {
      EXPECT_EQ(full.logits.sizes(), (std::vector<int64_t>{2, 6, kVocab}));
      EXPECT_TRUE(tensors_close("logits_from_hidden", model->logits_from_hidden(full.last_hidden),
                                full.logits, 1e-6));
      EXPECT_THROW(model->classify(full.pooled), Error);
      ForwardInput in;
      in.input_ids = ids;
      in.logits = LogitsMode::kSelected;
      in.logits_index = torch::tensor({1, 6 + 4}, torch::kInt64);
      EXPECT_TRUE(tensors_close("kSelected", model->forward(in).logits,
                                torch::stack({full.logits[0][1], full.logits[1][4]}), 1e-6));
      break;
    }
    default: {
      EXPECT_FALSE(full.logits.defined());
      EXPECT_THROW(model->classify(full.pooled), Error);
      ForwardInput in;
      in.input_ids = ids;
      in.logits = LogitsMode::kLast;
      EXPECT_THROW(model->forward(in), Error);
    }
  }
  ForwardInput head;
  head.input_ids = ids;
  head.stop_layer = 1;
  auto partial = model->forward(head);
  EXPECT_FALSE(partial.logits.defined());
  EXPECT_TRUE(tensors_close("stop_layer", partial.last_block, full.hidden_states[1], 0));
  ForwardInput tail;
  tail.input_ids = ids;
  tail.start_layer = 1;
  tail.start_hidden = partial.last_block;
  EXPECT_TRUE(tensors_close("resume", model->forward(tail).last_hidden, full.last_hidden, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(
    All, Encoders,
    ::testing::Values(Arch{"BertModel", ModelKind::kEncoder},
                      Arch{"BertForMaskedLM", ModelKind::kMaskedLM},
                      Arch{"BertForSequenceClassification", ModelKind::kSequenceClassification},
                      Arch{"RobertaModel", ModelKind::kEncoder},
                      Arch{"RobertaForMaskedLM", ModelKind::kMaskedLM},
                      Arch{"RobertaForSequenceClassification", ModelKind::kSequenceClassification}),
    [](const auto& info) { return info.param.name; });

// RoBERTa: real tokens sit at padding_idx + 1, + 2, …; pads at padding_idx (from the ids, as HF
// create_position_ids_from_input_ids). BERT: arange.
TEST(EncoderPositions, DefaultsEqualHfPositionIds) {
  TempDir tmp;
  auto roberta = random_model(tmp, encoder_config("RobertaModel"));
  auto ids = torch::tensor({{0, 9, 10, 2, 1, 1}, {0, 11, 1, 12, 2, 1}}, torch::kInt64);
  auto mask = ids.ne(1).to(torch::kInt64);
  torch::NoGradGuard g;
  ForwardInput in;
  in.input_ids = ids;
  in.attention_mask = mask;
  auto implicit = roberta->forward(in).last_hidden;
  in.position_ids = torch::tensor({{2, 3, 4, 5, 1, 1}, {2, 3, 1, 4, 5, 1}}, torch::kInt64);
  EXPECT_TRUE(tensors_close("roberta positions", implicit, roberta->forward(in).last_hidden, 0));

  TempDir tmp2;
  auto bert = random_model(tmp2, encoder_config("BertModel"));
  ForwardInput b;
  b.input_ids = ids;
  auto arange = bert->forward(b).last_hidden;
  b.position_ids = torch::arange(6, torch::kInt64).unsqueeze(0).expand({2, 6});
  EXPECT_TRUE(tensors_close("bert positions", arange, bert->forward(b).last_hidden, 0));
  b.position_ids = torch::Tensor();
  b.input_ids = torch::randint(4, kVocab, {1, 41}, torch::kInt64);
  EXPECT_THROW(bert->forward(b), Error);
}

// Checkpoints as the hub stores them: bare models with or without the "bert." prefix;
// bert-base-* style MLM files with a pooler, the NSP head and the tied decoder copies.
TEST(EncoderLoading, PrefixesAndHubExtras) {
  TempDir tmp;
  auto bare = random_model(tmp, encoder_config("BertModel"), 8);
  auto file = load_safetensors(tmp / "model.safetensors");
  ASSERT_TRUE(file.count("embeddings.word_embeddings.weight"));
  ASSERT_TRUE(file.count("pooler.dense.weight"));
  auto ids = torch::randint(4, kVocab, {2, 5}, torch::kInt64);
  auto ref = run(*bare, ids).last_hidden;

  std::vector<std::pair<std::string, torch::Tensor>> prefixed;
  for (const auto& [name, t] : file) prefixed.emplace_back("bert." + name, t);
  save_safetensors(tmp / "model.safetensors", prefixed, {{"format", "pt"}});
  EXPECT_TRUE(tensors_close("bert. prefix", run(*load_model(tmp.path()), ids).last_hidden, ref, 0));

  TempDir mlm_dir;
  random_model(mlm_dir, encoder_config("BertForMaskedLM"), 9);
  auto mlm = load_model(mlm_dir.path());
  auto expected = run(*mlm, ids).logits;
  auto tensors = load_safetensors(mlm_dir / "model.safetensors");
  tensors["bert.pooler.dense.weight"] = torch::randn({32, 32});
  tensors["bert.pooler.dense.bias"] = torch::randn({32});
  tensors["cls.seq_relationship.weight"] = torch::randn({2, 32});
  tensors["cls.seq_relationship.bias"] = torch::randn({2});
  tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"];
  tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"];
  tensors["bert.embeddings.position_ids"] = torch::arange(40, torch::kInt64).unsqueeze(0);
  save_safetensors(mlm_dir / "model.safetensors", {tensors.begin(), tensors.end()});
  auto hub = load_model(mlm_dir.path());
  EXPECT_TRUE(tensors_close("hub-style MLM", run(*hub, ids).logits, expected, 0));
  EXPECT_EQ(hub->num_parameters(), mlm->num_parameters());
}

// The shared goldens through the encoder-specific API: RoBERTa's head applied to `pooled`
// reproduces the classification logits (forward goldens and the classification golden's
// un-intervened base_logits), BERT's MLM head applied to last_hidden the MLM logits.
TEST(GoldenEncoders, HeadsOnPooledAndHiddenRows) {
  REFT_REQUIRE_SHARED("golden/models");
  const auto models = test::shared_dir() / "models";
  torch::NoGradGuard g;
  for (const std::string name : {"tiny-roberta", "tiny-bert"}) {
    SCOPED_TRACE(name);
    auto model = load_model(models / name);
    auto golden = load_safetensors(shared_path / (name + ".safetensors"));
    for (const std::string c : {"case0.", "case1."}) {
      ForwardInput in;
      in.input_ids = golden.at(c + "input_ids");
      in.attention_mask = golden.at(c + "attention_mask");
      in.logits = LogitsMode::kNone;
      auto out = model->forward(in);
      const auto& expected = golden.at(c + "logits");
      auto got = name == "tiny-roberta" ? model->classify(out.pooled)
                                        : model->logits_from_hidden(out.last_hidden);
      auto mask = expected.dim() == 3 ? in.attention_mask.unsqueeze(-1) : torch::Tensor();
      auto r = tensors_close(name + " " + c + "head", got, expected, 1e-4, 0, mask);
      EXPECT_TRUE(r);
      std::cout << r.message() << "\n";
    }
  }
  const auto cls =
      test::shared_dir() / "golden" / "classification" / "tiny-roberta-loreft.safetensors";
  if (fs::exists(cls)) {
    auto t = load_safetensors(cls);
    auto model = load_model(models / "tiny-roberta");
    ForwardInput in;
    in.input_ids = t.at("input_ids");
    in.attention_mask = t.at("attention_mask");
    auto r = tensors_close("classification base_logits", model->forward(in).logits,
                           t.at("base_logits"), 1e-5);
    EXPECT_TRUE(r);
    std::cout << r.message() << "\n";
  }
}

// ---- every architecture: each site fires exactly once per layer per forward ----

class Probe : public SiteHooks {
 public:
  explicit Probe(int64_t hidden) : hidden_(hidden) {}
  void begin_forward(const ForwardInput&) override { ++begins; }
  bool wants(int, Component) const override { return true; }
  torch::Tensor at_site(int layer, Component c, const torch::Tensor& h) override {
    EXPECT_EQ(h.dim(), 3);
    EXPECT_EQ(h.size(-1), hidden_);
    ++counts[{layer, static_cast<int>(c)}];
    return h;
  }
  int begins = 0;
  std::map<std::pair<int, int>, int> counts;

 private:
  int64_t hidden_;
};

// One small config.json of each supported family.
std::vector<nlohmann::json> every_architecture_config() {
  return {
      llama_family_config("LlamaForCausalLM", "llama"),
      llama_family_config("MistralForCausalLM", "mistral"),
      llama_family_config("Qwen2ForCausalLM", "qwen2"),
      gpt2_config(),
      encoder_config("BertForMaskedLM"),
      encoder_config("RobertaForSequenceClassification"),
  };
}

TEST(Sites, EveryArchitectureFiresEverySiteOncePerLayer) {
  const auto configs = every_architecture_config();
  std::set<std::string> covered;
  for (const auto& config : configs) {
    const std::string arch = config["architectures"][0];
    SCOPED_TRACE(arch);
    TempDir tmp;
    auto model = random_model(tmp, config);
    const int L = static_cast<int>(model->info().num_layers);
    Probe probe(model->info().hidden_size);
    auto ids = torch::randint(4, kVocab, {2, 5}, torch::kInt64);
    torch::NoGradGuard g;
    ForwardInput in;
    in.input_ids = ids;
    auto plain = model->forward(in).logits;
    in.hooks = &probe;
    for (int pass = 1; pass <= 2; ++pass) {
      auto hooked = model->forward(in).logits;
      EXPECT_TRUE(tensors_close("identity hooks", hooked, plain, 0));
      EXPECT_EQ(probe.begins, pass);
      EXPECT_EQ(probe.counts.size(), static_cast<size_t>(L * kNumComponents));
      for (int l = 0; l < L; ++l)
        for (int c = 0; c < kNumComponents; ++c)
          EXPECT_EQ((probe.counts[{l, c}]), pass)
              << "layer " << l << " " << component_name(static_cast<Component>(c));
    }
    covered.insert(arch);
  }
  // Every registered family is probed (the registry's other classes share these files).
  for (const char* family : {"Llama", "Mistral", "Qwen2", "GPT2", "Bert", "Roberta"})
    EXPECT_TRUE(std::any_of(covered.begin(), covered.end(), [&](const std::string& a) {
      return a.rfind(family, 0) == 0;
    })) << family;
}

// ---- every architecture honours the start_layer contract (frozen-prefix caching) ----

// Adds delta · linspace(−1, 1, D) at one site (not a constant, which LayerNorm would erase).
class AddAt : public SiteHooks {
 public:
  AddAt(int layer, Component component, double delta)
      : layer_(layer), component_(component), delta_(delta) {}
  bool wants(int layer, Component c) const override { return layer == layer_ && c == component_; }
  torch::Tensor at_site(int, Component, const torch::Tensor& h) override {
    ++fired;
    return h + delta_ * torch::linspace(-1, 1, h.size(-1), h.options());
  }
  int fired = 0;

 private:
  int layer_;
  Component component_;
  double delta_;
};

// Resuming at layer s from the block input of s (= the block output of s − 1, computed without
// hooks) fires the block_output site of s − 1 on it, then runs layers s … L − 1: the result equals
// the full forward with the same hook. BERT/RoBERTa once skipped that site.
TEST(Sites, EveryArchitectureResumesFromACachedLayer) {
  const auto configs = every_architecture_config();
  for (const auto& config : configs) {
    const std::string arch = config["architectures"][0];
    SCOPED_TRACE(arch);
    TempDir tmp;
    auto model = random_model(tmp, config);
    auto ids = torch::randint(4, kVocab, {2, 5}, torch::kInt64);
    auto mask = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}, torch::kInt64);
    torch::NoGradGuard g;
    constexpr int kStart = 2;
    AddAt full_hook(kStart - 1, Component::kBlockOutput, 0.25);
    ForwardInput full;
    full.input_ids = ids;
    full.attention_mask = mask;
    full.hooks = &full_hook;
    const auto expected = model->forward(full);
    EXPECT_EQ(full_hook.fired, 1);

    ForwardInput head;
    head.input_ids = ids;
    head.attention_mask = mask;
    head.stop_layer = kStart;
    const auto prefix = model->forward(head).last_block;
    AddAt resume_hook(kStart - 1, Component::kBlockOutput, 0.25);
    ForwardInput tail = full;
    tail.hooks = &resume_hook;
    tail.start_layer = kStart;
    tail.start_hidden = prefix;
    const auto resumed = model->forward(tail);
    EXPECT_EQ(resume_hook.fired, 1);
    EXPECT_TRUE(
        tensors_close("resumed last_hidden", resumed.last_hidden, expected.last_hidden, 1e-6));
    EXPECT_TRUE(tensors_close("resumed logits", resumed.logits, expected.logits, 1e-6));
    // The hook really changes the result, so the comparison above can fail.
    head.stop_layer = -1;
    const auto unhooked = model->forward(head).last_hidden;
    EXPECT_GT((unhooked - expected.last_hidden).abs().max().item<double>(), 1e-3);
  }
}

// ---- config errors name config.json and the field, on one line ----

void expect_config_error(const nlohmann::json& config, const std::string& needle) {
  TempDir tmp;
  try {
    write_random_model(tmp.path(), config, 1);
    load_model(tmp.path());
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

nlohmann::json with(nlohmann::json config, const nlohmann::json& overrides) {
  config.update(overrides);
  return config;
}

TEST(ArchitectureConfigErrors, NameConfigJsonAndTheField) {
  const auto gpt2 = gpt2_config();
  expect_config_error(with(gpt2, {{"activation_function", "mish"}}), "activation_function");
  expect_config_error(with(gpt2, {{"n_head", 5}}), "n_head");
  expect_config_error(with(gpt2, {{"n_embd", "wide"}}), "n_embd");
  expect_config_error(with(gpt2, {{"add_cross_attention", true}}), "add_cross_attention");
  auto no_width = gpt2;
  no_width.erase("n_embd");
  expect_config_error(no_width, "n_embd");
  const auto bert = encoder_config("BertForMaskedLM");
  expect_config_error(with(bert, {{"hidden_act", "swiglu"}}), "hidden_act");
  expect_config_error(with(bert, {{"num_attention_heads", 5}}), "num_attention_heads");
  expect_config_error(with(bert, {{"position_embedding_type", "relative_key"}}),
                      "position_embedding_type");
  expect_config_error(with(bert, {{"is_decoder", true}}), "is_decoder");
  expect_config_error(with(encoder_config("RobertaForSequenceClassification"),
                           {{"id2label", nullptr}, {"num_labels", 0}}),
                      "num_labels");
}

// A checkpoint that does not match config.json names the tensor.
TEST(ArchitectureConfigErrors, MismatchedCheckpointNamesTheTensor) {
  TempDir tmp;
  write_random_model(tmp.path(), encoder_config("BertForMaskedLM"), 2);
  auto config = read_json_file(tmp / "config.json");
  config["intermediate_size"] = 40;
  std::ofstream(tmp / "config.json", std::ios::trunc) << config.dump();
  try {
    load_model(tmp.path());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bert.encoder.layer.0.intermediate.dense.weight"),
              std::string::npos)
        << e.what();
  }
}

// ---- the tokenizer files of these families load through Tokenizer::load / `reft tokenize` ----

std::string run_cli(const std::vector<std::string>& args) {
  const auto r = test::reft(args);
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

bool cli_built() { return !std::string(REFT_CLI).empty() && fs::exists(REFT_CLI); }

TEST(VocabFileTokenizers, BertVocabTxt) {
  TempDir tmp;
  std::ofstream(tmp / "vocab.txt")
      << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n,\n!\n";
  auto tok = Tokenizer::load(tmp.path());
  EXPECT_EQ(tok->encode("Hello, worlds!"), (std::vector<int64_t>{2, 5, 8, 6, 7, 9, 3}));
  EXPECT_EQ(tok->encode("hello there", false), (std::vector<int64_t>{5, 1}));
  if (cli_built()) {
    EXPECT_EQ(run_cli({"tokenize", "--model", tmp.path().string(), "--text", "Hello, worlds!"}),
              "[2, 5, 8, 6, 7, 9, 3]\n");
  }
}

TEST(VocabFileTokenizers, Gpt2VocabJsonAndMerges) {
  TempDir tmp;
  // Byte-level symbols: "Ġ" is the space byte.
  std::ofstream(tmp / "vocab.json")
      << R"({"h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "w": 5, "r": 6, "d": 7, "he": 8, "ll": 9,)"
      << R"( "hell": 10, "hello": 11, "Ġw": 12, "or": 13, "Ġwor": 14, "<|endoftext|>": 15})";
  std::ofstream(tmp / "merges.txt") << "#version: 0.2\nh e\nl l\nhe ll\nhell o\nĠ w\no r\nĠw or\n";
  auto tok = Tokenizer::load(tmp.path());
  EXPECT_EQ(tok->encode("hello world", false), (std::vector<int64_t>{11, 14, 2, 7}));
  EXPECT_EQ(tok->decode(std::vector<int64_t>{11, 14, 2, 7}), "hello world");
  if (cli_built()) {
    EXPECT_EQ(run_cli({"tokenize", "--model", tmp.path().string(), "--text", "hello world",
                       "--no-special"}),
              "[11, 14, 2, 7]\n");
  }
}

}  // namespace
}  // namespace reft
