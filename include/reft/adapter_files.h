#pragma once
/// The torch-free half of reading an adapter directory: `reft_config.json` checked and the
/// `interventions.safetensors` it pairs with located and verified. load_adapter() (reft/adapter.h)
/// builds the interventions on top; the fuzz target fuzz/adapter_fuzzer.cpp calls it without
/// libtorch.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace reft {

inline constexpr const char* kAdapterConfigFile = "reft_config.json";
inline constexpr const char* kAdapterTensorFile = "interventions.safetensors";
/// The newest reft_config.json format this reft reads and the one it writes.
inline constexpr int kAdapterFormatVersion = 1;

/// Reads only reft_config.json (for inspection): a JSON object with "format": "reft-adapter", an
/// integer "version" this reft understands, and "base_model" and "reft" objects. Throws
/// reft::Error naming the file.
nlohmann::json read_adapter_config(const std::filesystem::path& dir);

/// The adapter's interventions.safetensors: a file inside `dir` (not a symlink out of it) whose
/// checksum equals the config's "tensors_checksum" when it records one. Throws reft::Error when
/// the file is missing or was written by another save than the config.
std::filesystem::path adapter_tensor_file(const std::filesystem::path& dir,
                                          const nlohmann::json& config);

/// The checksum save_adapter() records (FNV-1a of the file's bytes, 16 hex digits).
std::string adapter_file_checksum(const std::filesystem::path& path);

}  // namespace reft
