// MistralForCausalLM: the LLaMA decoder with an optional sliding attention window.

#include "models/llama.h"

namespace reft {

std::unique_ptr<Model> load_mistral(const ModelSource& source) {
  LlamaVariant v;
  const auto& cfg = source.config;
  if (cfg.has("sliding_window")) {
    v.sliding_window = cfg.integer("sliding_window");
    if (v.sliding_window <= 0) cfg.bad("sliding_window", "a positive integer or null");
  }
  return build_llama_family(source, v);
}

}  // namespace reft
