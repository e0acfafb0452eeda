// ReFT classification: the head, label spaces, losses and metrics.
//
// Dimension legend: B batch, T tokens, D hidden, K labels.

#include "reft/classifier.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "reft/adapter.h"
#include "reft/error.h"
#include "reft/runtime.h"
#include "util/files.h"

namespace reft {

std::string_view problem_type_name(ProblemType t) {
  switch (t) {
    case ProblemType::kSingleLabel:
      return "single_label_classification";
    case ProblemType::kRegression:
      return "regression";
    case ProblemType::kMultiLabel:
      return "multi_label_classification";
  }
  return "single_label_classification";
}

ProblemType parse_problem_type(std::string_view name) {
  if (name == "single_label_classification" || name == "single") return ProblemType::kSingleLabel;
  if (name == "regression") return ProblemType::kRegression;
  if (name == "multi_label_classification" || name == "multi") return ProblemType::kMultiLabel;
  usage_fail(
      "[problem type] expected single_label_classification, regression or "
      "multi_label_classification, "
      "found '",
      name, "'");
}

namespace {

bool parse_integer(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  size_t used = 0;
  try {
    *out = std::stoll(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == s.size();
}

bool parse_number(const std::string& s, double* out) {
  if (s.empty()) return false;
  size_t used = 0;
  try {
    *out = std::stod(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == s.size();
}

// The elements of a multi-label value ("[0, 2]" or "[\"a\", \"b\"]") as strings.
std::vector<std::string> label_list(const std::string& text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception&) {
    fail("[", where, "] expected a list of labels, found '", text, "'");
  }
  if (!j.is_array()) fail("[", where, "] expected a list of labels, found '", text, "'");
  std::vector<std::string> out;
  for (const auto& x : j) out.push_back(x.is_string() ? x.get<std::string>() : x.dump());
  return out;
}

}  // namespace

int64_t LabelSpace::index(const std::string& label, const std::string& where) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == label) return static_cast<int64_t>(i);
  std::string known;
  for (size_t i = 0; i < names.size() && i < 10; ++i) known += (i ? ", " : "") + names[i];
  if (names.size() > 10) known += ", …";
  fail("[", where, "] unknown label '", label, "': the adapter knows ", names.size(), " labels (",
       known, ")");
}

nlohmann::json LabelSpace::to_json() const {
  return {{"problem_type", std::string(problem_type_name(problem))}, {"labels", names}};
}

LabelSpace LabelSpace::from_json(const nlohmann::json& j) {
  LabelSpace s;
  s.problem = parse_problem_type(j.value("problem_type", "single_label_classification"));
  s.names = j.value("labels", std::vector<std::string>{});
  return s;
}

LabelSpace infer_labels(const Dataset& data, int64_t num_labels) {
  if (data.examples.empty()) fail("[labels] expected training examples, found none");
  LabelSpace s;
  bool lists = false, all_int = true, all_number = true;
  for (const auto& e : data.examples) {
    if (!e.label.empty() && e.label[0] == '[') lists = true;
    int64_t i;
    double d;
    all_int = all_int && parse_integer(e.label, &i);
    all_number = all_number && parse_number(e.label, &d);
  }
  if (num_labels == 1 || (!lists && all_number && !all_int)) {
    s.problem = ProblemType::kRegression;
    if (!all_number) fail("[labels] regression (num_labels 1) needs numeric labels");
    for (const auto& e : data.examples) {
      double d = 0;
      parse_number(e.label, &d);
      if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
        fail("[", e.where, "] expected a finite regression label within float range, found '",
             e.label, "'");
    }
    return s;
  }
  std::vector<std::string> values;
  if (lists) {
    s.problem = ProblemType::kMultiLabel;
    for (const auto& e : data.examples)
      for (auto& v : label_list(e.label, e.where)) values.push_back(v);
  } else {
    for (const auto& e : data.examples) values.push_back(e.label);
  }
  bool ints = true;
  int64_t max_int = -1;
  for (const auto& v : values) {
    int64_t i;
    if (!parse_integer(v, &i) || i < 0)
      ints = false;
    else
      max_int = std::max(max_int, i);
  }
  // Integer labels are class indices: one class per index up to the largest, so the largest is
  // bounded before a name (and a head row) is made for each.
  constexpr int64_t kMaxClasses = int64_t{1} << 16;
  if (ints && std::max(num_labels, max_int + 1) > kMaxClasses)
    fail("[labels] expected class indices below ", kMaxClasses, ", found ",
         std::max(num_labels - 1, max_int));
  if (ints) {
    const int64_t k = std::max(num_labels, max_int + 1);
    for (int64_t i = 0; i < k; ++i) s.names.push_back(std::to_string(i));
  } else {
    std::set<std::string> distinct(values.begin(), values.end());
    s.names.assign(distinct.begin(), distinct.end());
  }
  if (num_labels > 0 && static_cast<int64_t>(s.names.size()) != num_labels)
    usage_fail("[--num-labels] expected ", num_labels, " labels, but the data has ",
               s.names.size());
  if (s.names.size() < 2 && s.problem == ProblemType::kSingleLabel)
    usage_fail("[labels] expected at least 2 distinct labels in the training data, found ",
               s.names.size());
  return s;
}

// ---- head ----

ClassificationHead::ClassificationHead(Kind kind, int64_t hidden, int64_t num_labels,
                                       double dropout, torch::Dtype dtype, double init_std)
    : kind_(kind), dropout_(dropout) {
  torch::NoGradGuard no_grad;
  const auto init = [&](torch::nn::Linear& l) {
    l->weight.normal_(0, init_std);
    if (l->bias.defined()) l->bias.zero_();
    l->to(dtype);
  };
  if (kind == Kind::kScore) {
    out_ = register_module(
        "score", torch::nn::Linear(torch::nn::LinearOptions(hidden, num_labels).bias(false)));
    init(out_);
    return;
  }
  // Names follow the checkpoints: RoBERTa classifier.dense / classifier.out_proj; BERT
  // pooler.dense / classifier.
  const bool roberta = kind == Kind::kRobertaStyle;
  dense_ = register_module(roberta ? "dense" : "pooler", torch::nn::Linear(hidden, hidden));
  out_ =
      register_module(roberta ? "out_proj" : "classifier", torch::nn::Linear(hidden, num_labels));
  init(dense_);
  init(out_);
}

torch::Tensor ClassificationHead::forward(const torch::Tensor& pooled) {
  auto x = pooled.to(out_->weight.scalar_type());
  const auto drop = [&](const torch::Tensor& t) {
    return dropout_ > 0 ? torch::dropout(t, dropout_, is_training()) : t;
  };
  if (kind_ == Kind::kScore) return out_->forward(x);
  if (kind_ == Kind::kRobertaStyle)
    return out_->forward(drop(torch::tanh(dense_->forward(drop(x)))));
  return out_->forward(drop(torch::tanh(dense_->forward(x))));  // BERT: pooler, dropout, classifier
}

// ---- classifier ----

namespace {

torch::Tensor find_param(const Model& model, std::initializer_list<const char*> names) {
  for (const char* n : names)
    for (const auto& [name, t] : model.parameters())
      if (name == n) return t;
  return {};
}

}  // namespace

ReftClassifier::ReftClassifier(ReftModel& reft, LabelSpace labels, double head_dropout,
                               uint64_t seed)
    : reft_(reft), labels_(std::move(labels)) {
  const auto& base = reft.base();
  const auto& info = base.info();
  const int64_t D = info.hidden_size, K = labels_.num_labels();
  torch::manual_seed(seed + 7919);
  const auto dtype = reft.config().representations.empty()
                         ? torch::kFloat32
                         : reft.config().representations[0].intervention.dtype;
  auto roberta_dense = find_param(base, {"classifier.dense.weight"});
  auto bert_pooler = find_param(base, {"bert.pooler.dense.weight", "pooler.dense.weight"});
  auto bert_classifier = find_param(base, {"classifier.weight"});
  using Kind = ClassificationHead::Kind;
  // BERT classifies through its pooler; RoBERTa's head ignores the pooler a bare RobertaModel has.
  const bool roberta_family = info.model_type.find("roberta") != std::string::npos;
  Kind kind = info.causal ? Kind::kScore
                          : (!roberta_family && bert_pooler.defined() ? Kind::kBertStyle
                                                                      : Kind::kRobertaStyle);
  if (info.kind == ModelKind::kSequenceClassification && info.num_labels != K)
    usage_fail("[num_labels] the model's classifier has ", info.num_labels,
               " labels, the data has ", K,
               "; use a base model without a classification head or matching labels");
  head_ = std::make_shared<ClassificationHead>(kind, D, K, head_dropout, dtype, 0.02);
  torch::NoGradGuard no_grad;
  auto params = head_->named_parameters();
  const auto copy = [&](const char* ours, std::initializer_list<const char*> theirs) {
    auto src = find_param(base, theirs);
    if (!src.defined()) return false;
    params[ours].copy_(src);
    return true;
  };
  if (kind == Kind::kRobertaStyle && roberta_dense.defined()) {
    from_checkpoint_ = copy("dense.weight", {"classifier.dense.weight"}) &&
                       copy("dense.bias", {"classifier.dense.bias"}) &&
                       copy("out_proj.weight", {"classifier.out_proj.weight"}) &&
                       copy("out_proj.bias", {"classifier.out_proj.bias"});
  } else if (kind == Kind::kBertStyle) {
    copy("pooler.weight", {"bert.pooler.dense.weight", "pooler.dense.weight"});
    copy("pooler.bias", {"bert.pooler.dense.bias", "pooler.dense.bias"});
    if (bert_classifier.defined())
      from_checkpoint_ = copy("classifier.weight", {"classifier.weight"}) &&
                         copy("classifier.bias", {"classifier.bias"});
  } else if (kind == Kind::kScore) {
    from_checkpoint_ = copy("score.weight", {"score.weight"});
  }
  head_->to(info.device);
  for (auto& p : head_->parameters()) p.set_requires_grad(true);
}

torch::Tensor ReftClassifier::logits(const ReftBatch& batch) {
  ForwardInput opts;
  opts.logits = LogitsMode::kNone;
  auto out = reft_.forward(batch, opts);
  torch::Tensor pooled;
  if (reft_.base().info().causal) {
    // Last real token of each row (left or right padding).
    auto h = out.last_hidden;  // (B, T, D)
    const int64_t B = h.size(0), T = h.size(1);
    torch::Tensor last;
    if (batch.attention_mask.defined()) {
      auto mask = batch.attention_mask.to(h.device(), torch::kInt64);
      auto positions = torch::arange(T, mask.options()).unsqueeze(0).expand({B, T});
      last = (positions * mask).argmax(1);  // the highest index holding a real token
    } else {
      last = torch::full({B}, T - 1, torch::dtype(torch::kInt64).device(h.device()));
    }
    pooled = h.index({torch::arange(B, last.options()), last});
  } else {
    pooled = out.pooled;
    if (!pooled.defined()) fail("[classifier] the encoder returned no pooled representation");
  }
  return head_->forward(pooled);
}

torch::Tensor ReftClassifier::loss(const torch::Tensor& logits,
                                   const torch::Tensor& targets) const {
  auto l = logits.to(torch::kFloat32);
  switch (labels_.problem) {
    case ProblemType::kRegression:
      return torch::mse_loss(l.squeeze(-1), targets.to(l.device(), torch::kFloat32));
    case ProblemType::kMultiLabel:
      return torch::binary_cross_entropy_with_logits(l, targets.to(l.device(), torch::kFloat32));
    case ProblemType::kSingleLabel:
      break;
  }
  return torch::cross_entropy_loss(l, targets.to(l.device(), torch::kInt64));
}

torch::Tensor ReftClassifier::targets(const Dataset& data,
                                      const std::vector<size_t>& indices) const {
  const int64_t B = indices.size();
  if (labels_.problem == ProblemType::kRegression) {
    auto t = torch::empty({B}, torch::kFloat32);
    for (int64_t b = 0; b < B; ++b) {
      const auto& e = data.examples[indices[b]];
      double v;
      if (!parse_number(e.label, &v))
        fail("[", e.where, "] expected a numeric label for regression, found '", e.label, "'");
      t[b] = v;
    }
    return t;
  }
  if (labels_.problem == ProblemType::kMultiLabel) {
    auto t = torch::zeros({B, labels_.num_labels()}, torch::kFloat32);
    for (int64_t b = 0; b < B; ++b) {
      const auto& e = data.examples[indices[b]];
      for (const auto& v : label_list(e.label, e.where)) t[b][labels_.index(v, e.where)] = 1.0;
    }
    return t;
  }
  auto t = torch::empty({B}, torch::kInt64);
  for (int64_t b = 0; b < B; ++b) {
    const auto& e = data.examples[indices[b]];
    t[b] = labels_.index(e.label, e.where);
  }
  return t;
}

std::vector<std::pair<std::string, torch::Tensor>> ReftClassifier::head_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : head_->named_parameters()) out.emplace_back("head." + p.key(), p.value());
  return out;
}

