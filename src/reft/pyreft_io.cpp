// Reading pyreft directories: config.json (pyvene IntervenableConfig) + intkey_<key>.bin, into a
// ReftConfig and interventions.
//
// Dimension legend: D hidden size, r rank, n interventions.

#include <map>
#include <set>

#include "io/paths.h"
#include "reft/error.h"
#include "reft/pyreft.h"
#include "reft/pyreft_common.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;
using nlohmann::json;
using pyreft::find;

namespace {

// RepresentationConfig's fields, in namedtuple order (pyvene 0.1.7; 0.0.x lacks latent_dim).
constexpr const char* kFields[] = {"layer",
                                   "component",
                                   "unit",
                                   "max_number_of_units",
                                   "low_rank_dimension",
                                   "intervention_type",
                                   "intervention",
                                   "subspace_partition",
                                   "group_key",
                                   "intervention_link_key",
                                   "moe_key",
                                   "source_representation",
                                   "hidden_source_representation",
                                   "latent_dim"};
constexpr size_t kNumFields = sizeof(kFields) / sizeof(kFields[0]);

// Fields that change what pyvene computes and that reft does not implement.
constexpr const char* kUnsupported[] = {"subspace_partition",    "group_key",
                                        "intervention_link_key", "moe_key",
                                        "source_representation", "hidden_source_representation"};

struct Representation {
  int64_t layer = 0;
  Component component = Component::kBlockOutput;
  std::optional<int64_t> rank;
  std::optional<std::string> type;  // class string, when the representation names one
};

Representation parse_representation(const json& r, const std::string& at) {
  std::map<std::string, json> f;
  if (r.is_array()) {
    if (r.size() > kNumFields)
      fail("[", at, "] expected at most ", kNumFields, " RepresentationConfig fields, found ",
           r.size());
    for (size_t i = 0; i < r.size(); ++i) f[kFields[i]] = r[i];
  } else if (r.is_object()) {
    for (const auto& [k, v] : r.items()) {
      bool known = false;
      for (const char* name : kFields) known = known || k == name;
      if (!known) fail("[", at, "] unexpected RepresentationConfig field '", k, "'");
      f[k] = v;
    }
  } else {
    fail("[", at, "] expected a RepresentationConfig list or object, found ", r.type_name());
  }
  const auto get = [&](const char* k) -> const json& {
    static const json null;
    auto it = f.find(k);
    return it == f.end() ? null : it->second;
  };
  Representation out;
  if (const auto& v = get("layer"); !v.is_null()) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      fail("[", at, "] layer: expected a non-negative integer, found ", v.dump());
    out.layer = v.get<int64_t>();
  }
  if (const auto& v = get("component"); !v.is_null()) {
    if (!v.is_string()) fail("[", at, "] component: expected a string, found ", v.dump());
    const auto c = v.get<std::string>();
    if (c.find('.') != std::string::npos)
      fail("[", at,
           "] component: expected a pyvene component name such as block_output, found the module "
           "path '",
           c, "' (pyreft with LoRA); reft does not support module-path components");
    try {
      out.component = parse_component(c);
    } catch (const UsageError& e) {
      fail("[", at,
           "] component: expected block_input, attention_input, attention_output, mlp_input, "
           "mlp_output or block_output, found '",
           c, "'");
    }
  }
  if (const auto& v = get("unit"); !v.is_null() && v != "pos")
    fail("[", at, "] unit: expected \"pos\", found ", v.dump(),
         "; reft intervenes on positions only");
  if (const auto& v = get("max_number_of_units"); !v.is_null() && v != 1)
    fail("[", at, "] max_number_of_units: expected 1, found ", v.dump());
  if (const auto& v = get("low_rank_dimension"); !v.is_null()) {
    if (!v.is_number_integer() || v.get<int64_t>() < 1)
      fail("[", at, "] low_rank_dimension: expected a positive integer, found ", v.dump());
    out.rank = v.get<int64_t>();
  }
  if (const auto& v = get("intervention_type"); !v.is_null()) {
    if (!v.is_string())
      fail("[", at, "] intervention_type: expected a class string, found ", v.dump());
    out.type = v.get<std::string>();
  }
  if (const auto& v = get("intervention"); !v.is_null())
    fail("[", at,
         "] intervention: expected null (pyvene saves the type in intervention_types), found ",
         v.dump());
  for (const char* k : kUnsupported)
    if (const auto& v = get(k); !v.is_null() && v != false)
      fail("[", at, "] ", k, ": expected null, found ", v.dump(),
           "; reft does not support pyvene's ", k);
  return out;
}

