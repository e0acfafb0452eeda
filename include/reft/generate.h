#pragma once
/// Text generation with a decoder: greedy or sampled, batched with left padding, KV-cached.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reft/model.h"

namespace reft {

class Tokenizer;

struct GenerationOptions {
  int64_t max_new_tokens = 128;
  /// 0 = greedy (argmax); otherwise logits are divided by it and sampled.
  double temperature = 0.0;
  int64_t top_k = 0;                // 0 = off
  double top_p = 1.0;               // 1 = off
  double repetition_penalty = 1.0;  // HF semantics: divide positive / multiply negative logits
  uint64_t seed = 0;
  /// Stop ids; empty = the model's eos ids (generation_config.json, else config.json).
  std::vector<int64_t> eos_token_ids;
  bool use_model_eos = true;  // false: only eos_token_ids stop generation
  /// Stop once the decoded continuation contains one of these (needs a tokenizer).
  std::vector<std::string> stop_strings;
  /// Pad id for left padding of batched prompts (masked, so any valid id works).
  int64_t pad_token_id = 0;
  /// Called with one line for a condition that does not stop generation: a forward reaching
  /// positions past the model's max_position_embeddings (once per call). Null: not reported.
  std::function<void(const std::string&)> on_warning;
};

struct GenerationResult {
  std::vector<int64_t> new_ids;  // generated ids; a stop id, when produced, is the last one
  bool stopped = false;          // ended on a stop id or stop string (not max_new_tokens)
};

/// Called for every generated token of every unfinished row; return false to stop that row.
using TokenCallback = std::function<bool(int64_t row, int64_t token)>;

/// Generates a continuation for each prompt. Prompts are left-padded into one batch, prefilled in
/// one forward and decoded step by step with a KV cache. `hooks` (interventions) see every
/// forward: the prefill, then one call per step with past > 0. `tokenizer` is needed for
/// stop_strings only. Throws UsageError for empty prompts or invalid options.
std::vector<GenerationResult> generate(Model& model,
                                       const std::vector<std::vector<int64_t>>& prompts,
                                       const GenerationOptions& options, SiteHooks* hooks = nullptr,
                                       const Tokenizer* tokenizer = nullptr,
                                       const TokenCallback& on_token = {});

/// Checks the options generate() accepts (max_new_tokens >= 0, temperature >= 0, top_p in (0, 1],
/// top_k >= 0, repetition_penalty > 0); throws UsageError naming the field otherwise.
void check_generation_options(const GenerationOptions& options);

/// HF's logits processors in HF's order (repetition penalty over `seen[b]`, temperature, top-k,
/// top-p) on logits (B, V); what generate() samples from.
torch::Tensor process_logits(torch::Tensor logits, const GenerationOptions& options,
                             const std::vector<std::vector<int64_t>>& seen);

/// Incremental detokenization for streaming: feed ids, get the newly printable text (complete
/// UTF-8 only, decoded in context so SentencePiece spaces come out right).
class TextStreamer {
 public:
  TextStreamer(const Tokenizer& tokenizer, bool skip_special_tokens = true)
      : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}
  std::string push(int64_t id);
  /// Whatever is still held back (an incomplete character at the end).
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int64_t> ids_;
  size_t printed_ = 0;
};

}  // namespace reft
