// The explicit list of architectures load_model understands: one line per architecture.

#include "models/loading.h"

namespace reft {

std::unique_ptr<Model> load_llama(const ModelSource&);
std::unique_ptr<Model> load_mistral(const ModelSource&);
std::unique_ptr<Model> load_qwen2(const ModelSource&);
std::unique_ptr<Model> load_gpt2_lm_head(const ModelSource&);
std::unique_ptr<Model> load_gpt2_model(const ModelSource&);
std::unique_ptr<Model> load_bert_model(const ModelSource&);
std::unique_ptr<Model> load_bert_masked_lm(const ModelSource&);
std::unique_ptr<Model> load_bert_classifier(const ModelSource&);
std::unique_ptr<Model> load_roberta_model(const ModelSource&);
std::unique_ptr<Model> load_roberta_masked_lm(const ModelSource&);
std::unique_ptr<Model> load_roberta_classifier(const ModelSource&);

const std::vector<ArchitectureEntry>& architecture_registry() {
  static const std::vector<ArchitectureEntry> entries = {
      {"LlamaForCausalLM", load_llama},
      {"MistralForCausalLM", load_mistral},
      {"Qwen2ForCausalLM", load_qwen2},
      {"GPT2LMHeadModel", load_gpt2_lm_head},
      {"GPT2Model", load_gpt2_model},
      {"BertModel", load_bert_model},
      {"BertForMaskedLM", load_bert_masked_lm},
      {"BertForSequenceClassification", load_bert_classifier},
      {"RobertaModel", load_roberta_model},
      {"RobertaForMaskedLM", load_roberta_masked_lm},
      {"RobertaForSequenceClassification", load_roberta_classifier},
  };
  return entries;
}

}  // namespace reft