// "<class 'pyreft.interventions.LoreftIntervention'>" → kLoReFT.
InterventionType parse_class(const std::string& text, const std::string& at) {
  std::string_view s = text;
  if (s.starts_with("<class '")) s.remove_prefix(8);
  if (s.ends_with("'>")) s.remove_suffix(2);
  try {
    return parse_intervention_type(s);
  } catch (const UsageError&) {
    fail("[", at,
         "] expected a pyreft or pyvene intervention class that reft implements "
         "(LoreftIntervention, "
         "NoreftIntervention, DireftIntervention, NodireftIntervention, ConsreftIntervention, "
         "LobireftIntervention, LowRankRotatedSpaceIntervention, RotatedSpaceIntervention, "
         "BoundlessRotatedSpaceIntervention, SigmoidMaskIntervention, VanillaIntervention, "
         "AdditionIntervention, "
         "SubtractionIntervention, ZeroIntervention, CollectIntervention), found '",
         text, "'");
  }
}

// The hidden size D and rank r a state dict shows (0 where it shows none).
std::pair<int64_t, int64_t> dims_of(const TensorDict& state) {
  int64_t d = 0, r = 0;
  const auto take = [](int64_t& slot, int64_t v) {
    if (slot == 0) slot = v;
  };
  for (const auto& [name, t] : state) {
    const auto& s = t.shape;
    if (name == "embed_dim" && s.empty() && t.dtype == ScalarType::kInt64)
      take(d, pyreft::to_torch(t).item<int64_t>());
    if ((name == "rotate_layer" || name == pyreft::kOriginal) && s.size() == 2)
      take(d, s[0]), take(r, s[1]);
    if ((name == "weight" || name == "learned_source.weight" || name == "proj_layer.weight") &&
        s.size() == 2)
      take(r, s[0]), take(d, s[1]);
    if (name == "learned_source" && s.size() == 1) take(r, s[0]);
    if (name == "mask" && s.size() == 1) take(d, s[0]);
  }
  return {d, r};
}

// pyreft's examples/loreft layout without share_weights: the sites listed twice, [all…, all…].
bool is_doubled(const std::vector<Representation>& reps) {
  const size_t n = reps.size();
  if (n == 0 || n % 2) return false;
  for (size_t i = 0; i < n / 2; ++i)
    if (reps[i].layer != reps[i + n / 2].layer || reps[i].component != reps[i + n / 2].component)
      return false;
  return true;
}

// reft's own record (config.json "reft_config"), when it still describes these representations.
std::optional<ReftConfig> recorded_config(const json& j, const std::vector<Representation>& reps,
                                          const std::vector<InterventionType>& types,
                                          const std::string& where,
                                          std::vector<std::string>& notes) {
  auto it = j.find("reft_config");
  if (it == j.end() || it->is_null()) return std::nullopt;
  auto config = ReftConfig::from_json(*it, where + "] [reft_config");
  bool same = config.representations.size() == reps.size();
  for (size_t i = 0; same && i < reps.size(); ++i) {
    const auto& r = config.representations[i];
    same = r.layer == reps[i].layer && r.component == reps[i].component &&
           r.intervention.type == types[i];
  }
  if (!same) {
    notes.push_back("reft_config in config.json no longer matches its representations; ignored");
    return std::nullopt;
  }
  return config;
}

}  // namespace

bool is_pyreft_adapter(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec) || fs::exists(dir / "reft_config.json", ec) ||
      !fs::exists(dir / "config.json", ec))
    return false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.starts_with("intkey_") && name.ends_with(".bin")) return true;
  }
  try {
    const auto j = read_json_file(dir / "config.json");
    return j.is_object() && (j.contains("representations") || j.contains("intervention_types"));
  } catch (const Error&) {
    return false;
  }
}

namespace {
PyreftAdapter read_pyreft_checked(const fs::path& dir, const PyreftReadOptions& options);
}  // namespace

PyreftAdapter read_pyreft_adapter(const fs::path& dir, const PyreftReadOptions& options) {
  try {
    return read_pyreft_checked(dir, options);
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type that no check named: one line naming the file.
    fail("[", (dir / "config.json").string(), "] expected a pyvene IntervenableConfig, found ",
         json_error_summary(e));
  }
}

