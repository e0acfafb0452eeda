#pragma once
/// ReFT for classification: a head on the intervened representation, trained jointly with the
/// interventions. Pooling: the first token for encoders, the last real token for decoders. The head
/// is the checkpoint's own classifier when it has one (RoBERTa classifier.dense + out_proj, BERT
/// pooler + classifier), else a new one of the matching shape (decoders: a bias-free `score`
/// Linear, as HF's *ForSequenceClassification).

#include <torch/torch.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reft/data.h"
#include "reft/reft_model.h"

namespace reft {

enum class ProblemType {
  kSingleLabel,  // cross-entropy over num_labels classes
  kRegression,   // num_labels = 1, MSE
  kMultiLabel,   // BCE-with-logits, labels are lists
};
std::string_view problem_type_name(ProblemType type);
ProblemType parse_problem_type(std::string_view name);

/// The label set of a task: names in index order. Integer labels map to themselves.
struct LabelSpace {
  ProblemType problem = ProblemType::kSingleLabel;
  std::vector<std::string> names;  // index → label text (empty for regression)
  int64_t num_labels() const {
    return problem == ProblemType::kRegression ? 1 : static_cast<int64_t>(names.size());
  }
  /// Index of a label; throws Error naming `where` and listing the known labels.
  int64_t index(const std::string& label, const std::string& where) const;
  nlohmann::json to_json() const;
  static LabelSpace from_json(const nlohmann::json& j);
};

/// Infers the label space from training examples: lists → multi-label, non-integer numbers →
/// regression, integers → 0..max, otherwise the sorted distinct strings. `num_labels` > 0 forces
/// the count (and must agree with the data).
LabelSpace infer_labels(const Dataset& data, int64_t num_labels = 0);

/// The classification head Φ_head: pooled (N, D) → logits (N, K).
class ClassificationHead : public torch::nn::Module {
 public:
  enum class Kind { kScore, kRobertaStyle, kBertStyle };
  ClassificationHead(Kind kind, int64_t hidden, int64_t num_labels, double dropout,
                     torch::Dtype dtype, double init_std);
  torch::Tensor forward(const torch::Tensor& pooled);
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
  torch::nn::Linear dense_{nullptr}, out_{nullptr};
  double dropout_;
};

class ReftClassifier {
 public:
  /// Builds the head for `reft`'s base model: a copy of the checkpoint's own classifier when it has
  /// one (its num_labels must match `labels`), else a new head.
  ReftClassifier(ReftModel& reft, LabelSpace labels, double head_dropout = 0.0, uint64_t seed = 0);

  ReftModel& reft() { return reft_; }
  const LabelSpace& labels() const { return labels_; }
  ClassificationHead& head() { return *head_; }
  bool head_from_checkpoint() const { return from_checkpoint_; }

  /// Logits (B, K) of the intervened forward.
  torch::Tensor logits(const ReftBatch& batch);
  /// The loss for targets: (B) int64 class ids, (B) float regression values or (B, K) multi-hot.
  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets) const;
  /// Targets of examples (by index) as loss() takes them.
  torch::Tensor targets(const Dataset& data, const std::vector<size_t>& indices) const;

  /// Head parameters as "head.<name>" (trainable).
  std::vector<std::pair<std::string, torch::Tensor>> head_parameters() const;
  void load_head(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                 const std::string& where);
  int64_t num_head_parameters() const;
  /// pyreft's summary (a checkpoint head counts as trainable model parameters there) and a line
  /// with the head alone, which the paper excludes from its parameter share.
  std::string trainable_parameters_summary() const;
  /// Adapter metadata for save_adapter: task, labels, head kind.
  nlohmann::json meta() const;
  void train(bool on);

 private:
  ReftModel& reft_;
  LabelSpace labels_;
  std::shared_ptr<ClassificationHead> head_;
  bool from_checkpoint_ = false;
};

/// Loads a classification adapter (written by the trainer) onto `base`.
struct LoadedClassifier {
  std::unique_ptr<ReftModel> reft;
  std::unique_ptr<ReftClassifier> classifier;
  std::string template_name;
};
LoadedClassifier load_classifier(Model& base, const std::filesystem::path& dir,
                                 bool allow_base_mismatch = false);

/// Metrics of predictions against gold labels.
struct ClassificationMetrics {
  int64_t examples = 0;
  double accuracy = 0, macro_f1 = 0, mcc = 0;   // single- and multi-label (micro over labels)
  double pearson = 0, spearman = 0, mse = 0;    // regression
  std::vector<std::vector<int64_t>> confusion;  // [gold][predicted], single-label
  nlohmann::json to_json(const LabelSpace& labels) const;
};
ClassificationMetrics classification_metrics(const LabelSpace& labels, const torch::Tensor& logits,
                                             const torch::Tensor& targets);

/// A right-padded batch of classification examples: the whole text is the prompt (the position
/// spec applies to it), with segment ids when the examples have them.
ReftBatch make_classification_batch(const Dataset& data, const std::vector<size_t>& indices,
                                    int64_t pad_id);

/// Logits of every example of `data` (B at a time, no gradients).
torch::Tensor predict_logits(ReftClassifier& classifier, const Dataset& data, int64_t batch_size);

/// An SVG heat map of a confusion matrix.
std::string confusion_matrix_svg(const ClassificationMetrics& metrics, const LabelSpace& labels);

}  // namespace reft
