#include "reft/generate.h"

#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>

#include "reft/error.h"
#include "reft/tokenizer.h"

namespace reft {

// Applies HF's logits processors in HF's order: repetition penalty, temperature, top-k, top-p.
torch::Tensor process_logits(torch::Tensor logits, const GenerationOptions& opt,
                             const std::vector<std::vector<int64_t>>& seen) {
  if (opt.repetition_penalty != 1.0) {
    for (int64_t b = 0; b < logits.size(0); ++b) {
      if (seen[b].empty()) continue;
      auto idx = torch::tensor(seen[b], torch::kInt64).to(logits.device());
      auto row = logits[b];
      auto s = row.index_select(0, idx);
      s = torch::where(s < 0, s * opt.repetition_penalty, s / opt.repetition_penalty);
      row.index_copy_(0, idx, s);
    }
  }
  if (opt.temperature > 0 && opt.temperature != 1.0) logits = logits / opt.temperature;
  const double neg_inf = -std::numeric_limits<float>::infinity();
  if (opt.top_k > 0 && opt.top_k < logits.size(-1)) {
    auto kth = std::get<0>(logits.topk(opt.top_k, -1)).select(-1, opt.top_k - 1).unsqueeze(-1);
    logits = logits.masked_fill(logits < kth, neg_inf);
  }
  if (opt.top_p < 1.0) {
    auto [sorted, order] = logits.sort(-1, /*descending=*/false);
    auto cumulative = sorted.softmax(-1).cumsum(-1);
    auto remove = cumulative <= (1 - opt.top_p);
    remove.select(-1, remove.size(-1) - 1).fill_(false);  // always keep the most likely token
    auto mask = remove.scatter(-1, order, remove);
    logits = logits.masked_fill(mask, neg_inf);
  }
  return logits;
}

void check_generation_options(const GenerationOptions& opt) {
  if (opt.max_new_tokens < 0)
    usage_fail("[--max-new-tokens] expected >= 0, found ", opt.max_new_tokens);
  if (opt.temperature < 0) usage_fail("[--temperature] expected >= 0, found ", opt.temperature);
  if (opt.top_p <= 0 || opt.top_p > 1)
    usage_fail("[--top-p] expected a value in (0, 1], found ", opt.top_p);
  if (opt.top_k < 0) usage_fail("[--top-k] expected >= 0, found ", opt.top_k);
  if (opt.repetition_penalty <= 0)
    usage_fail("[--repetition-penalty] expected > 0, found ", opt.repetition_penalty);
}

std::vector<GenerationResult> generate(Model& model,
                                       const std::vector<std::vector<int64_t>>& prompts,
                                       const GenerationOptions& opt, SiteHooks* hooks,
                                       const Tokenizer* tokenizer, const TokenCallback& on_token) {
  const auto& info = model.info();
  if (!info.causal)
    usage_fail("[generate] ", info.architecture, " is not a decoder; it cannot generate");
  if (prompts.empty()) return {};
  check_generation_options(opt);
  if (!opt.stop_strings.empty() && !tokenizer)
    usage_fail("[generate] stop strings need a tokenizer");
  std::vector<int64_t> eos = opt.eos_token_ids;
  if (opt.use_model_eos)
    eos.insert(eos.end(), info.eos_token_ids.begin(), info.eos_token_ids.end());

  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 0;
  for (size_t b = 0; b < prompts.size(); ++b) {
    if (prompts[b].empty())
      usage_fail("[generate] prompt ", b, " is empty: expected at least one token");
    for (int64_t id : prompts[b])
      if (id < 0 || id >= info.vocab_size)
        usage_fail("[generate] prompt ", b, ": token id ", id, " is outside the vocabulary [0, ",
                   info.vocab_size, ")");
    T = std::max<int64_t>(T, prompts[b].size());
  }
  // Left padding: every row's last prompt token sits at position T-1.
  auto ids = torch::full({B, T}, opt.pad_token_id, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = prompts[b].size();
    ids[b].narrow(0, T - n, n).copy_(torch::tensor(prompts[b], torch::kInt64));
    mask[b].narrow(0, T - n, n).fill_(1);
  }
  const auto device = info.device;
  torch::NoGradGuard no_grad;
  KVCache cache = model.new_cache(B, T + std::max<int64_t>(opt.max_new_tokens, 1));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);

  std::vector<GenerationResult> results(B);
  std::vector<bool> done(B, false);
  std::vector<std::vector<int64_t>> seen(prompts.begin(), prompts.end());
  std::vector<std::string> texts(B);

  ForwardInput in;
  in.input_ids = ids.to(device);
  in.attention_mask = mask.to(device);
  in.cache = &cache;
  in.hooks = hooks;
  in.logits = LogitsMode::kLast;
  const int64_t max_positions = info.max_position_embeddings;
  bool warned = false;
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    // The last position this forward computes: T − 1 for the prefill, then one more per step.
    const int64_t position = T - 1 + step;
    if (opt.on_warning && !warned && max_positions > 0 && position >= max_positions) {
      warned = true;
      opt.on_warning("generation runs past max_position_embeddings (" +
                     std::to_string(max_positions) + ") at position " + std::to_string(position) +
                     ": the model was not trained on these positions; expect degraded text");
    }
    auto logits = model.forward(in).logits.to(torch::kFloat32).to(torch::kCPU);  // (B, V)
    torch::Tensor next;
    if (opt.temperature == 0) {
      if (opt.repetition_penalty != 1.0) logits = process_logits(logits, opt, seen);
      next = logits.argmax(-1);
    } else {
      auto probs = process_logits(logits, opt, seen).softmax(-1);
      next = torch::multinomial(probs, 1, /*replacement=*/false, gen).squeeze(-1);
    }
    auto next_acc = next.accessor<int64_t, 1>();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const int64_t token = next_acc[b];
      results[b].new_ids.push_back(token);
      seen[b].push_back(token);
      if (std::find(eos.begin(), eos.end(), token) != eos.end()) {
        done[b] = results[b].stopped = true;
      }
      if (!done[b] && !opt.stop_strings.empty()) {
        const std::string text =
            tokenizer->decode(results[b].new_ids, /*skip_special_tokens=*/true);
        for (const auto& s : opt.stop_strings)
          if (!s.empty() && text.find(s) != std::string::npos) done[b] = results[b].stopped = true;
      }
      if (on_token && !on_token(b, token)) done[b] = true;
      all_done = all_done && done[b];
    }
    if (all_done) break;
    in.input_ids = next.view({B, 1}).to(device);
    in.attention_mask = torch::ones({B, 1}, torch::dtype(torch::kInt64).device(device));
  }
  return results;
}

std::string TextStreamer::push(int64_t id) {
  ids_.push_back(id);
  const std::string text = tokenizer_.decode(ids_, skip_special_);
  // Hold back a trailing replacement character: it may be an incomplete UTF-8 sequence whose
  // remaining bytes arrive with the next token.
  static const std::string kReplacement = "\xEF\xBF\xBD";
  size_t end = text.size();
  if (end >= 3 && text.compare(end - 3, 3, kReplacement) == 0) end -= 3;
  if (end <= printed_) return {};
  std::string out = text.substr(printed_, end - printed_);
  printed_ = end;
  return out;
}

std::string TextStreamer::finish() {
  const std::string text = tokenizer_.decode(ids_, skip_special_);
  std::string out = text.size() > printed_ ? text.substr(printed_) : std::string();
  printed_ = text.size();
  return out;
}

}  // namespace reft
