#include "reft/positions.h"

#include <algorithm>
#include <charconv>
#include <regex>

#include "reft/error.h"

namespace reft {

std::string_view position_part_name(PositionPart part) {
  switch (part) {
    case PositionPart::kAll:
      return "all";
    case PositionPart::kPrefix:
      return "prefix";
    case PositionPart::kSuffix:
      return "suffix";
  }
  return "all";
}

PositionPart parse_position_part(std::string_view name) {
  if (name == "all") return PositionPart::kAll;
  if (name == "prefix") return PositionPart::kPrefix;
  if (name == "suffix") return PositionPart::kSuffix;
  usage_fail("[positions part] expected all, prefix or suffix, found '", name, "'");
}

namespace {

bool parse_int(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

PositionSpec PositionSpec::parse(std::string_view text) {
  PositionSpec spec;
  spec.text = std::string(text);
  const auto bad = [&](const std::string& why) {
    usage_fail("[--position] expected fN+lM, fN, lM, all or a list like 0,3,-1, found '", text, "'",
               why);
  };
  if (text == "all") {
    spec.kind = Kind::kAll;
    return spec;
  }
  if (text.empty()) bad("");
  if (text[0] == 'f' || text[0] == 'l') {
    spec.kind = Kind::kFirstLast;
    spec.first = spec.last = 0;
    bool seen_f = false, seen_l = false;
    size_t start = 0;
    while (start <= text.size()) {
      const size_t plus = text.find('+', start);
      const std::string_view part = text.substr(
          start, plus == std::string_view::npos ? std::string_view::npos : plus - start);
      int64_t n = 0;
      if (part.size() < 2 || !parse_int(part.substr(1), n) || n < 0) bad("");
      if (part[0] == 'f' && !seen_f) {
        spec.first = n;
        seen_f = true;
      } else if (part[0] == 'l' && !seen_l) {
        spec.last = n;
        seen_l = true;
      } else {
        bad("");
      }
      if (plus == std::string_view::npos) break;
      start = plus + 1;
    }
    if (spec.first == 0 && spec.last == 0) bad(": it selects no position");
    return spec;
  }
  spec.kind = Kind::kExplicit;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    std::string_view part = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    int64_t n = 0;
    if (!parse_int(part, n)) bad("");
    spec.explicit_positions.push_back(n);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return spec;
}

std::vector<int64_t> PositionSpec::resolve(int64_t n, PositionPart part) const {
  std::vector<int64_t> out;
  if (n <= 0) return out;
  switch (kind) {
    case Kind::kAll:
      for (int64_t i = 0; i < n; ++i) out.push_back(i);
      return out;
    case Kind::kExplicit:
      for (int64_t p : explicit_positions) {
        const int64_t q = p < 0 ? n + p : p;
        if (q < 0 || q >= n)
          usage_fail("[--position] position ", p, " of '", text, "' is outside a prompt of ", n,
                     " tokens");
        out.push_back(q);
      }
      return out;
    case Kind::kFirstLast: {
      const int64_t f = std::min(first, n / 2), l = std::min(last, n / 2);
      if (part != PositionPart::kSuffix)
        for (int64_t i = 0; i < f; ++i) out.push_back(i);
      if (part != PositionPart::kPrefix)
        for (int64_t i = n - l; i < n; ++i) out.push_back(i);
      return out;
    }
  }
  return out;
}

std::vector<std::vector<int64_t>> pyreft_intervention_locations(int64_t last_position,
                                                                std::string_view positions,
                                                                bool share_weights,
                                                                int64_t num_interventions,
                                                                std::string_view pad_mode) {
  const auto spec = PositionSpec::parse(positions);
  if (spec.kind != PositionSpec::Kind::kFirstLast)
    usage_fail("[pyreft positions] expected an fN+lM spec, found '", positions, "'");
  const int64_t first_n = std::min(last_position / 2, spec.first);
  const int64_t last_n = std::min(last_position / 2, spec.last);
  const int64_t pad = pad_mode == "first" ? -1 : last_position;
  std::vector<int64_t> left, right;
  for (int64_t i = 0; i < first_n; ++i) left.push_back(i);
  for (int64_t i = last_position - last_n; i < last_position; ++i) right.push_back(i);
  // Clamped slots are padded back, so every list keeps the spec's length.
  const int64_t left_pad = spec.first - first_n, right_pad = spec.last - last_n;
  std::vector<std::vector<int64_t>> out;
  if (share_weights || first_n == 0 || last_n == 0) {
    std::vector<int64_t> all = left;
    all.insert(all.end(), right.begin(), right.end());
    all.insert(all.end(), left_pad + right_pad, pad);
    return std::vector<std::vector<int64_t>>(num_interventions, all);
  }
  left.insert(left.end(), left_pad, pad);
  right.insert(right.end(), right_pad, pad);
  if (left.size() > right.size()) right.resize(left.size(), pad);
  if (right.size() > left.size()) left.resize(right.size(), pad);
  for (int64_t i = 0; i < num_interventions / 2; ++i) out.push_back(left);
  for (int64_t i = 0; i < num_interventions / 2; ++i) out.push_back(right);
  return out;
}

}  // namespace reft