void ReftClassifier::load_head(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                               const std::string& where) {
  std::map<std::string, torch::Tensor> given(tensors.begin(), tensors.end());
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : head_parameters()) {
    auto it = given.find(name);
    if (it == given.end()) fail("[", where, "] expected head tensor '", name, "', found none");
    if (it->second.sizes() != t.sizes())
      fail("[", where, "] head tensor '", name, "': expected shape ", t.sizes(), ", found ",
           it->second.sizes(), "; num_labels differs from the adapter's");
    t.copy_(it->second);
  }
}

int64_t ReftClassifier::num_head_parameters() const {
  int64_t n = 0;
  for (const auto& p : head_->parameters()) n += p.numel();
  return n;
}

std::string ReftClassifier::trainable_parameters_summary() const {
  // pyreft counts a checkpoint's own head as trainable *model* parameters (it is part of the HF
  // model).
  const int64_t iv = reft_.num_trainable_parameters(), head = num_head_parameters();
  const int64_t model = reft_.base().num_parameters() + (from_checkpoint_ ? 0 : head);
  const int64_t trainable_model = head;
  const auto commas = [](int64_t v) {
    std::string s = std::to_string(v), out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (i && (s.size() - i) % 3 == 0) out += ',';
      out += s[i];
    }
    return out;
  };
  return "trainable intervention params: " + commas(iv) +
         " || trainable model params: " + commas(trainable_model) +
         "\nmodel params: " + commas(model) + " || trainable%: " +
         python_float_repr(100.0 * static_cast<double>(iv + trainable_model) /
                           static_cast<double>(model)) +
         "\nclassification head params: " + commas(head) +
         (from_checkpoint_ ? " (the checkpoint's classifier)" : " (new)") +
         "; intervention share without the head: " +
         python_float_repr(100.0 * static_cast<double>(iv) /
                           static_cast<double>(reft_.base().num_parameters())) +
         "%";
}

