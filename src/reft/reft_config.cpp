#include "reft/reft_config.h"

#include <charconv>

#include "reft/error.h"
#include "reft/runtime.h"
#include "util/files.h"

namespace reft {
namespace {
// Far more interventions than any model has sites for (layers × components × position parts);
// building each one costs time and memory, so a count taken from a file is checked first.
constexpr size_t kMaxInterventions = 4096;
}  // namespace

ReftConfig ReftConfig::build(const std::vector<int64_t>& layers, Component component,
                             const InterventionOptions& options, const std::string& positions,
                             bool share_weights) {
  ReftConfig config;
  config.positions = positions;
  config.share_weights = share_weights;
  const auto spec = PositionSpec::parse(positions);
  const size_t count = layers.size() * (share_weights || !spec.splits() ? 1 : 2);
  if (count > kMaxInterventions)
    usage_fail("[--layers] expected at most ", kMaxInterventions,
               " interventions (layers x position parts), found ", count);
  const auto add = [&](PositionPart part) {
    for (int64_t layer : layers)
      config.representations.push_back({layer, component, options, part});
  };
  if (share_weights || !spec.splits()) {
    add(PositionPart::kAll);
  } else {
    add(PositionPart::kPrefix);
    add(PositionPart::kSuffix);
  }
  return config;
}

std::vector<int64_t> parse_layers(std::string_view spec, int64_t num_layers) {
  std::vector<int64_t> out;
  const auto bad = [&](const std::string& why) {
    usage_fail("[--layers] expected layer indices like \"3;9\", \"0-4\" or all, found ",
               json_excerpt(nlohmann::json(std::string(spec))), why);
  };
  const auto in_range = [&](int64_t l) {
    if (l < 0 || l >= num_layers)
      usage_fail("[--layers] layer ", l, " is out of range: the model has ", num_layers,
                 " layers (0..", num_layers - 1, ")");
  };
  if (spec == "all") {
    for (int64_t l = 0; l < num_layers; ++l) out.push_back(l);
    return out;
  }
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find_first_of(";,", start);
    std::string_view part =
        spec.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    const auto parse = [&](std::string_view s) {
      int64_t v = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) bad("");
      return v;
    };
    const size_t dash = part.find('-', 1);
    const int64_t a = parse(dash == std::string_view::npos ? part : part.substr(0, dash));
    const int64_t b = dash == std::string_view::npos ? a : parse(part.substr(dash + 1));
    if (b < a) bad(": a range must ascend");
    // Both ends in range and the list bounded before anything is added: "0-3000000000" from a
    // file ran out of memory listing layers that were refused afterwards.
    in_range(a);
    in_range(b);
    if (out.size() + static_cast<size_t>(b - a + 1) > kMaxInterventions)
      usage_fail("[--layers] expected at most ", kMaxInterventions, " layers, found ",
                 json_excerpt(nlohmann::json(std::string(spec))));
    for (int64_t l = a; l <= b; ++l) out.push_back(l);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

namespace {

// Intervention options shared by both JSON forms.
InterventionOptions read_options(const nlohmann::json& j, const std::string& where,
                                 InterventionOptions o) {
  const auto get = [&](const char* key) -> const nlohmann::json* {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  };
  const auto need = [&](bool ok, const char* key, const char* what) {
    if (!ok)
      usage_fail("[", where, "] field '", key, "': expected ", what, ", found ",
                 j.contains(key) ? j[key].type_name() : "another field's value");
  };
  if (auto v = get("intervention") ? get("intervention") : get("type")) {
    need(v->is_string(), v == get("type") ? "type" : "intervention", "an intervention type name");
    o.type = parse_intervention_type(v->get<std::string>());
  }
  if (auto v = get("low_rank_dimension") ? get("low_rank_dimension") : get("rank")) {
    need(v->is_number_integer(), get("low_rank_dimension") ? "low_rank_dimension" : "rank",
         "an integer");
    o.low_rank_dimension = v->get<int64_t>();
  }
  if (auto v = get("dropout")) {
    need(v->is_number(), "dropout", "a number");
    o.dropout = v->get<double>();
  }
  if (auto v = get("act_fn")) {
    need(v->is_string(), "act_fn", "a string");
    o.act_fn = v->get<std::string>();
  }
  if (auto v = get("add_bias")) {
    need(v->is_boolean(), "add_bias", "true or false");
    o.add_bias = v->get<bool>();
  }
  if (auto v = get("dropout_on_output")) {
    need(v->is_boolean(), "dropout_on_output", "true or false");
    o.dropout_on_output = v->get<bool>();
  }
  if (auto v = get("orthogonal")) {
    need(v->is_string(), "orthogonal", "lean or pyreft");
    o.orthogonal = parse_orthogonal_mode(v->get<std::string>());
  }
  if (auto v = get("dtype")) {
    need(v->is_string(), "dtype", "f32, bf16 or f16");
    o.dtype = parse_dtype(v->get<std::string>());
  }
  if (auto v = get("interchange_dim")) {
    need(v->is_number_integer(), "interchange_dim", "an integer");
    o.interchange_dim = v->get<int64_t>();
  }
  if (auto v = get("constant_source")) {
    need(v->is_boolean(), "constant_source", "true or false");
    o.constant_source = v->get<bool>();
  }
  return o;
}

Component read_component(const nlohmann::json& j, const std::string& where) {
  auto it = j.find("component");
  if (it == j.end() || it->is_null()) return Component::kBlockOutput;
  if (!it->is_string())
    usage_fail("[", where, "] field 'component': expected a string, found ", json_excerpt(*it));
  return parse_component(it->get<std::string>());
}

}  // namespace

ReftConfig ReftConfig::from_json(const nlohmann::json& j, const std::string& where,
                                 int64_t num_layers) {
  if (!j.is_object()) usage_fail("[", where, "] expected a JSON object, found ", j.type_name());
  ReftConfig config;
  if (auto it = j.find("positions"); it != j.end() && !it->is_null()) {
    if (!it->is_string())
      usage_fail("[", where, "] field 'positions': expected a spec like \"f1+l1\", found ",
                 json_excerpt(*it));
    config.positions = it->get<std::string>();
  }
  if (auto it = j.find("share_weights"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean())
      usage_fail("[", where, "] field 'share_weights': expected true or false, found ",
                 json_excerpt(*it));
    config.share_weights = it->get<bool>();
  }
  PositionSpec::parse(config.positions);
  const InterventionOptions defaults = read_options(j, where, InterventionOptions{});
  if (auto reps = j.find("representations"); reps != j.end()) {
    // pyreft allows a single dict as well as a list.
    const nlohmann::json list = reps->is_object() ? nlohmann::json::array({*reps}) : *reps;
    if (!list.is_array() || list.empty())
      usage_fail("[", where, "] field 'representations': expected a non-empty list of objects");
    if (list.size() > kMaxInterventions)
      usage_fail("[", where, "] field 'representations': expected at most ", kMaxInterventions,
                 " interventions, found ", list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& r = list[i];
      const std::string at = where + "] [representations[" + std::to_string(i) + "]";
      if (!r.is_object()) usage_fail("[", at, "] expected an object, found ", r.type_name());
      RepresentationConfig rep;
      auto layer = r.find("layer");
      if (layer == r.end() || !layer->is_number_integer())
        usage_fail("[", at, "] field 'layer': expected an integer");
      rep.layer = layer->get<int64_t>();
      rep.component = read_component(r, at);
      rep.intervention = read_options(r, at, defaults);
      if (auto part = r.find("positions_part"); part != r.end() && part->is_string())
        rep.part = parse_position_part(part->get<std::string>());
      config.representations.push_back(rep);
    }
    return config;
  }
  auto layers = j.find("layers");
  if (layers == j.end()) usage_fail("[", where, "] expected 'representations' or 'layers'");
  std::vector<int64_t> ids;
  if (layers->is_array()) {
    for (const auto& l : *layers) {
      if (!l.is_number_integer())
        usage_fail("[", where, "] field 'layers': expected integers, found ", json_excerpt(l));
      ids.push_back(l.get<int64_t>());
    }
  } else if (layers->is_number_integer()) {
    ids.push_back(layers->get<int64_t>());
  } else if (layers->is_string()) {
    const std::string text = layers->get<std::string>();
    if (num_layers <= 0 && text == "all")
      usage_fail("[", where, "] field 'layers': \"all\" needs the model's layer count");
    ids = parse_layers(text, num_layers > 0 ? num_layers : std::numeric_limits<int32_t>::max());
  } else {
    usage_fail("[", where,
               "] field 'layers': expected a list, an integer or a string like \"3;9\"");
  }
  return build(ids, read_component(j, where), defaults, config.positions, config.share_weights);
}

nlohmann::json ReftConfig::to_json() const {
  nlohmann::json reps = nlohmann::json::array();
  for (const auto& r : representations) {
    const auto& o = r.intervention;
    reps.push_back({{"layer", r.layer},
                    {"component", std::string(component_name(r.component))},
                    {"intervention", std::string(intervention_type_name(o.type))},
                    {"low_rank_dimension", o.low_rank_dimension},
                    {"positions_part", std::string(position_part_name(r.part))},
                    {"dropout", o.dropout},
                    {"dropout_on_output", o.dropout_on_output},
                    {"act_fn", o.act_fn},
                    {"add_bias", o.add_bias},
                    {"orthogonal", std::string(orthogonal_mode_name(o.orthogonal))},
                    {"dtype", dtype_name(o.dtype)},
                    {"interchange_dim", o.interchange_dim}});
    // Written only when set, so configs without a stored source stay as before.
    if (o.constant_source) reps.back()["constant_source"] = true;
  }
  return {{"positions", positions}, {"share_weights", share_weights}, {"representations", reps}};
}

void ReftConfig::validate(const ModelInfo& model) const {
  if (representations.empty()) usage_fail("[reft config] expected at least one intervention");
  PositionSpec::parse(positions);
  for (const auto& r : representations) {
    if (r.layer < 0 || r.layer >= model.num_layers)
      usage_fail("[RepresentationConfig.layer] layer ", r.layer,
                 " is out of range: ", model.architecture, " has ", model.num_layers,
                 " layers (0..", model.num_layers - 1, ")");
    const int64_t rank = r.intervention.low_rank_dimension;
    if (rank < 1 || rank > model.hidden_size)
      usage_fail("[InterventionOptions.low_rank_dimension] expected a value in [1, ",
                 model.hidden_size, "] (the hidden size), found ", rank);
  }
}

}  // namespace reft
