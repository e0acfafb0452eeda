#pragma once
/// The torch-free half of reading a HuggingFace model folder: config.json (and
/// generation_config.json) read and checked, typed access to their fields, and the rotary settings.
/// load_model() (reft/model.h) builds the architecture on top; the fuzz target
/// fuzz/model_config_fuzzer.cpp calls these without libtorch.

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace reft {

/// Typed access to config.json. Every error reads "[<dir>/config.json] field '<key>': expected …".
class ConfigReader {
 public:
  ConfigReader(nlohmann::json json, std::string where)
      : json_(std::move(json)), where_(std::move(where)) {}

  bool has(const std::string& key) const;  // present and not null
  /// An integer (or a whole float inside int64's range, as some HF configs hold 4096.0).
  int64_t integer(const std::string& key) const;
  int64_t integer_or(const std::string& key, int64_t fallback) const;
  /// A size, count or length: an integer in [1, 2^24], so no tensor is sized from a huge value.
  int64_t positive(const std::string& key) const;
  double number(const std::string& key) const;
  double number_or(const std::string& key, double fallback) const;
  bool boolean_or(const std::string& key, bool fallback) const;
  std::string string_or(const std::string& key, const std::string& fallback) const;
  /// An integer or a list of integers (eos_token_id may be either).
  std::vector<int64_t> integer_list(const std::string& key) const;
  /// The first key present among `keys` (e.g. GPT-2's n_embd vs hidden_size); fails naming all.
  int64_t positive_any(std::initializer_list<const char*> keys) const;

  /// Throws reft::Error "[where] field 'key': expected <expected>, found <the value, shortened>".
  [[noreturn]] void bad(const std::string& key, const std::string& expected) const;
  const nlohmann::json& json() const { return json_; }
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& at(const std::string& key) const;
  nlohmann::json json_;
  std::string where_;
};

/// A model folder's configuration files, read and checked.
struct ModelConfigFiles {
  /// config.json: an object whose "architectures" is a non-empty list starting with a string.
  ConfigReader config;
  /// generation_config.json (an object) when the folder has one.
  std::optional<ConfigReader> generation_config;
  /// architectures[0] of config.json, e.g. "LlamaForCausalLM".
  std::string architecture() const;
};

/// Reads `dir`/config.json and, when present, `dir`/generation_config.json. Throws reft::Error
/// naming the folder or the file: no such folder, no config.json, malformed JSON, not an object,
/// no architecture name.
ModelConfigFiles read_model_config(const std::filesystem::path& dir);

/// Rotary position embedding settings (LLaMA family): rope_theta, partial_rotary_factor and
/// rope_scaling ("linear" or "llama3"; "default" and null mean none).
struct RopeConfig {
  enum class Scaling { kNone, kLinear, kLlama3 };
  double theta = 10000.0;
  Scaling scaling = Scaling::kNone;
  double factor = 1.0;                             // kLinear, kLlama3
  double low_freq_factor = 1.0;                    // kLlama3
  double high_freq_factor = 4.0;                   // kLlama3
  double original_max_position_embeddings = 8192;  // kLlama3
};

/// Reads the rotary settings for heads of `head_dim`. Throws reft::Error naming config.json and
/// the field for a partial rotary factor other than 1, an unknown scaling type, or a scaling
/// whose numbers are missing, not finite, or not positive where the math divides by them.
RopeConfig read_rope_config(const ConfigReader& config, int64_t head_dim);

}  // namespace reft