nlohmann::json ReftClassifier::meta() const {
  auto j = labels_.to_json();
  j["head_kind"] = static_cast<int>(head_->kind());
  j["head_from_checkpoint"] = from_checkpoint_;
  return j;
}

void ReftClassifier::train(bool on) {
  reft_.train(on);
  head_->train(on);
}

LoadedClassifier load_classifier(Model& base, const std::filesystem::path& dir,
                                 bool allow_base_mismatch) {
  auto loaded = load_adapter(base, dir, allow_base_mismatch);
  if (loaded.meta.task != "classification")
    fail("[", dir.string(), "] expected a classification adapter, found task '", loaded.meta.task,
         "'");
  LoadedClassifier out;
  out.reft = std::move(loaded.reft);
  out.template_name = loaded.meta.template_name;
  const auto& extra = loaded.meta.extra;
  LabelSpace labels;
  try {
    labels = LabelSpace::from_json(extra.value("classification", nlohmann::json::object()));
  } catch (const nlohmann::json::exception& e) {
    fail("[", (dir / "reft_config.json").string(),
         "] expected extra.classification {labels: [names], problem_type: name}, found ",
         json_error_summary(e));
  }
  if (labels.problem != ProblemType::kRegression && labels.names.empty())
    fail("[", (dir / "reft_config.json").string(),
         "] expected extra.classification.labels to name the classes, found none");
  out.classifier = std::make_unique<ReftClassifier>(*out.reft, labels);
  out.classifier->load_head(loaded.extra_tensors, (dir / "interventions.safetensors").string());
  return out;
}

