// Qwen2ForCausalLM: the LLaMA decoder with biases on the q/k/v projections.

#include "models/llama.h"
#include "reft/error.h"

namespace reft {

std::unique_ptr<Model> load_qwen2(const ModelSource& source) {
  const auto& cfg = source.config;
  // Qwen2 checkpoints ship use_sliding_window: false; windowed layers are not implemented.
  if (cfg.boolean_or("use_sliding_window", false))
    cfg.bad("use_sliding_window", "false (sliding-window Qwen2 layers are not supported)");
  LlamaVariant v;
  v.qkv_bias = true;
  return build_llama_family(source, v);
}

}  // namespace reft
