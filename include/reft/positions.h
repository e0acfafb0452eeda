#pragma once
/// Position specs: which prompt tokens an intervention edits.
///
/// Specs follow pyreft: "fN+lM" (first N and last M prompt tokens), "fN", "lM", plus "all" (every
/// prompt token) and explicit lists "0,3,5" (negative = from the end: "-1" is the last prompt
/// token). N and M are clamped to ⌊n/2⌋ of the prompt length n, as pyreft does. Positions are
/// computed per row on the unpadded prompt, so the padding side never matters.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace reft {

/// Which part of a spec an intervention receives (pyreft's untied layout splits f and l).
enum class PositionPart { kAll, kPrefix, kSuffix };
std::string_view position_part_name(PositionPart part);
PositionPart parse_position_part(std::string_view name);

struct PositionSpec {
  enum class Kind { kFirstLast, kAll, kExplicit };
  Kind kind = Kind::kFirstLast;
  int64_t first = 0, last = 1;              // kFirstLast
  std::vector<int64_t> explicit_positions;  // kExplicit
  std::string text;                         // as given

  /// Parses a spec; throws UsageError naming the spec for anything malformed.
  static PositionSpec parse(std::string_view text);
  /// Whether pyreft would split this spec into prefix and suffix interventions when untied.
  bool splits() const { return kind == Kind::kFirstLast && first > 0 && last > 0; }

  /// The positions (0-based within the prompt) for a prompt of n tokens. Duplicates can occur only
  /// in explicit lists; out-of-range explicit positions are a UsageError.
  std::vector<int64_t> resolve(int64_t n, PositionPart part = PositionPart::kAll) const;
};

/// pyreft.get_intervention_locations, bit for bit (including its padding of short lists with −1
/// or last_position): for tests and for building pyreft-identical batches.
std::vector<std::vector<int64_t>> pyreft_intervention_locations(
    int64_t last_position, std::string_view positions, bool share_weights,
    int64_t num_interventions, std::string_view pad_mode = "first");

}  // namespace reft
