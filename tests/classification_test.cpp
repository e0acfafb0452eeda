// ReFT classification: the pyreft/RoBERTa golden (logits, loss, intervention and head gradients),
// a decoder classifier on stories260K that must reach ≥ 90% held-out accuracy (and not fall behind
// a head-only baseline), the RoBERTa pipeline end to end, metrics and label errors.

#include <torch/torch.h>

#include <random>

#include "reft/classifier.h"
#include "reft/error.h"
#include "reft/optimizer.h"
#include "reft/safetensors.h"
#include "reft/tokenizer.h"
#include "reft/trainer.h"
#include "torch_test_util.h"
#include "util/files.h"

namespace reft {
namespace {

namespace fs = std::filesystem;
using test::TempDir;
using test::tensors_close;

TEST(ClassificationGolden, TinyRobertaLoreft) {
  REFT_REQUIRE_SHARED("golden/classification/tiny-roberta-loreft.json");
  const auto meta = read_json_file(shared_path);
  auto t = load_safetensors(fs::path(shared_path).replace_extension(".safetensors"));
  const fs::path model_dir = test::shared_dir() / "models" / "tiny-roberta";
  if (!test::architecture_supported(model_dir)) GTEST_SKIP() << "RoBERTa is not supported yet";
  auto model = load_model(model_dir);
  InterventionOptions o;
  o.low_rank_dimension = meta["rank"];
  o.orthogonal = OrthogonalMode::kPyreft;
  ReftConfig config;
  config.positions = "f1";
  for (int64_t layer : meta["layers"].get<std::vector<int64_t>>())
    config.representations.push_back({layer, Component::kBlockOutput, o, PositionPart::kAll});
  ReftModel reft(*model, config, 0);
  LabelSpace labels;
  labels.names = {"0", "1", "2"};
  ReftClassifier classifier(reft, labels);
  ASSERT_TRUE(classifier.head_from_checkpoint());
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < reft.interventions().size(); ++i) {
      const std::string p = "iv" + std::to_string(i) + ".";
      for (auto& x : reft.interventions()[i]->named_parameters())
        x.value().copy_(t.at(p + "param." + x.key()));
      for (auto& x : reft.interventions()[i]->named_buffers())
        if (t.count(p + "buffer." + x.key())) x.value().copy_(t.at(p + "buffer." + x.key()));
    }
  }
  ReftBatch batch;
  batch.input_ids = t.at("input_ids");
  batch.attention_mask = t.at("attention_mask");
  auto positions = t.at("positions");  // (interventions, B, n)
  for (int64_t i = 0; i < positions.size(0); ++i) batch.locations.push_back(positions[i]);
  auto logits = classifier.logits(batch);
  EXPECT_TRUE(tensors_close("logits", logits, t.at("logits"), 1e-5));
  auto loss = classifier.loss(logits, t.at("labels"));
  EXPECT_NEAR(loss.item<double>(), t.at("loss").item<double>(), 1e-5);
  loss.backward();
  for (size_t i = 0; i < reft.interventions().size(); ++i)
    for (auto& x : reft.interventions()[i]->named_parameters()) {
      const std::string key = "iv" + std::to_string(i) + ".grad." + x.key();
      EXPECT_TRUE(tensors_close(key, x.value().grad(), t.at(key), 1e-5, 1e-3));
    }
  const std::map<std::string, std::string> head_names = {
      {"head.dense.weight", "classifier.dense.weight"},
      {"head.dense.bias", "classifier.dense.bias"},
      {"head.out_proj.weight", "classifier.out_proj.weight"},
      {"head.out_proj.bias", "classifier.out_proj.bias"}};
  for (auto& [name, p] : classifier.head_parameters()) {
    const std::string golden = head_names.at(name);
    EXPECT_TRUE(tensors_close(name, p, t.at(golden), 0));
    EXPECT_TRUE(tensors_close("grad " + name, p.grad(), t.at("grad." + golden), 1e-5, 1e-3));
  }
  // pyreft counts the checkpoint's head as trainable model parameters.
  const std::string summary = classifier.trainable_parameters_summary();
  EXPECT_EQ(summary.substr(0, summary.find("\nclassification head")),
            meta["print_trainable_parameters"].get<std::string>());
}

