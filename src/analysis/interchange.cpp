// Running interchange interventions over pair datasets: next-token logits after each base, with
// and without the intervention, and label accuracy (IIA).
//
// Dimension legend: N pairs, B pairs in a batch, T tokens, V vocab.

#include <numeric>

#include "reft/error.h"
#include "reft/interchange.h"

namespace reft {
namespace {

std::vector<size_t> all_or(std::span<const size_t> indices, size_t n) {
  if (!indices.empty()) return {indices.begin(), indices.end()};
  std::vector<size_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  return all;
}

int64_t pad_id_of(const Model& model) { return model.info().pad_token_id.value_or(0); }

void check_batch_size(int64_t batch_size) {
  if (batch_size < 1) usage_fail("[batch_size] expected >= 1, found ", batch_size);
}

}  // namespace

torch::Tensor interchange_logits(ReftModel& reft, const std::vector<CounterfactualPair>& pairs,
                                 std::span<const size_t> indices, int64_t batch_size) {
  check_batch_size(batch_size);
  const auto rows = all_or(indices, pairs.size());
  torch::NoGradGuard no_grad;
  const bool was_training = !reft.interventions().empty() && reft.interventions()[0]->is_training();
  reft.train(false);
  std::vector<torch::Tensor> out;
  for (size_t start = 0; start < rows.size(); start += batch_size) {
    const size_t end = std::min(rows.size(), start + static_cast<size_t>(batch_size));
    auto batch = make_pair_batch(pairs, std::span(rows).subspan(start, end - start),
                                 pad_id_of(reft.base()), reft.interventions().size());
    ForwardInput options;
    options.logits = LogitsMode::kLast;
    out.push_back(reft.forward(batch, options).logits.to(torch::kCPU, torch::kFloat32));  // (B, V)
  }
  reft.train(was_training);
  if (out.empty()) return torch::zeros({0, reft.base().info().vocab_size});
  return torch::cat(out);
}

torch::Tensor plain_logits(Model& model, const std::vector<CounterfactualPair>& pairs,
                           std::span<const size_t> indices, int64_t batch_size, bool use_source) {
  check_batch_size(batch_size);
  const auto rows = all_or(indices, pairs.size());
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (size_t start = 0; start < rows.size(); start += batch_size) {
    const size_t end = std::min(rows.size(), start + static_cast<size_t>(batch_size));
    auto batch =
        make_pair_batch(pairs, std::span(rows).subspan(start, end - start), pad_id_of(model), 0);
    ForwardInput in;
    in.input_ids = (use_source ? batch.source_input_ids : batch.input_ids).to(model.info().device);
    in.attention_mask =
        (use_source ? batch.source_attention_mask : batch.attention_mask).to(model.info().device);
    in.logits = LogitsMode::kLast;
    out.push_back(model.forward(in).logits.to(torch::kCPU, torch::kFloat32));  // (B, V)
  }
  if (out.empty()) return torch::zeros({0, model.info().vocab_size});
  return torch::cat(out);
}

double label_accuracy(const torch::Tensor& logits, const std::vector<CounterfactualPair>& pairs,
                      std::span<const size_t> indices) {
  const auto rows = all_or(indices, pairs.size());
  if (logits.dim() != 2 || logits.size(0) != static_cast<int64_t>(rows.size()))
    fail("[label accuracy] expected logits of shape (", rows.size(), ", V), found ",
         logits.sizes());
  if (rows.empty()) return 0.0;
  auto predicted = logits.argmax(-1).to(torch::kCPU).contiguous();
  const auto* p = predicted.data_ptr<int64_t>();
  int64_t hits = 0;
  for (size_t i = 0; i < rows.size(); ++i)
    hits += pairs[rows[i]].label_id >= 0 && p[i] == pairs[rows[i]].label_id;
  return static_cast<double>(hits) / static_cast<double>(rows.size());
}

}  // namespace reft
