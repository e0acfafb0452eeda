#pragma once
// Tensor comparisons for golden tests: report name, shape, max abs/rel difference and the first
// differing values, as the style guide asks.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>
#include <string>

#include "reft/adapter.h"
#include "reft/intervention.h"
#include "reft/model.h"
#include "reft/presets.h"
#include "reft/reft_model.h"
#include "test_util.h"

namespace reft::test {

/// |actual − expected| ≤ atol + rtol·|expected| everywhere (where `mask` is true, if given).
inline ::testing::AssertionResult tensors_close(const std::string& what, torch::Tensor actual,
                                                torch::Tensor expected, double atol,
                                                double rtol = 0, torch::Tensor mask = {}) {
  actual = actual.detach().to(torch::kCPU, torch::kFloat64);
  expected = expected.detach().to(torch::kCPU, torch::kFloat64);
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure()
           << what << ": shape " << actual.sizes() << " != expected " << expected.sizes();
  auto diff = (actual - expected).abs();
  auto bound = atol + rtol * expected.abs();
  auto bad = diff > bound;
  if (mask.defined()) bad = bad.logical_and(mask.to(torch::kCPU, torch::kBool).expand_as(bad));
  bad = bad.logical_or(actual.isnan().logical_xor(expected.isnan()));
  const double max_abs =
      mask.defined()
          ? (diff * mask.to(torch::kCPU, torch::kFloat64).expand_as(diff)).max().item<double>()
          : (diff.numel() ? diff.max().item<double>() : 0.0);
  if (!bad.any().item<bool>())
    return ::testing::AssertionSuccess() << what << ": max abs diff " << max_abs;
  auto idx = bad.reshape({-1}).nonzero().reshape({-1});
  std::ostringstream out;
  out << what << " " << actual.sizes() << ": " << idx.size(0) << " values beyond atol " << atol
      << " rtol " << rtol << ", max abs diff " << max_abs << "; first:";
  auto a = actual.reshape({-1}), e = expected.reshape({-1});
  for (int64_t i = 0; i < std::min<int64_t>(5, idx.size(0)); ++i) {
    const int64_t k = idx[i].item<int64_t>();
    out << " [" << k << "] " << a[k].item<double>() << " vs " << e[k].item<double>();
  }
  return ::testing::AssertionFailure() << out.str();
}

/// Whether load_model supports the architecture of the model folder (tests over golden folders
/// report the others as skipped).
inline bool architecture_supported(const std::filesystem::path& model_dir) {
  std::ifstream in(model_dir / "config.json");
  const auto config = nlohmann::json::parse(in);
  const auto archs = supported_architectures();
  return std::find(archs.begin(), archs.end(), config["architectures"][0].get<std::string>()) !=
         archs.end();
}

/// A random LLaMA-family model written into `dir` (config overrides merged into a tiny base).
inline void write_tiny_model(const std::filesystem::path& dir, const nlohmann::json& overrides = {},
                             uint64_t seed = 0) {
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"hidden_size", 32},
                           {"intermediate_size", 48},
                           {"num_hidden_layers", 3},
                           {"num_attention_heads", 4},
                           {"num_key_value_heads", 2},
                           {"vocab_size", 64},
                           {"rms_norm_eps", 1e-6},
                           {"max_position_embeddings", 128},
                           {"initializer_range", 0.2},
                           {"tie_word_embeddings", false},
                           {"eos_token_id", 2},
                           {"bos_token_id", 1}};
  if (overrides.is_object()) config.update(overrides);
  write_random_model(dir, config, seed);
}

/// Every intervention type, for tests that cover them all.
inline constexpr InterventionType kAllInterventionTypes[] = {
    InterventionType::kLoReFT,      InterventionType::kNoReFT,
    InterventionType::kDiReFT,      InterventionType::kNodiReFT,
    InterventionType::kConsReFT,    InterventionType::kLoBiReFT,
    InterventionType::kVanilla,     InterventionType::kAddition,
    InterventionType::kSubtraction, InterventionType::kZero,
    InterventionType::kCollect,     InterventionType::kLowRankRotated,
    InterventionType::kRotated,     InterventionType::kBoundlessRotated,
    InterventionType::kSigmoidMask};

/// Saves a random rank-2 LoReFT adapter over `base` at block_output of `layers` into `dir`; biases
/// drawn with `bias_std` so that its edit visibly changes greedy answers (serving tests).
inline void save_random_loreft(Model& base, const std::filesystem::path& dir,
                               const std::vector<int64_t>& layers, const std::string& positions,
                               uint64_t seed, double bias_std) {
  InterventionOptions o;
  o.type = InterventionType::kLoReFT;
  o.low_rank_dimension = 2;
  ReftModel reft(base, ReftConfig::build(layers, Component::kBlockOutput, o, positions, false),
                 seed);
  torch::NoGradGuard no_grad;
  for (auto& [n, t] : reft.named_parameters())
    if (n.find("bias") != std::string::npos) t.normal_(0, bias_std);
  save_adapter(reft, dir, AdapterMeta{});
}

}  // namespace reft::test