// Three classes — which animal a short sentence mentions — with names and places varied.
std::vector<Record> animal_records(uint64_t seed) {
  std::vector<Record> out;
  for (auto& row : test::animal_sentences(seed)) out.push_back({std::move(row), "animals"});
  return out;
}

double head_only_accuracy(Model& model, const Dataset& train, const Dataset& test,
                          const LabelSpace& labels) {
  // A linear head on the frozen last-token state: no intervention at all.
  const auto features = [&](const Dataset& d) {
    torch::NoGradGuard g;
    std::vector<torch::Tensor> rows;
    for (const auto& e : d.examples) {
      ForwardInput in;
      in.input_ids = torch::tensor(e.input_ids, torch::kInt64).unsqueeze(0);
      in.logits = LogitsMode::kNone;
      rows.push_back(model.forward(in).last_hidden[0][-1]);
    }
    return torch::stack(rows);
  };
  auto x = features(train), xt = features(test);
  const auto targets = [&](const Dataset& d) {
    std::vector<int64_t> y;
    for (const auto& e : d.examples) y.push_back(labels.index(e.label, e.where));
    return torch::tensor(y, torch::kInt64);
  };
  auto y = targets(train), yt = targets(test);
  torch::manual_seed(0);
  auto w = (0.02 * torch::randn({x.size(1), labels.num_labels()})).requires_grad_(true);
  auto b = torch::zeros({labels.num_labels()}).requires_grad_(true);
  AdamW opt({w, b}, {false, false}, {.lr = 1e-2});
  for (int step = 0; step < 400; ++step) {
    opt.zero_grad();
    torch::cross_entropy_loss(x.mm(w) + b, y).backward();
    opt.step();
  }
  return (xt.mm(w) + b).argmax(1).eq(yt).to(torch::kFloat64).mean().item<double>();
}

TEST(ClassificationEndToEnd, Stories260KDecoderClassifier) {
  REFT_REQUIRE_SHARED("models/stories260K");
  auto model = load_model(shared_path);
  auto tok = Tokenizer::load(shared_path);
  auto records = animal_records(1);
  std::vector<Record> train_r(records.begin(), records.begin() + 240),
      test_r(records.begin() + 240, records.end());
  auto train = make_classification_dataset(train_r, *tok, {});
  auto test = make_classification_dataset(test_r, *tok, {});
  auto labels = infer_labels(train);
  ASSERT_EQ(labels.names, (std::vector<std::string>{"bird", "cat", "dog"}));
  InterventionOptions o;
  o.low_rank_dimension = 4;
  ReftModel reft(*model, ReftConfig::build({1, 3}, Component::kBlockOutput, o, "l1", false), 3);
  ReftClassifier classifier(reft, labels);
  EXPECT_FALSE(classifier.head_from_checkpoint());
  TrainOptions t;
  t.epochs = 6;
  t.batch_size = 16;
  t.lr = 1e-2;
  train_classifier(classifier, train, nullptr, t);
  auto logits = predict_logits(classifier, test, 32);
  std::vector<size_t> all(test.examples.size());
  std::iota(all.begin(), all.end(), 0);
  const auto m = classification_metrics(labels, logits, classifier.targets(test, all));
  const double baseline = head_only_accuracy(*model, train, test, labels);
  std::cout << "held-out accuracy: ReFT + head " << m.accuracy << ", head only " << baseline
            << ", macro-F1 " << m.macro_f1 << ", MCC " << m.mcc << "\n";
  EXPECT_GE(m.accuracy, 0.9);
  EXPECT_GE(m.accuracy, baseline - 0.02);
}

