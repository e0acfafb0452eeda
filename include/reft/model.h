#pragma once
/// Frozen transformer models loaded from HuggingFace folders.
///
/// Dimension legend: B batch, T tokens in this call, S = past + T key positions, D hidden,
/// H heads, Hkv key/value heads, Dh head dim, L layers, V vocab.

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace reft {

/// The places in every layer where interventions attach (pyvene's component names).
enum class Component : uint8_t {
  kBlockInput,       // residual stream entering layer l
  kAttentionInput,   // input of the attention module (after the pre-norm in pre-LN models)
  kAttentionOutput,  // output of the attention module (after the output projection)
  kMlpInput,         // input of the MLP (after its pre-norm in pre-LN models)
  kMlpOutput,        // output of the MLP
  kBlockOutput,      // residual stream leaving layer l (the ReFT default)
};
inline constexpr int kNumComponents = 6;

/// "block_output" etc.
std::string_view component_name(Component component);
/// Parses a component name; throws UsageError listing the valid names.
Component parse_component(std::string_view name);

/// Receives the hidden state (B, T, D) at each site of a forward and returns it, edited or not.
/// `wants` is asked first, so a site with nothing attached costs one virtual call.
struct ForwardInput;
class SiteHooks {
 public:
  virtual ~SiteHooks() = default;
  /// Called once at the start of every forward that carries these hooks (before any site), with
  /// the forward's input: the batch shape, mask and cache state (past = cache->length).
  virtual void begin_forward(const ForwardInput& input) {}
  virtual bool wants(int layer, Component component) const = 0;
  virtual torch::Tensor at_site(int layer, Component component, const torch::Tensor& hidden) = 0;
};

/// Key/value cache of a decoder. Created by Model::new_cache; holds `capacity` positions per row.
struct KVCache {
  std::vector<torch::Tensor> keys, values;  // per layer (B, Hkv, capacity, Dh)
  torch::Tensor mask;                       // (B, length) int64: 1 = real token, 0 = padding
  int64_t length = 0;                       // filled positions
  int64_t capacity() const { return keys.empty() ? 0 : keys[0].size(2); }
  int64_t batch() const { return keys.empty() ? 0 : keys[0].size(0); }
};

/// Which logits a forward computes. Training needs them only where labels are; generation only
/// at the last position; the LM head is the largest single matmul of a small model.
enum class LogitsMode { kAll, kLast, kSelected, kNone };

struct ForwardInput {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor attention_mask;  // (B, T) 1 = real token; undefined = all real. Covers this call
                                 // only: with a cache, the past mask is remembered in the cache
  torch::Tensor position_ids;    // (B, T); undefined = count of real tokens before each position
  torch::Tensor token_type_ids;  // (B, T) encoders only; undefined = zeros
  KVCache* cache = nullptr;      // decoders: append this call's keys/values and attend to the past
  SiteHooks* hooks = nullptr;
  bool output_hidden_states = false;
  LogitsMode logits = LogitsMode::kAll;
  torch::Tensor logits_index;  // kSelected: (N) flat indices b·T + t
  /// Run only layers [0, stop_layer) and skip the head (feature collection); -1 = all.
  int stop_layer = -1;
  /// Resume from a cached residual stream: `start_hidden` (B, T, D) is the output of block
  /// start_layer − 1 = the block input of layer `start_layer` (frozen-prefix caching; every
  /// family). The block_output site of layer start_layer − 1 fires on it first. Undefined =
  /// embeddings.
  int start_layer = 0;
  torch::Tensor start_hidden;
};

struct ForwardOutput {
  torch::Tensor logits;  // (B, T, V) for kAll, (B, V) for kLast, (N, V) for kSelected
  /// HF `output_hidden_states`: L+1 tensors (B, T, D); entry 0 is the embedding output and the
  /// last one has the final norm applied (decoders). Only when requested.
  std::vector<torch::Tensor> hidden_states;
  torch::Tensor last_block;   // raw output of the last block run, before any final norm
  torch::Tensor last_hidden;  // what the head sees (final-normed for decoders)
  /// Encoders: the rows a sequence-classification head reads, (B, D) = last_hidden[:, 0] (the
  /// `[CLS]` / `<s>` token, before any pooler); `Model::classify(pooled)` gives the logits.
  /// Filled whenever an encoder forward runs all layers; undefined for decoders.
  torch::Tensor pooled;
};

/// The head a model carries. `causal` in ModelInfo tells decoders from encoders.
enum class ModelKind {
  kCausalLM,                // next-token logits (B, T, V)
  kMaskedLM,                // MLM logits (B, T, V)
  kEncoder,                 // no head: hidden states only (BertModel, RobertaModel, GPT2Model)
  kSequenceClassification,  // logits (B, num_labels) from the first token
};

/// Static description of a loaded model.
struct ModelInfo {
  std::string architecture;  // architectures[0] of config.json
  std::string model_type;
  ModelKind kind = ModelKind::kCausalLM;
  bool causal = true;  // decoder-only (causal attention, KV cache)
  int64_t hidden_size = 0, num_layers = 0, vocab_size = 0;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0, intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t num_labels = 0;  // sequence-classification heads
  std::optional<int64_t> bos_token_id, pad_token_id;
  std::vector<int64_t> eos_token_ids;  // generation_config.json first, else config.json
  std::string stored_dtype;            // dtype of the checkpoint tensors ("F32", "BF16", mixed)
  torch::Dtype dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
  std::string fingerprint;  // identifies config + weights; adapters record it
};

struct LoadOptions {
  torch::Dtype dtype = torch::kFloat32;  // compute dtype; weights are converted on load
  torch::Device device = torch::kCPU;
};

/// What a forward costs, as the architecture counts it; benchmarks report speed as a ratio of
/// these counts to this machine's ceilings. FLOPs count a multiply-add as 2.
struct ForwardCost {
  int64_t num_layers = 0;      // L
  double layer_flops = 0;      // the linear maps of one layer, per token
  double attention_flops = 0;  // q·kᵀ and p·v of one layer, per query token and key attended
  double head_flops = 0;       // the output head (LM, MLM or classification), per output row
  double weight_bytes = 0;     // weight bytes one token's forward reads (one decode step):
                               // every layer, the final norm and head, one row per embedding

  /// FLOPs of a forward over a (B, T) batch with `past` cached keys per row, running layers
  /// [first_layer, L) and the head on `head_rows` rows. Attention is counted as computed, over
  /// every key of the window (past + T per query, as PaLM and Megatron count it; the causal mask
  /// hides half the scores but the products are still formed).
  double flops(int64_t B, int64_t T, int64_t past, int64_t head_rows,
               int64_t first_layer = 0) const {
    const double tokens = static_cast<double>(B) * T;
    const double per_layer = layer_flops * tokens + attention_flops * tokens * (past + T);
    return static_cast<double>(num_layers - first_layer) * per_layer + head_flops * head_rows;
  }
};

/// A frozen model. Parameters never require grad; forward is safe to call from one thread at a
/// time (it caches rotary tables).
class Model {
 public:
  virtual ~Model() = default;
  const ModelInfo& info() const { return info_; }

  /// One forward pass; see ForwardInput. Autograd records only what depends on tensors that
  /// require grad (interventions), so the frozen prefix costs no graph memory.
  virtual ForwardOutput forward(const ForwardInput& input) = 0;

  /// An empty cache for `batch` rows and up to `capacity` positions (decoders only).
  virtual KVCache new_cache(int64_t batch, int64_t capacity) const;

  /// The weights under their HF names (as in the checkpoint), in load order.
  const std::vector<std::pair<std::string, torch::Tensor>>& parameters() const { return params_; }
  int64_t num_parameters() const;

  /// The output head weight (V, D) of an LM; used for logits at arbitrary hidden states.
  virtual torch::Tensor lm_head_weight() const { return {}; }

  /// Applies the final norm + LM head to hidden states before the final norm (…, D), e.g.
  /// ForwardOutput::last_block → (…, V) (decoders and MLM). Throws reft::Error without a head.
  virtual torch::Tensor logits_from_hidden(const torch::Tensor& hidden) const = 0;

  /// FLOPs per token and weight bytes of this architecture (see ForwardCost).
  virtual ForwardCost forward_cost() const = 0;

  /// Applies the checkpoint's own sequence-classification head (BERT: pooler → classifier;
  /// RoBERTa: classifier.dense → tanh → out_proj) to pooled rows (N, D), e.g. ForwardOutput::pooled
  /// or intervened first-token states → (N, num_labels). The head's weights are in parameters()
  /// under their HF names (`classifier.*`, `bert.pooler.*`) for a trainer to copy. Throws
  /// reft::Error for models without a classification head.
  virtual torch::Tensor classify(const torch::Tensor& pooled) const;

 protected:
  ModelInfo info_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
};

/// Loads `dir` (config.json + weights; generation_config.json when present). Dispatches on
/// config.json's architectures[0]; unknown architectures and unsupported config values are
/// reft::Error naming the file and the field.
std::unique_ptr<Model> load_model(const std::filesystem::path& dir,
                                  const LoadOptions& options = {});

/// The architectures load_model understands.
std::vector<std::string> supported_architectures();

}  // namespace reft