// ---- metrics ----

namespace {

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = x.size();
  if (n < 2) return 0;
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n,
               my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0;
}

// Ranks with ties averaged (as scipy's rankdata "average").
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[order[k]] = (i + j) / 2.0 + 1;
    i = j + 1;
  }
  return r;
}

// Matthews correlation of a K×K confusion matrix (Gorodkin's R_K; the binary MCC for K = 2).
double mcc_of(const std::vector<std::vector<int64_t>>& c) {
  const size_t K = c.size();
  double s = 0, correct = 0;
  std::vector<double> t(K, 0), p(K, 0);
  for (size_t i = 0; i < K; ++i)
    for (size_t j = 0; j < K; ++j) {
      s += c[i][j];
      t[i] += c[i][j];
      p[j] += c[i][j];
      if (i == j) correct += c[i][j];
    }
  double pt = 0, pp = 0, tt = 0;
  for (size_t k = 0; k < K; ++k) {
    pt += p[k] * t[k];
    pp += p[k] * p[k];
    tt += t[k] * t[k];
  }
  const double denom = std::sqrt((s * s - pp) * (s * s - tt));
  return denom > 0 ? (correct * s - pt) / denom : 0;
}

// Macro F1 over the labels that occur in gold or predictions (scikit-learn's convention).
double macro_f1_of(const std::vector<std::vector<int64_t>>& c) {
  double sum = 0;
  int used = 0;
  for (size_t k = 0; k < c.size(); ++k) {
    double tp = c[k][k], fp = 0, fn = 0;
    for (size_t j = 0; j < c.size(); ++j)
      if (j != k) {
        fp += c[j][k];
        fn += c[k][j];
      }
    if (tp + fp + fn == 0) continue;
    sum += 2 * tp / (2 * tp + fp + fn);
    ++used;
  }
  return used ? sum / used : 0;
}

}  // namespace

