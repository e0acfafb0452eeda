// The explicit list of architectures load_model understands: one line per architecture.

#include "models/loading.h"

namespace reft {

std::unique_ptr<Model> load_llama(const ModelSource&);
std::unique_ptr<Model> load_mistral(const ModelSource&);
std::unique_ptr<Model> load_qwen2(const ModelSource&);

const std::vector<ArchitectureEntry>& architecture_registry() {
  static const std::vector<ArchitectureEntry> entries = {
      {"LlamaForCausalLM", load_llama},
      {"MistralForCausalLM", load_mistral},
      {"Qwen2ForCausalLM", load_qwen2},
  };
  return entries;
}

}  // namespace reft