TEST(ClassificationEndToEnd, TinyRobertaPipelineRuns) {
  REFT_REQUIRE_SHARED("models/tiny-roberta");
  if (!test::architecture_supported(shared_path)) GTEST_SKIP() << "RoBERTa is not supported yet";
  auto model = load_model(shared_path);
  // Random ids stand in for text (the tiny model has no tokenizer): [0, ids…, 2], labels by a rule.
  std::mt19937 rng(5);
  Dataset data;
  for (int i = 0; i < 60; ++i) {
    Example e;
    e.input_ids = {0};
    const int n = 3 + rng() % 6;
    for (int k = 0; k < n; ++k) e.input_ids.push_back(4 + rng() % 250);
    e.input_ids.push_back(2);
    e.prompt_length = e.input_ids.size();
    e.label = std::to_string(e.input_ids[1] % 3);
    e.where = "synthetic:" + std::to_string(i);
    data.examples.push_back(e);
  }
  auto labels = infer_labels(data);
  InterventionOptions o;
  o.low_rank_dimension = 1;
  ReftModel reft(*model, ReftConfig::build({0, 2}, Component::kBlockOutput, o, "f1", false), 0);
  ReftClassifier classifier(reft, labels);
  EXPECT_TRUE(classifier.head_from_checkpoint());
  TempDir tmp;
  TrainOptions t;
  t.max_steps = 10;
  t.output_dir = tmp / "adapter";
  const auto s = train_classifier(classifier, data, &data, t);
  EXPECT_TRUE(std::isfinite(s.final_loss));
  ASSERT_TRUE(s.eval.has_value());
  EXPECT_TRUE(s.eval->metrics.contains("accuracy"));
  // The adapter reloads with its head and labels and predicts the same logits.
  auto loaded = load_classifier(*model, tmp / "adapter");
  EXPECT_TRUE(tensors_close("reloaded logits", predict_logits(*loaded.classifier, data, 8),
                            predict_logits(classifier, data, 8), 1e-6));
}