ClassificationMetrics classification_metrics(const LabelSpace& labels,
                                             const torch::Tensor& logits_in,
                                             const torch::Tensor& targets_in) {
  ClassificationMetrics m;
  auto logits = logits_in.detach().to(torch::kCPU, torch::kFloat64);
  auto targets = targets_in.detach().to(torch::kCPU);
  m.examples = logits.size(0);
  if (labels.problem == ProblemType::kRegression) {
    auto pred = logits.squeeze(-1);
    std::vector<double> x(pred.data_ptr<double>(), pred.data_ptr<double>() + pred.numel());
    auto t = targets.to(torch::kFloat64).contiguous();
    std::vector<double> y(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    m.pearson = pearson(x, y);
    m.spearman = pearson(ranks(x), ranks(y));
    m.mse = (pred - t).square().mean().item<double>();
    return m;
  }
  const int64_t K = labels.num_labels();
  if (labels.problem == ProblemType::kMultiLabel) {
    auto pred = logits.gt(0);
    auto gold = targets.to(torch::kBool);
    m.accuracy = pred.eq(gold).all(1).to(torch::kFloat64).mean().item<double>();
    // Per-label binary confusions, combined: macro F1 over labels, MCC over all label decisions.
    std::vector<std::vector<int64_t>> total = {{0, 0}, {0, 0}};
    double f1 = 0;
    int used = 0;
    for (int64_t k = 0; k < K; ++k) {
      std::vector<std::vector<int64_t>> c = {{0, 0}, {0, 0}};
      for (int64_t i = 0; i < m.examples; ++i) {
        const int g = gold[i][k].item<bool>(), p = pred[i][k].item<bool>();
        ++c[g][p];
        ++total[g][p];
      }
      if (c[1][1] + c[0][1] + c[1][0] > 0) {
        f1 += 2.0 * c[1][1] / (2.0 * c[1][1] + c[0][1] + c[1][0]);
        ++used;
      }
    }
    m.macro_f1 = used ? f1 / used : 0;
    m.mcc = mcc_of(total);
    return m;
  }
  auto pred = logits.argmax(-1);
  m.confusion.assign(K, std::vector<int64_t>(K, 0));
  int64_t correct = 0;
  for (int64_t i = 0; i < m.examples; ++i) {
    const int64_t g = targets[i].item<int64_t>(), p = pred[i].item<int64_t>();
    ++m.confusion[g][p];
    correct += g == p;
  }
  m.accuracy = m.examples ? static_cast<double>(correct) / m.examples : 0;
  m.macro_f1 = macro_f1_of(m.confusion);
  m.mcc = mcc_of(m.confusion);
  return m;
}

nlohmann::json ClassificationMetrics::to_json(const LabelSpace& labels) const {
  nlohmann::json j = {{"examples", examples},
                      {"problem_type", std::string(problem_type_name(labels.problem))}};
  if (labels.problem == ProblemType::kRegression) {
    j["pearson"] = pearson;
    j["spearman"] = spearman;
    j["mse"] = mse;
    return j;
  }
  j["accuracy"] = accuracy;
  j["macro_f1"] = macro_f1;
  j["mcc"] = mcc;
  if (!confusion.empty()) {
    j["labels"] = labels.names;
    j["confusion_matrix"] = confusion;
  }
  return j;
}

torch::Tensor predict_logits(ReftClassifier& classifier, const Dataset& data, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  classifier.train(false);
  std::vector<torch::Tensor> out;
  const int64_t pad = classifier.reft().base().info().pad_token_id.value_or(0);
  for (size_t start = 0; start < data.examples.size(); start += batch_size) {
    std::vector<size_t> idx;
    for (size_t i = start; i < std::min(data.examples.size(), start + batch_size); ++i)
      idx.push_back(i);
    out.push_back(classifier.logits(make_classification_batch(data, idx, pad))
                      .to(torch::kCPU, torch::kFloat32));
  }
  return torch::cat(out, 0);
}

namespace {

// The first `max_chars` code points of UTF-8 `s` (never a cut inside a multi-byte character),
// with "…" when something was cut.
std::string utf8_prefix(const std::string& s, size_t max_chars) {
  size_t chars = 0, i = 0;
  while (i < s.size() && chars < max_chars) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    ++chars;
  }
  return i >= s.size() ? s : s.substr(0, i) + "\xE2\x80\xA6";
}

// Text content for an SVG (XML) element.
std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string confusion_matrix_svg(const ClassificationMetrics& m, const LabelSpace& labels) {
  const size_t K = m.confusion.size();
  const double cell = std::max(28.0, std::min(64.0, 480.0 / std::max<size_t>(1, K)));
  const double left = 110, top = 60;
  const double W = left + cell * K + 20, H = top + cell * K + 50;
  int64_t peak = 1;
  for (const auto& row : m.confusion)
    for (int64_t v : row) peak = std::max(peak, v);
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(int(W)) +
                    "\" height=\"" + std::to_string(int(H)) +
                    "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" "
                    "height=\"100%\" fill=\"white\"/>\n";
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.0f\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">confusion "
                "matrix (accuracy %.1f%%)"
                "</text>\n<text x=\"%.0f\" y=\"44\" text-anchor=\"middle\">predicted</text>\n",
                W / 2, 100 * m.accuracy, left + cell * K / 2);
  svg += buf;
  for (size_t g = 0; g < K; ++g) {
    const std::string name = g < labels.names.size() ? labels.names[g] : std::to_string(g);
    // Labels are user text: cut on code points, then escaped (the buffer only holds numbers).
    std::snprintf(buf, sizeof buf, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">", left - 6,
                  top + cell * (g + 0.5) + 4);
    svg += buf + xml_escape(utf8_prefix(name, 14)) + "</text>\n";
    std::snprintf(buf, sizeof buf, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">",
                  left + cell * (g + 0.5), top + cell * K + 16);
    svg += buf + xml_escape(utf8_prefix(name, 8)) + "</text>\n";
    for (size_t p = 0; p < K; ++p) {
      const double v = static_cast<double>(m.confusion[g][p]) / peak;
      const int shade = static_cast<int>(255 - 200 * v);
      std::snprintf(
          buf, sizeof buf,
          "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"rgb(%d,%d,255)\" "
          "stroke=\"#999\"/><text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%lld</text>\n",
          left + cell * p, top + cell * g, cell, cell, shade, shade, left + cell * (p + 0.5),
          top + cell * (g + 0.5) + 4, static_cast<long long>(m.confusion[g][p]));
      svg += buf;
    }
  }
  svg += "<text x=\"14\" y=\"" + std::to_string(int(top + cell * K / 2)) +
         "\" transform=\"rotate(-90 14 " + std::to_string(int(top + cell * K / 2)) +
         ")\" text-anchor=\"middle\">gold</text>\n</svg>\n";
  return svg;
}

}  // namespace reft
