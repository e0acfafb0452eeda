// The torch-free half of reading a model folder: config.json fields with errors that name the file
// and the field, and the rotary settings.

#include "reft/model_config.h"

#include <cmath>

#include "reft/error.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

// ---- ConfigReader ----

const nlohmann::json& ConfigReader::at(const std::string& key) const {
  auto it = json_.find(key);
  if (it == json_.end() || it->is_null())
    fail("[", where_, "] field '", key, "': required but missing");
  return *it;
}

void ConfigReader::bad(const std::string& key, const std::string& expected) const {
  auto it = json_.find(key);
  fail("[", where_, "] field '", key, "': expected ", expected, ", found ",
       it == json_.end() ? std::string("nothing") : json_excerpt(*it, 120));
}

bool ConfigReader::has(const std::string& key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

int64_t ConfigReader::integer(const std::string& key) const {
  const auto& v = at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  // A float that is a whole number (HF configs sometimes hold 4096.0), inside int64's range: a
  // cast of 1e300 would be undefined behaviour.
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
      std::fabs(v.get<double>()) < 9.0e18)
    return static_cast<int64_t>(v.get<double>());
  bad(key, "an integer");
}

int64_t ConfigReader::integer_or(const std::string& key, int64_t fallback) const {
  return has(key) ? integer(key) : fallback;
}

int64_t ConfigReader::positive(const std::string& key) const {
  // Sizes, counts and lengths: anything past 2^24 is no real model's (the largest vocabularies
  // are ~2^18, hidden sizes ~2^14) and is refused before any tensor is sized from it.
  constexpr int64_t kMaxSize = int64_t{1} << 24;
  const int64_t v = integer(key);
  if (v <= 0) bad(key, "a positive integer");
  if (v > kMaxSize) bad(key, "a positive integer of at most " + std::to_string(kMaxSize));
  return v;
}

int64_t ConfigReader::positive_any(std::initializer_list<const char*> keys) const {
  for (const char* k : keys)
    if (has(k)) return positive(k);
  std::string names;
  for (const char* k : keys) names += (names.empty() ? "" : " or ") + std::string(k);
  fail("[", where_, "] field '", names, "': required but missing");
}

double ConfigReader::number(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_number()) bad(key, "a number");
  return v.get<double>();
}

double ConfigReader::number_or(const std::string& key, double fallback) const {
  return has(key) ? number(key) : fallback;
}

bool ConfigReader::boolean_or(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = at(key);
  if (!v.is_boolean()) bad(key, "true or false");
  return v.get<bool>();
}

std::string ConfigReader::string_or(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const auto& v = at(key);
  if (!v.is_string()) bad(key, "a string");
  return v.get<std::string>();
}

std::vector<int64_t> ConfigReader::integer_list(const std::string& key) const {
  if (!has(key)) return {};
  const auto& v = at(key);
  std::vector<int64_t> out;
  if (v.is_number_integer()) return {v.get<int64_t>()};
  if (!v.is_array()) bad(key, "an integer or a list of integers");
  for (const auto& x : v) {
    if (!x.is_number_integer()) bad(key, "an integer or a list of integers");
    out.push_back(x.get<int64_t>());
  }
  return out;
}

// ---- the configuration files ----

std::string ModelConfigFiles::architecture() const {
  return config.json()["architectures"][0].get<std::string>();
}

ModelConfigFiles read_model_config(const fs::path& dir) {
  if (!fs::is_directory(dir)) {
    if (!fs::exists(dir)) fail("[", dir.string(), "] model directory not found");
    fail("[", dir.string(), "] expected a model directory, found a file");
  }
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path))
    fail("[", config_path.string(), "] file not found; not a HuggingFace model folder");
  auto json = read_json_file(config_path);
  if (!json.is_object())
    fail("[", config_path.string(), "] expected a JSON object, found ", json.type_name());
  auto archs = json.find("architectures");
  if (archs == json.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    fail("[", config_path.string(),
         "] field 'architectures': expected a list with the model class name, found ",
         archs == json.end() ? std::string("nothing") : std::string(archs->type_name()));
  std::optional<ConfigReader> generation;
  const fs::path gen_path = dir / "generation_config.json";
  if (fs::exists(gen_path)) {
    auto g = read_json_file(gen_path);
    if (!g.is_object())
      fail("[", gen_path.string(), "] expected a JSON object, found ", g.type_name());
    generation.emplace(std::move(g), gen_path.string());
  }
  return {ConfigReader(std::move(json), config_path.string()), std::move(generation)};
}

// ---- rotary settings ----

RopeConfig read_rope_config(const ConfigReader& config, int64_t head_dim) {
  RopeConfig out;
  out.theta = config.number_or("rope_theta", 10000.0);
  if (!std::isfinite(out.theta) || out.theta <= 0) config.bad("rope_theta", "a positive number");
  const double partial = config.number_or("partial_rotary_factor", 1.0);
  // Compared in double: a cast of head_dim · 1e300 to an integer would be undefined behaviour.
  const double rotary_dims = static_cast<double>(head_dim) * partial;
  if (!std::isfinite(rotary_dims) || std::floor(rotary_dims) != static_cast<double>(head_dim))
    fail("[", config.where(), "] field 'partial_rotary_factor': expected 1.0, found ", partial,
         "; partial rotary embeddings are not supported");

  if (!config.has("rope_scaling")) return out;
  const auto& scaling = config.json().at("rope_scaling");
  if (!scaling.is_object()) config.bad("rope_scaling", "an object or null");
  std::string type;
  if (scaling.contains("rope_type") && scaling["rope_type"].is_string())
    type = scaling["rope_type"];
  else if (scaling.contains("type") && scaling["type"].is_string())
    type = scaling["type"];
  const ConfigReader s(scaling, config.where() + "] [rope_scaling");
  // The math divides by each of these: zero, a negative or a non-finite value is no scaling.
  const auto positive_number = [&](const char* key) {
    const double v = s.number(key);
    if (!std::isfinite(v) || v <= 0) s.bad(key, "a positive number");
    return v;
  };
  if (type == "default") return out;
  if (type == "linear") {
    out.scaling = RopeConfig::Scaling::kLinear;
    out.factor = positive_number("factor");
    return out;
  }
  if (type == "llama3") {
    out.scaling = RopeConfig::Scaling::kLlama3;
    out.factor = positive_number("factor");
    out.low_freq_factor = positive_number("low_freq_factor");
    out.high_freq_factor = positive_number("high_freq_factor");
    out.original_max_position_embeddings = positive_number("original_max_position_embeddings");
    if (out.high_freq_factor <= out.low_freq_factor)
      s.bad("high_freq_factor",
            "a number above low_freq_factor (" + std::to_string(out.low_freq_factor) + ")");
    return out;
  }
  fail("[", config.where(),
       "] field 'rope_scaling': expected rope_type 'linear' or 'llama3', found ",
       json_excerpt(type.empty() ? scaling : nlohmann::json(type), 120),
       "; this scaling is not supported");
}

}  // namespace reft
