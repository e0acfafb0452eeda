#pragma once
// The forward every architecture shares: input checks, the attention mask and KV cache, site
// hooks, resuming from a cached layer (start_layer), stopping early (stop_layer), hidden states
// and the logits modes. An architecture derives from BlockModel and supplies only its layer math
// (embed, block, final_norm, token_head); see docs/adding-a-model.md.
//
// Dimension legend: B batch, T tokens in this call, S key positions (past + T), D hidden, L layers,
// V vocab.

#include <torch/torch.h>

#include "reft/model.h"

namespace reft {

/// What the blocks of one forward share. Built by BlockModel::forward; read by the family's
/// embed/block methods.
struct BlockContext {
  const ForwardInput& input;
  int64_t batch = 0, tokens = 0;  // B, T
  int64_t past = 0;               // positions already in the cache (0 without one)
  KVCache* cache = nullptr;       // decoders: append keys/values at [past, past + T)
  torch::Tensor mask;             // (B, T) int64 of this call: 1 = real token
  torch::Tensor key_mask;         // (B, S) int64: the cache's mask followed by `mask`
  torch::Tensor bias;             // (B, 1, T, S) additive attention bias; undefined = none needed
  torch::Tensor positions;        // (B, T) decoders: input.position_ids or default_positions
  torch::Tensor cos, sin;         // rotary tables (B, 1, T, Dh), for families that use them
  SiteHooks* hooks = nullptr;

  /// Passes x (B, T, D) through the hook at (layer, component), if one is attached.
  torch::Tensor site(int layer, Component component, const torch::Tensor& x) const {
    return hooks && hooks->wants(layer, component) ? hooks->at_site(layer, component, x) : x;
  }
};

/// How a family's stack attends.
struct StackOptions {
  int64_t sliding_window = 0;  // > 0: keys older than this many positions are hidden (Mistral)
  bool final_norm = true;      // a norm between the last block and the head (pre-LN decoders)
};

/// A model made of an embedding, L blocks and an optional head. forward() is the one runner.
///
/// The runner's contract, for every family:
/// - sites: block_input and block_output fire here; `block` fires the four inner ones.
/// - resume: with start_hidden, the embedding is skipped, the block_output site of layer
///   start_layer − 1 fires on start_hidden, then layers start_layer … run.
/// - hidden_states: entry 0 is the embedding output (or start_hidden), then each block output;
///   with all layers run, the last entry is final_norm(h).
/// - logits: the token head on final-normed rows (kAll, kLast, kSelected), or the classification
///   head on the first token (sequence classification, any mode but kNone).
class BlockModel : public Model {
 public:
  ForwardOutput forward(const ForwardInput& input) final;
  torch::Tensor logits_from_hidden(const torch::Tensor& hidden) const final;

 protected:
  explicit BlockModel(StackOptions options = {}) : stack_(options) {}

  /// Per-forward tables the blocks read (e.g. rotary cos/sin into ctx); runs before embed.
  virtual void prepare(BlockContext& ctx) {}
  /// The embedding output (B, T, D) of ctx.input.input_ids.
  virtual torch::Tensor embed(const BlockContext& ctx) = 0;
  /// Layer `layer` from its block input h (B, T, D) to its output, firing the attention_input,
  /// attention_output, mlp_input and mlp_output sites through ctx.site.
  virtual torch::Tensor block(int layer, const torch::Tensor& h, const BlockContext& ctx) = 0;
  /// The norm before the head (StackOptions::final_norm); identity otherwise.
  virtual torch::Tensor final_norm(const torch::Tensor& h) const { return h; }
  /// Whether the model has a token head (LM or MLM), and that head on final-normed rows
  /// (…, D) → (…, V).
  virtual bool has_token_head() const = 0;
  virtual torch::Tensor token_head(const torch::Tensor& rows) const = 0;

  /// Bytes of every parameter, counting each of `lookup_tables` (embeddings) as the one row a
  /// token reads, plus the token head once more when it is tied to one of them (it is then read
  /// in full): what one decode step streams.
  double weight_bytes_read_per_token(const std::vector<torch::Tensor>& lookup_tables) const;

  StackOptions stack_;
};

}  // namespace reft
