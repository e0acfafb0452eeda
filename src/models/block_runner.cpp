#include "models/block_runner.h"

#include <algorithm>

#include "models/layers.h"
#include "reft/error.h"

namespace reft {

ForwardOutput BlockModel::forward(const ForwardInput& input) {
  const auto& ids = input.input_ids;
  if (!ids.defined() || ids.dim() != 2) fail("[forward] expected input_ids of shape (B, T)");
  const int64_t B = ids.size(0), T = ids.size(1), L = info_.num_layers;
  const bool causal = info_.causal;
  KVCache* cache = input.cache;
  if (cache && !causal)
    fail("[forward] ", info_.architecture, " is an encoder: expected no KV cache, found one");
  if (cache && cache->batch() != B)
    fail("[forward] expected a cache for ", B, " rows, found ", cache->batch());
  const auto device = info_.device;

  BlockContext ctx{.input = input, .batch = B, .tokens = T, .hooks = input.hooks};
  ctx.cache = cache;
  ctx.past = cache ? cache->length : 0;
  ctx.mask = input.attention_mask.defined()
                 ? input.attention_mask.to(device, torch::kInt64)
                 : torch::ones({B, T}, torch::dtype(torch::kInt64).device(device));
  ctx.key_mask = cache && ctx.past > 0 ? torch::cat({cache->mask, ctx.mask}, 1) : ctx.mask;
  // The bias is skipped where nothing is hidden: one decode step over an unpadded, unwindowed
  // cache, or an unpadded encoder batch.
  const int64_t S = ctx.past + T;
  const bool window_bites = stack_.sliding_window > 0 && S > stack_.sliding_window;
  if ((causal && (T > 1 || window_bites)) || !ctx.key_mask.all().item<bool>())
    ctx.bias =
        attention_bias(ctx.key_mask, ctx.past, T, causal, stack_.sliding_window, info_.dtype);
  if (causal)
    ctx.positions = input.position_ids.defined() ? input.position_ids.to(device, torch::kInt64)
                                                 : default_positions(ctx.mask, cache);
  prepare(ctx);

  const int stop = input.stop_layer >= 0 ? std::min<int>(input.stop_layer, L) : static_cast<int>(L);
  if (input.start_layer < 0 || input.start_layer > stop)
    fail("[forward] expected start_layer in [0, ", stop, "], found ", input.start_layer);
  if (input.start_layer > 0 && !input.start_hidden.defined())
    fail("[forward] expected start_hidden with start_layer ", input.start_layer, ", found none");
  ForwardOutput out;
  torch::Tensor h = input.start_hidden.defined() ? input.start_hidden : embed(ctx);  // (B, T, D)
  if (input.output_hidden_states) out.hidden_states.push_back(h);
  if (ctx.hooks) ctx.hooks->begin_forward(input);
  // A resumed forward's state is the output of block start_layer − 1: its block_output site fires
  // here, so an intervention there applies to the cached state (frozen-prefix caching).
  if (input.start_hidden.defined() && input.start_layer > 0)
    h = ctx.site(input.start_layer - 1, Component::kBlockOutput, h);
  for (int l = input.start_layer; l < stop; ++l) {
    h = ctx.site(l, Component::kBlockInput, h);
    h = ctx.site(l, Component::kBlockOutput, block(l, h, ctx));
    if (input.output_hidden_states && l + 1 < L) out.hidden_states.push_back(h);
  }
  if (cache) {
    cache->mask = torch::cat({cache->mask, ctx.mask}, 1);
    cache->length += T;
  }
  out.last_block = h;
  if (stop < L) return out;

  // The final norm runs on all rows only where they are all needed; generation and training ask
  // for a few rows and norm just those.
  const bool token_logits = has_token_head() && info_.kind != ModelKind::kSequenceClassification;
  const bool all_rows = input.logits == LogitsMode::kAll || input.logits == LogitsMode::kNone ||
                        !token_logits || !stack_.final_norm;
  if (all_rows || input.output_hidden_states) {
    out.last_hidden = final_norm(h);
    if (input.output_hidden_states) out.hidden_states.push_back(out.last_hidden);
  }
  if (!causal) out.pooled = out.last_hidden.select(1, 0);  // (B, D): [CLS] / <s>
  if (input.logits == LogitsMode::kNone) return out;
  if (info_.kind == ModelKind::kSequenceClassification) {
    out.logits = classify(out.pooled);  // (B, C)
    return out;
  }
  if (!token_logits) {
    // Bare bodies (GPT2Model, BertModel): hidden states only. kAll (the default) leaves logits
    // undefined; asking for particular rows (generation, training) is a mistake worth an error.
    if (input.logits != LogitsMode::kAll)
      fail("[forward] ", info_.architecture, " has no LM head: expected LogitsMode kAll or ",
           "kNone, found a request for logits; load a *ForCausalLM, *ForMaskedLM or ",
           "GPT2LMHeadModel checkpoint for token logits");
    return out;
  }
  switch (input.logits) {
    case LogitsMode::kAll:
      out.logits = token_head(out.last_hidden);  // (B, T, V)
      break;
    case LogitsMode::kLast:
      out.logits = token_head(final_norm(h.select(1, T - 1)));  // (B, V)
      break;
    case LogitsMode::kSelected:
      out.logits = token_head(final_norm(gather_rows(h, input.logits_index)));  // (N, V)
      break;
    case LogitsMode::kNone:
      break;
  }
  return out;
}

torch::Tensor BlockModel::logits_from_hidden(const torch::Tensor& hidden) const {
  if (!has_token_head())
    fail("[", info_.architecture, "] expected a model with an LM head, found none; token logits ",
         "need a *ForCausalLM, *ForMaskedLM or GPT2LMHeadModel checkpoint");
  return token_head(final_norm(hidden));
}

double BlockModel::weight_bytes_read_per_token(
    const std::vector<torch::Tensor>& lookup_tables) const {
  const auto is_lookup = [&](const torch::Tensor& t) {
    return std::any_of(lookup_tables.begin(), lookup_tables.end(),
                       [&](const torch::Tensor& table) { return table.is_same(t); });
  };
  double bytes = 0;
  for (const auto& [name, t] : params_) {
    // Fused projections register their parts as views of one buffer: each counts as its slice.
    bytes += static_cast<double>(is_lookup(t) ? t.size(-1) : t.numel()) * t.element_size();
  }
  const auto head = lm_head_weight();
  if (head.defined() && is_lookup(head))
    bytes += static_cast<double>(head.numel()) * head.element_size();
  return bytes;
}

}  // namespace reft
