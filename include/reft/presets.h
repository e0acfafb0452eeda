#pragma once
/// Seeded random models written in real HuggingFace format: the built-in default for demos, the
/// benchmark shapes, and fixtures for tests that must run without downloaded models.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace reft {

/// The preset names: "tiny" (a small LLaMA with a byte-level BPE tokenizer trained on the built-in
/// corpus) and "llama-110m" (hidden 768, 12 layers, 12 heads, intermediate 2048, vocab 32000).
std::vector<std::string> model_presets();

/// The config.json of a preset.
nlohmann::json preset_config(const std::string& preset);

/// Writes config.json, generation_config.json, model.safetensors and the tokenizer files of a
/// preset into `dir` (created if needed). The same seed gives the same bytes.
void write_preset_model(const std::string& preset, const std::filesystem::path& dir,
                        uint64_t seed = 0);

/// Writes a random model for `config` (any architecture load_model supports) with weights drawn
/// from N(0, initializer_range) and norms at 1, as HF's _init_weights does. No tokenizer.
void write_random_model(const std::filesystem::path& dir, const nlohmann::json& config,
                        uint64_t seed = 0);

/// The text the tiny preset's tokenizer is trained on (short children's stories, written for reft).
const std::string& builtin_corpus();

}  // namespace reft