namespace {
PyreftAdapter read_pyreft_checked(const fs::path& dir, const PyreftReadOptions& options) {
  if (!fs::is_directory(dir)) fail("[", dir.string(), "] pyreft adapter directory not found");
  const fs::path config_path = file_inside(dir, "config.json", dir.string(), "the pyreft config");
  if (!fs::exists(config_path))
    fail("[", config_path.string(),
         "] file not found; a pyreft directory holds config.json and intkey_*.bin");
  const std::string where = config_path.string();
  const json j = read_json_file(config_path);
  if (!j.is_object() || !j.contains("representations"))
    fail("[", where,
         "] expected a pyvene IntervenableConfig with 'representations' and 'intervention_types', "
         "found ",
         j.is_object() ? "an object without 'representations' (a model's config.json?)"
                       : j.type_name());
  if (auto m = j.find("mode"); m != j.end() && !m->is_null() && *m != "parallel")
    fail("[", where, "] mode: expected \"parallel\", found ", m->dump());

  // Representations, in pyvene's order (the order of the keys and the files).
  json list = j["representations"];
  if (list.is_object() ||
      (list.is_array() && !list.empty() && !list[0].is_array() && !list[0].is_object()))
    list = json::array({list});  // one representation, as a dict or a bare positional list
  if (!list.is_array() || list.empty())
    fail("[", where, "] representations: expected a non-empty list, found ", list.dump());
  // ReftConfig's bound (reft_config.cpp): each intervention costs time and memory to build.
  constexpr size_t kMaxInterventions = 4096;
  if (list.size() > kMaxInterventions)
    fail("[", where, "] representations: expected at most ", kMaxInterventions,
         " interventions, found ", list.size());
  std::vector<Representation> reps;
  for (size_t i = 0; i < list.size(); ++i)
    reps.push_back(
        parse_representation(list[i], where + "] [representations[" + std::to_string(i) + "]"));
  const size_t n = reps.size();

  // Intervention types: one class string per representation, or one for all.
  const json& types_json = j.contains("intervention_types") ? j["intervention_types"] : json();
  std::vector<InterventionType> types(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string at = where + "] [intervention_types[" + std::to_string(i) + "]";
    if (reps[i].type) {
      types[i] = parse_class(*reps[i].type, at);
    } else if (types_json.is_string()) {
      types[i] = parse_class(types_json.get<std::string>(), at);
    } else if (types_json.is_array() && types_json.size() == n && types_json[i].is_string()) {
      types[i] = parse_class(types_json[i].get<std::string>(), at);
    } else {
      fail("[", where, "] intervention_types: expected ", n,
           " class strings (one per representation), found ", types_json.dump());
    }
  }

  // Keys: pyvene recomputes them from the representations; sorted_keys must agree.
  PyreftAdapter out;
  out.dir = dir;
  std::map<std::pair<int64_t, Component>, int64_t> seen;
  std::vector<std::string> dotted;
  for (const auto& r : reps) {
    const int64_t index = seen[{r.layer, r.component}]++;
    out.keys.push_back(pyreft::pyvene_key(r.layer, r.component, index));
    dotted.push_back(pyreft::pyvene_key(r.layer, r.component, index, true));
  }
  if (auto s = j.find("sorted_keys"); s != j.end() && !s->is_null()) {
    if (!s->is_array() || s->size() != n)
      fail("[", where, "] sorted_keys: expected ", n, " keys (one per representation), found ",
           s->dump());
    for (size_t i = 0; i < n; ++i)
      if ((*s)[i] != out.keys[i] && (*s)[i] != dotted[i])
        fail("[", where, "] sorted_keys[", i, "]: expected '", out.keys[i],
             "' (from representations[", i, "]), found ", (*s)[i].dump());
  }

  // interchange_dim per intervention (pyvene 0.1.7 records it; older versions write null).
  std::vector<std::optional<int64_t>> dims(n);
  if (auto d = j.find("intervention_dimensions"); d != j.end() && !d->is_null()) {
    if (!d->is_array() || d->size() != n)
      fail("[", where, "] intervention_dimensions: expected ", n, " entries, found ", d->dump());
    for (size_t i = 0; i < n; ++i) {
      const auto& v = (*d)[i];
      if (v.is_null()) continue;
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        fail("[", where, "] intervention_dimensions[", i, "]: expected an integer, found ",
             v.dump(), "; subspace interchange dims are not supported");
      dims[i] = v.get<int64_t>();
    }
  }

  // The intkey files.
  out.files.resize(n);
  out.states.resize(n);
  std::string d_source;
  for (size_t i = 0; i < n; ++i) {
    if (pyreft::is_stateless(types[i])) continue;
    fs::path file = dir / ("intkey_" + out.keys[i] + ".bin");
    if (!fs::exists(file) && fs::exists(dir / ("intkey_" + dotted[i] + ".bin")))
      file = dir / ("intkey_" + dotted[i] + ".bin");
    if (!fs::exists(file))
      fail("[", dir.string(), "] expected intkey_", out.keys[i], ".bin (",
           pyreft_class_name(types[i]), " at layer ", reps[i].layer, ", representations[", i,
           "]), found no such file");
    file = file_inside(dir, file.filename().string(), dir.string(), "a pyreft intkey file");
    out.files[i] = file;
    out.states[i] = read_torch_state_dict(file);
    const auto [d, r] = dims_of(out.states[i]);
    if (d && !out.embed_dim) {
      out.embed_dim = d;
      d_source = file.string();
    } else if (d && d != out.embed_dim) {
      fail("[", file.string(), "] expected tensors for hidden size ", out.embed_dim, " like ",
           d_source, ", found hidden size ", d);
    }
    const bool low_rank = intervention_traits(types[i]).low_rank;
    if (low_rank && r && reps[i].rank && r != *reps[i].rank)
      fail("[", file.string(), "] expected rank ", *reps[i].rank,
           " (low_rank_dimension of representations[", i,
           "] in config.json), found tensors of rank ", r);
    if (low_rank && !reps[i].rank) reps[i].rank = r;
    if (low_rank && !reps[i].rank)
      fail("[", file.string(), "] expected tensors that show the rank of ",
           pyreft_class_name(types[i]), " (or low_rank_dimension in config.json), found none");
  }

  // Options: reft's record where present, else pyreft's defaults completed from the tensors.
  const auto recorded = recorded_config(j, reps, types, where, out.notes);
  for (size_t i = 0; i < n; ++i) {
    RepresentationConfig rep;
    rep.layer = reps[i].layer;
    rep.component = reps[i].component;
    if (recorded) {
      rep.intervention = recorded->representations[i].intervention;
      rep.part = recorded->representations[i].part;
    }
    auto& o = rep.intervention;
    o.type = types[i];
    o.embed_dim = out.embed_dim;
    if (reps[i].rank) o.low_rank_dimension = *reps[i].rank;
    if (!recorded) {
      const auto& traits = intervention_traits(types[i]);
      if (traits.proj_layer) o.add_bias = find(out.states[i], "proj_layer.bias") != nullptr;
      if (const auto* k = find(out.states[i], "interchange_dim");
          k && traits.rank_is_interchange_dim)
        o.interchange_dim = pyreft::to_torch(*k).item<int64_t>();
      else if (traits.rank_is_interchange_dim && dims[i])
        o.interchange_dim = *dims[i];
      else if (!traits.trainable && dims[i] && *dims[i] != out.embed_dim)
        o.interchange_dim = *dims[i];
      if (traits.rank_is_interchange_dim && !reps[i].rank && o.interchange_dim > 0)
        o.low_rank_dimension = o.interchange_dim;
    }
    if (options.orthogonal) o.orthogonal = *options.orthogonal;
    out.config.representations.push_back(rep);
  }

  // Positions: pyreft stores none.
  const bool doubled = is_doubled(reps);
  auto& config = out.config;
  if (options.positions) {
    config.positions = *options.positions;
  } else if (recorded) {
    config.positions = recorded->positions;
    config.share_weights = recorded->share_weights;
    out.notes.push_back("positions " + config.positions + " (recorded by reft in config.json)");
  } else {
    config.positions = doubled ? "f1+l1" : "l1";
    out.notes.push_back(
        doubled ? "positions f1+l1, untied (pyreft's default for its [sites…, sites…] layout); "
                  "pass --position to change"
                : "positions l1 (pyreft's last-prompt-token default); pass --position to change");
  }
  const auto spec = PositionSpec::parse(config.positions);
  if (options.positions || !recorded) {
    // pyreft's examples/loreft doubles the layers for an "fN+lM" spec unless share_weights.
    config.share_weights = !doubled && spec.splits();
    for (size_t i = 0; i < n; ++i)
      config.representations[i].part =
          doubled && spec.splits() ? (i < n / 2 ? PositionPart::kPrefix : PositionPart::kSuffix)
                                   : PositionPart::kAll;
  }
  return out;
}
}  // namespace

}  // namespace reft
