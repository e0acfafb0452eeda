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
#include "reft/pyreft_config.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;
using nlohmann::json;
using pyreft::find;

namespace {

// A representation with its names resolved.
struct Representation {
  int64_t layer = 0;
  Component component = Component::kBlockOutput;
  std::optional<int64_t> rank;
};

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
         "SubtractionIntervention, ZeroIntervention, CollectIntervention), found ",
         json_excerpt(json(text)));
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
  const PyreftConfigText text = read_pyreft_config(dir);
  const std::string where = text.path.string();
  const json& j = text.json;

  // Names resolved: components and intervention classes.
  const size_t n = text.representations.size();
  std::vector<Representation> reps(n);
  std::vector<InterventionType> types(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& r = text.representations[i];
    const std::string at = where + "] [representations[" + std::to_string(i) + "]";
    reps[i].layer = r.layer;
    reps[i].rank = r.rank;
    try {
      reps[i].component = parse_component(r.component);
    } catch (const UsageError&) {
      fail("[", at,
           "] component: expected block_input, attention_input, attention_output, mlp_input, "
           "mlp_output or block_output, found ",
           json_excerpt(json(r.component)));
    }
    types[i] =
        parse_class(r.type_class, where + "] [intervention_types[" + std::to_string(i) + "]");
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
           json_excerpt(*s));
    for (size_t i = 0; i < n; ++i)
      if ((*s)[i] != out.keys[i] && (*s)[i] != dotted[i])
        fail("[", where, "] sorted_keys[", i, "]: expected '", out.keys[i],
             "' (from representations[", i, "]), found ", json_excerpt((*s)[i]));
  }

  const auto& dims = text.dimensions;

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