TEST(ClassificationLabels, InferenceMetricsAndErrors) {
  const auto ds = [](std::vector<std::string> labels) {
    Dataset d;
    for (size_t i = 0; i < labels.size(); ++i) {
      Example e;
      e.label = labels[i];
      e.where = "f.jsonl:" + std::to_string(i + 1);
      d.examples.push_back(e);
    }
    return d;
  };
  EXPECT_EQ(infer_labels(ds({"2", "0", "1"})).names, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(infer_labels(ds({"pos", "neg"})).names, (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(infer_labels(ds({"0.5", "1.25"})).problem, ProblemType::kRegression);
  EXPECT_EQ(infer_labels(ds({"[0, 2]", "[1]"})).problem, ProblemType::kMultiLabel);
  EXPECT_THROW(infer_labels(ds({"a", "b"}), 3), UsageError);
  auto space = infer_labels(ds({"pos", "neg"}));
  try {
    space.index("maybe", "eval.jsonl:7");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("eval.jsonl:7"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("'maybe'"), std::string::npos);
  }
  // Metrics: 3 classes, one mistake in six.
  LabelSpace three;
  three.names = {"a", "b", "c"};
  auto logits = torch::eye(3).index_select(0, torch::tensor({0, 1, 2, 0, 1, 1}, torch::kInt64));
  auto m = classification_metrics(three, logits, torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64));
  EXPECT_NEAR(m.accuracy, 5.0 / 6, 1e-12);
  EXPECT_EQ(m.confusion[2][1], 1);
  EXPECT_NEAR(m.macro_f1, (1.0 + 0.8 + 2.0 / 3) / 3, 1e-12);
  // Multi-class MCC (Gorodkin): confusion [[2,0,0],[0,2,0],[0,1,1]], correct c = 5 of s = 6,
  // predicted counts p = (2,3,1), true counts t = (2,2,2):
  // (c·s − Σ p·t) / √((s² − Σ p²)(s² − Σ t²)) = (30 − 12) / √((36 − 14)(36 − 12)) = 18 / √528.
  EXPECT_NEAR(m.mcc, 18.0 / std::sqrt(528.0), 1e-12);
  // Binary: gold 1,1,1,0,0, predicted 1,1,0,0,1 → TP 2, FN 1, TN 1, FP 1:
  // (TP·TN − FP·FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 − 1) / √(3·3·2·2) = 1/6.
  LabelSpace two;
  two.names = {"no", "yes"};
  auto b = classification_metrics(
      two, torch::eye(2).index_select(0, torch::tensor({1, 1, 0, 0, 1}, torch::kInt64)),
      torch::tensor({1, 1, 1, 0, 0}, torch::kInt64));
  EXPECT_NEAR(b.accuracy, 3.0 / 5, 1e-12);
  EXPECT_NEAR(b.mcc, 1.0 / 6, 1e-12);
  LabelSpace reg;
  reg.problem = ProblemType::kRegression;
  auto r = classification_metrics(reg, torch::tensor({{1.0}, {2.0}, {3.0}, {5.0}}),
                                  torch::tensor({1.0, 2.0, 3.0, 4.0}));
  EXPECT_NEAR(r.spearman, 1.0, 1e-12);
  // Pearson: deviations x − 2.75 = (−1.75, −0.75, 0.25, 2.25), y − 2.5 = (−1.5, −0.5, 0.5, 1.5);
  // Σ dx·dy = 6.5, Σ dx² = 8.75, Σ dy² = 5 → 6.5 / √43.75.
  EXPECT_NEAR(r.pearson, 6.5 / std::sqrt(43.75), 1e-6);
  // Spearman with a swap: ranks (1,2,4,3) vs (1,2,3,4): 1 − 6·Σd²/(n(n²−1)) = 1 − 12/60 = 0.8.
  auto r2 = classification_metrics(reg, torch::tensor({{1.0}, {2.0}, {9.0}, {5.0}}),
                                   torch::tensor({1.0, 2.0, 3.0, 4.0}));
  EXPECT_NEAR(r2.spearman, 0.8, 1e-6);
}

// True when `s` is well-formed UTF-8.
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

TEST(ClassificationMetrics, ConfusionSvgEscapesAndCutsOnCharacters) {
  LabelSpace labels;
  // "é" is two bytes: a byte cut at 8 or 14 would split one.
  labels.names = {"cat & <kitten>", "\"q\" 'x'",
                  "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"};
  auto m = classification_metrics(
      labels, torch::eye(3).index_select(0, torch::tensor({0, 1, 2, 2}, torch::kInt64)),
      torch::tensor({0, 1, 2, 1}, torch::kInt64));
  const std::string svg = confusion_matrix_svg(m, labels);
  EXPECT_TRUE(valid_utf8(svg));
  EXPECT_NE(svg.find(">cat &amp; &lt;kitten&gt;</text>"), std::string::npos) << svg;
  EXPECT_EQ(svg.find("<kitten"), std::string::npos);
  EXPECT_NE(svg.find(">&quot;q&quot; &apos;x&apos;</text>"), std::string::npos) << svg;
  // Axis labels: all ten characters on the left (≤ 14), eight and an ellipsis below.
  const std::string e = "\u00e9";
  std::string ten, eight;
  for (int i = 0; i < 10; ++i) ten += e;
  for (int i = 0; i < 8; ++i) eight += e;
  EXPECT_NE(svg.find(">" + ten + "</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">" + eight + "\u2026</text>"), std::string::npos) << svg;
  // Every '&' starts an entity; no stray '<' inside text.
  for (size_t at = svg.find('&'); at != std::string::npos; at = svg.find('&', at + 1)) {
    const std::string rest = svg.substr(at, 6);
    EXPECT_TRUE(rest.rfind("&amp;", 0) == 0 || rest.rfind("&lt;", 0) == 0 ||
                rest.rfind("&gt;", 0) == 0 || rest.rfind("&quot;", 0) == 0 ||
                rest.rfind("&apos;", 0) == 0)
        << rest;
  }
  for (size_t at = svg.find('<'); at != std::string::npos; at = svg.find('<', at + 1)) {
    const char next = svg[at + 1];
    EXPECT_TRUE(next == '/' || std::isalpha(static_cast<unsigned char>(next)))
        << svg.substr(at, 20);
    EXPECT_TRUE(svg.compare(at, 6, "<text ") == 0 || svg.compare(at, 6, "<rect ") == 0 ||
                svg.compare(at, 5, "<svg ") == 0 || svg.compare(at, 2, "</") == 0)
        << svg.substr(at, 20);
  }
}

}  // namespace
}  // namespace reft
