#pragma once
// The LLaMA-family decoder (LLaMA, Mistral, Qwen2 share it; their files set the variant).

#include <memory>

#include "models/loading.h"

namespace reft {

/// What distinguishes the members of the family.
struct LlamaVariant {
  bool qkv_bias = false;       // Qwen2: biases on q/k/v; LLaMA: config attention_bias (all four)
  bool o_bias = false;         // LLaMA attention_bias also biases o_proj
  bool mlp_bias = false;       // LLaMA mlp_bias
  int64_t sliding_window = 0;  // Mistral; 0 = full attention
  bool tie_default = false;    // tie_word_embeddings when config.json omits it
};

std::unique_ptr<Model> build_llama_family(const ModelSource& source, const LlamaVariant& variant);

}  // namespace reft
