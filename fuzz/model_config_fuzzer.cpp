// libFuzzer target for a model folder's config.json and generation_config.json, through the
// torch-free layer under load_model (reft/model_config.h). The input is config.json, then (after a
// NUL byte) generation_config.json; no NUL: the folder has none. The files are read and checked as
// load_model reads them, then every field the architectures read is read with the accessor they
// use (each on its own, so one bad field does not hide the others), and the rotary settings as
// the LLaMA family reads them.
#include <cmath>
#include <string>

#include "fuzz_util.h"
#include "reft/error.h"
#include "reft/model_config.h"

namespace {

template <class F>
void field(F&& read) {
  try {
    read();
  } catch (const reft::Error&) {
  }
}

void read_fields(const reft::ConfigReader& c) {
  for (const char* k : {"hidden_size", "num_hidden_layers", "num_attention_heads",
                        "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size",
                        "max_position_embeddings", "n_inner", "num_labels", "type_vocab_size"})
    field([&] {
      const int64_t v = c.positive(k);
      if (v < 1 || v > (int64_t{1} << 24)) __builtin_trap();  // positive()'s contract
    });
  field([&] { c.positive_any({"n_embd", "hidden_size"}); });
  field([&] { c.positive_any({"n_positions", "max_position_embeddings"}); });
  for (const char* k : {"bos_token_id", "pad_token_id", "sliding_window"})
    field([&] { c.integer(k); });
  for (const char* k : {"max_position_embeddings", "pretraining_tp"})
    field([&] { c.integer_or(k, 0); });
  field([&] { c.integer_list("eos_token_id"); });
  for (const char* k : {"rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon"})
    field([&] { c.number_or(k, 1e-6); });
  for (const char* k : {"tie_word_embeddings", "attention_bias", "mlp_bias", "use_sliding_window",
                        "is_decoder", "add_cross_attention", "scale_attn_weights"})
    field([&] { c.boolean_or(k, false); });
  for (const char* k :
       {"model_type", "hidden_act", "activation_function", "position_embedding_type"})
    field([&] { c.string_or(k, ""); });
  // The LLaMA family's head size, then its rotary settings.
  field([&] {
    const int64_t heads = c.positive("num_attention_heads");
    const int64_t head_dim =
        c.has("head_dim") ? c.positive("head_dim") : c.positive("hidden_size") / heads;
    const auto rope = reft::read_rope_config(c, head_dim);
    if (!(rope.theta > 0) || !std::isfinite(rope.factor) || !(rope.factor > 0)) __builtin_trap();
    if (rope.scaling == reft::RopeConfig::Scaling::kLlama3 &&
        !(rope.high_freq_factor > rope.low_freq_factor && rope.low_freq_factor > 0))
      __builtin_trap();
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = reft::fuzz::scratch_dir();
  const auto parts = reft::fuzz::split_parts(data, size, 2);
  reft::fuzz::write_bytes(dir / "config.json", parts[0]);
  if (parts.size() > 1) reft::fuzz::write_bytes(dir / "generation_config.json", parts[1]);
  try {
    const auto files = reft::read_model_config(dir);
    (void)files.architecture();  // read_model_config's contract: a string (else json throws)
    read_fields(files.config);
    if (files.generation_config) {
      field([&] { files.generation_config->integer_list("eos_token_id"); });
      for (const char* k : {"bos_token_id", "pad_token_id"})
        field([&] { files.generation_config->integer(k); });
    }
  } catch (const reft::Error&) {
  }
  return 0;
}
