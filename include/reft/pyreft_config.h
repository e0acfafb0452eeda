#pragma once
/// The torch-free half of reading a pyreft directory: `config.json` (a pyvene IntervenableConfig)
/// read and checked field by field, with component and class names still as text.
/// read_pyreft_adapter() (reft/pyreft.h) resolves the names, checks sorted_keys and loads the
/// intkey files on top; the fuzz target fuzz/pyreft_config_fuzzer.cpp calls it without libtorch.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace reft {

/// The most representations a pyreft config may list (ReftConfig's bound: each intervention costs
/// time and memory to build).
inline constexpr size_t kMaxPyreftRepresentations = 4096;

/// One RepresentationConfig of config.json, checked but not yet resolved.
struct PyreftRepresentationText {
  int64_t layer = 0;
  /// pyvene's component name as written ("block_output"); never a module path (checked).
  std::string component = "block_output";
  std::optional<int64_t> rank;  // low_rank_dimension, positive when present
  /// The intervention class string: the representation's own, else intervention_types'.
  std::string type_class;
};

/// A pyreft config.json, checked.
struct PyreftConfigText {
  std::filesystem::path path;                             // DIR/config.json
  nlohmann::json json;                                    // the whole file (an object)
  std::vector<PyreftRepresentationText> representations;  // 1 … kMaxPyreftRepresentations
  /// intervention_dimensions, one per representation (nullopt where null or absent); ≥ 0.
  std::vector<std::optional<int64_t>> dimensions;
};

/// Reads `dir`/config.json. Throws reft::Error naming the file and the field for anything
/// malformed: not an object, no representations, a mode other than "parallel", more than
/// kMaxPyreftRepresentations, unknown or unsupported RepresentationConfig fields (units other than
/// "pos", module-path components, groups, links, constant sources), missing class strings, or
/// malformed intervention_dimensions. Values echoed in messages are cut to a short prefix.
PyreftConfigText read_pyreft_config(const std::filesystem::path& dir);

}  // namespace reft
