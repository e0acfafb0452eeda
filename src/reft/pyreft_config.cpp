// The torch-free half of reading a pyreft directory: config.json (pyvene IntervenableConfig)
// checked field by field; pyreft_io.cpp resolves names and loads the intkey files.

#include "reft/pyreft_config.h"

#include <map>

#include "io/paths.h"  // file_inside
#include "reft/error.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;
using nlohmann::json;

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

// One representation; `type_class` is filled only when the representation names its class.
PyreftRepresentationText parse_representation(const json& r, const std::string& at) {
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
      if (!known) fail("[", at, "] unexpected RepresentationConfig field ", json_excerpt(json(k)));
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
  PyreftRepresentationText out;
  if (const auto& v = get("layer"); !v.is_null()) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      fail("[", at, "] layer: expected a non-negative integer, found ", json_excerpt(v));
    out.layer = v.get<int64_t>();
  }
  if (const auto& v = get("component"); !v.is_null()) {
    if (!v.is_string()) fail("[", at, "] component: expected a string, found ", json_excerpt(v));
    out.component = v.get<std::string>();
    if (out.component.find('.') != std::string::npos)
      fail("[", at,
           "] component: expected a pyvene component name such as block_output, found the module "
           "path ",
           json_excerpt(v), " (pyreft with LoRA); reft does not support module-path components");
  }
  if (const auto& v = get("unit"); !v.is_null() && v != "pos")
    fail("[", at, "] unit: expected \"pos\", found ", json_excerpt(v),
         "; reft intervenes on positions only");
  if (const auto& v = get("max_number_of_units"); !v.is_null() && v != 1)
    fail("[", at, "] max_number_of_units: expected 1, found ", json_excerpt(v));
  if (const auto& v = get("low_rank_dimension"); !v.is_null()) {
    if (!v.is_number_integer() || v.get<int64_t>() < 1)
      fail("[", at, "] low_rank_dimension: expected a positive integer, found ", json_excerpt(v));
    out.rank = v.get<int64_t>();
  }
  if (const auto& v = get("intervention_type"); !v.is_null()) {
    if (!v.is_string())
      fail("[", at, "] intervention_type: expected a class string, found ", json_excerpt(v));
    out.type_class = v.get<std::string>();
  }
  if (const auto& v = get("intervention"); !v.is_null())
    fail("[", at,
         "] intervention: expected null (pyvene saves the type in intervention_types), found ",
         json_excerpt(v));
  for (const char* k : kUnsupported)
    if (const auto& v = get(k); !v.is_null() && v != false)
      fail("[", at, "] ", k, ": expected null, found ", json_excerpt(v),
           "; reft does not support pyvene's ", k);
  return out;
}

PyreftConfigText read_pyreft_config_checked(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("[", dir.string(), "] pyreft adapter directory not found");
  PyreftConfigText out;
  out.path = file_inside(dir, "config.json", dir.string(), "the pyreft config");
  if (!fs::exists(out.path))
    fail("[", out.path.string(),
         "] file not found; a pyreft directory holds config.json and intkey_*.bin");
  const std::string where = out.path.string();
  out.json = read_json_file(out.path);
  const json& j = out.json;
  if (!j.is_object() || !j.contains("representations"))
    fail("[", where,
         "] expected a pyvene IntervenableConfig with 'representations' and 'intervention_types', "
         "found ",
         j.is_object() ? "an object without 'representations' (a model's config.json?)"
                       : j.type_name());
  if (auto m = j.find("mode"); m != j.end() && !m->is_null() && *m != "parallel")
    fail("[", where, "] mode: expected \"parallel\", found ", json_excerpt(*m));

  // Representations, in pyvene's order (the order of the keys and the files).
  const json& given = j["representations"];
  const bool single = given.is_object() || (given.is_array() && !given.empty() &&
                                            !given[0].is_array() && !given[0].is_object());
  // One representation, as a dict or a bare positional list.
  const json list = single ? json::array({given}) : given;
  if (!list.is_array() || list.empty())
    fail("[", where, "] representations: expected a non-empty list, found ", json_excerpt(list));
  if (list.size() > kMaxPyreftRepresentations)
    fail("[", where, "] representations: expected at most ", kMaxPyreftRepresentations,
         " interventions, found ", list.size());
  for (size_t i = 0; i < list.size(); ++i)
    out.representations.push_back(
        parse_representation(list[i], where + "] [representations[" + std::to_string(i) + "]"));
  const size_t n = out.representations.size();

  // Intervention types: one class string per representation, or one for all.
  const json types = j.contains("intervention_types") ? j["intervention_types"] : json();
  for (size_t i = 0; i < n; ++i) {
    auto& r = out.representations[i];
    if (!r.type_class.empty()) continue;
    if (types.is_string()) {
      r.type_class = types.get<std::string>();
    } else if (types.is_array() && types.size() == n && types[i].is_string()) {
      r.type_class = types[i].get<std::string>();
    } else {
      fail("[", where, "] intervention_types: expected ", n,
           " class strings (one per representation), found ", json_excerpt(types));
    }
  }

  // interchange_dim per intervention (pyvene 0.1.7 records it; older versions write null).
  out.dimensions.resize(n);
  if (auto d = j.find("intervention_dimensions"); d != j.end() && !d->is_null()) {
    if (!d->is_array() || d->size() != n)
      fail("[", where, "] intervention_dimensions: expected ", n, " entries, found ",
           json_excerpt(*d));
    for (size_t i = 0; i < n; ++i) {
      const auto& v = (*d)[i];
      if (v.is_null()) continue;
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        fail("[", where, "] intervention_dimensions[", i, "]: expected an integer, found ",
             json_excerpt(v), "; subspace interchange dims are not supported");
      out.dimensions[i] = v.get<int64_t>();
    }
  }
  return out;
}

}  // namespace

PyreftConfigText read_pyreft_config(const fs::path& dir) {
  try {
    return read_pyreft_config_checked(dir);
  } catch (const json::exception& e) {
    // A field of the wrong JSON type that no check named: one line naming the file.
    fail("[", (dir / "config.json").string(), "] expected a pyvene IntervenableConfig, found ",
         json_error_summary(e));
  }
}

}  // namespace reft
