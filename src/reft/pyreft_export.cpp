// Writing pyreft directories (what pyreft.ReftModel.load reads), the two conversions, and the
// adapter loader that accepts either format.
//
// Dimension legend: D hidden size, r rank.

#include <map>

#include "interventions/interchange.h"
#include "interventions/orthogonal.h"
#include "reft/error.h"
#include "reft/pyreft.h"
#include "reft/pyreft_common.h"
#include "reft/safetensors.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

ArchiveTensor int_scalar(int64_t value) {
  std::vector<uint8_t> bytes(8);
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i));
  return ArchiveTensor::from_bytes(ScalarType::kInt64, {}, std::move(bytes));
}

torch::Tensor tensor_of(const Intervention& iv, const std::string& name) {
  for (const auto& p : iv.named_parameters())
    if (p.key() == name) return p.value().detach();
  for (const auto& b : iv.named_buffers())
    if (b.key() == name) return b.value().detach();
  fail("[pyreft export] ", pyreft_class_name(iv.options().type), " has no tensor '", name, "'");
}

bool has_tensor(const Intervention& iv, const std::string& name) {
  for (const auto& p : iv.named_parameters())
    if (p.key() == name) return true;
  return false;
}

// pyreft's `original` and D×D `base` for our R. A kPyreft parametrization that torch's map reads
// the same way (r < D: Householder; diag(original) = ±1, where int() and sign() agree) is copied;
// anything else is re-based: base = an orthogonal completion of R whose leading columns are R
// exactly, original = −I, so that pyreft's base · Q(−I) = base · I(D, r) = R bit for bit.
std::pair<torch::Tensor, torch::Tensor> parametrization_of(const Intervention& iv) {
  const auto original = tensor_of(iv, std::string(pyreft::kOriginal));
  const int64_t d = original.size(0), r = original.size(1);
  if (iv.options().orthogonal == OrthogonalMode::kPyreft && r < d &&
      original.diagonal().abs().eq(1).all().item<bool>())
    return {original, tensor_of(iv, std::string(pyreft::kBase))};
  torch::NoGradGuard no_grad;
  const auto R = iv.rotation().detach();
  auto neg_identity = torch::zeros({d, r}, R.options());
  neg_identity.diagonal().fill_(-1);
  return {neg_identity, pyreft::complete_orthogonal(R)};
}

// pyvene's interchange_dim buffer of the intervention (what _do_intervention_by_swap reads).
int64_t pyvene_interchange_dim(const Intervention& iv) {
  const auto& o = iv.options();
  const auto& traits = intervention_traits(o.type);
  if (traits.rank_is_interchange_dim)
    return o.interchange_dim > 0 ? o.interchange_dim : o.low_rank_dimension;
  if (!traits.trainable) return interchange_width(o, o.embed_dim);
  return o.embed_dim;
}

// The state dict pyreft's (or pyvene's) class would return: same names, order and dtypes, as
// listed by InterventionTraits::pyvene_state.
TensorDict state_dict_of(const Intervention& iv) {
  const auto& o = iv.options();
  const auto t = [&](const std::string& name) { return pyreft::to_archive(tensor_of(iv, name)); };
  TensorDict out;
  const auto add = [&](const std::string& name, ArchiveTensor value) {
    out.emplace_back(name, std::move(value));
  };
  std::string_view layout = intervention_traits(o.type).pyvene_state;
  while (!layout.empty()) {
    const size_t space = layout.find(' ');
    const std::string item(layout.substr(0, space));
    layout = space == std::string_view::npos ? std::string_view() : layout.substr(space + 1);
    if (item == "dims") {
      add("embed_dim", int_scalar(o.embed_dim));
      add("interchange_dim", int_scalar(pyvene_interchange_dim(iv)));
    } else if (item == "rotation") {
      auto [original, base] = parametrization_of(iv);
      add(std::string(pyreft::kOriginal), pyreft::to_archive(original));
      add(std::string(pyreft::kBase), pyreft::to_archive(base));
    } else if (item.ends_with('.')) {  // a linear module: weight, and bias when it has one
      add(item + "weight", t(item + "weight"));
      if (has_tensor(iv, item + "bias")) add(item + "bias", t(item + "bias"));
    } else if (const size_t colon = item.find(':'); colon != std::string::npos) {
      const std::string name = item.substr(0, colon), source = item.substr(colon + 1);
      if (source == "R")
        add(name, pyreft::to_archive(iv.rotation().detach()));
      else if (source == "arange")
        add(name, pyreft::to_archive(torch::arange(o.embed_dim, torch::kInt64)));
      else
        add(name, t(source));
    } else {
      add(item, t(item));
    }
  }
  return out;
}

// What pyreft.ReftModel.load cannot rebuild from config.json alone.
std::vector<std::string> load_warnings(const ReftConfig& config,
                                       const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  for (size_t i = 0; i < config.representations.size(); ++i) {
    const auto& o = config.representations[i].intervention;
    const auto& traits = intervention_traits(o.type);
    const std::string cls(traits.pyreft_class);
    if (traits.proj_layer)
      out.push_back(keys[i] + ": pyreft 0.1.0's ReftModel.load cannot rebuild " + cls +
                    " (its constructor needs add_bias, which config.json cannot carry); in Python "
                    "build it with "
                    "get_reft_model(model, config with " +
                    cls + "(…, add_bias=" + (o.add_bias ? "True" : "False") +
                    ")) and call reft_model.load_intervention(dir, include_model=False)");
    if (traits.act_fn && act_fn_by_name(o.act_fn) != act_fn_by_name("linear"))
      out.push_back(keys[i] + ": ReftModel.load rebuilds " + cls +
                    " with a linear act_fn; pass act_fn=\"" + o.act_fn +
                    "\" when rebuilding it in Python");
    if (!traits.pyvene_loads)
      out.push_back(keys[i] + ": pyvene 0.1.7's load expects a source_representation for " + cls +
                    " and fails; rebuild it in Python");
  }
  return out;
}

std::vector<std::string> write_files(const ReftConfig& config, const std::vector<std::string>& keys,
                                     const std::vector<std::shared_ptr<Intervention>>& ivs,
                                     const fs::path& dir) {
  json reps = json::array(), types = json::array(), dims = json::array(), constant = json::array();
  std::vector<std::pair<std::string, TensorDict>> files;
  for (size_t i = 0; i < ivs.size(); ++i) {
    const auto& rep = config.representations[i];
    const auto& o = ivs[i]->options();
    if (o.constant_source)
      usage_fail("[pyreft export] ", keys[i],
                 ": an addition with a stored source (a steering vector) has no pyreft "
                 "form; reft adapters keep it");
    // [layer, component, unit, max_number_of_units, low_rank_dimension, intervention_type,
    // intervention,
    //  subspace_partition, group_key, intervention_link_key, moe_key, source_representation,
    //  hidden_source_representation, latent_dim]
    json r = json::array(
        {rep.layer, std::string(component_name(rep.component)), "pos", 1, o.low_rank_dimension});
    for (int k = 0; k < 9; ++k) r.push_back(nullptr);
    reps.push_back(r);
    types.push_back(pyreft::class_string(o.type));
    dims.push_back(pyvene_interchange_dim(*ivs[i]));
    // pyvene's is_source_constant: true for sourceless (pyreft) and constant-source classes.
    constant.push_back(intervention_traits(o.type).constant_source);
    if (intervention_traits(o.type).trainable)
      files.emplace_back("intkey_" + keys[i] + ".bin", state_dict_of(*ivs[i]));
  }
  json out_config = {{"intervention_constant_sources", constant},
                     {"intervention_dimensions", dims},
                     {"intervention_types", types},
                     {"mode", "parallel"},
                     {"representations", reps},
                     {"sorted_keys", keys},
                     {"reft_config", config.to_json()}};
  write_directory_atomically(dir, [&](const fs::path& tmp) {
    for (const auto& [name, state] : files) write_torch_state_dict(tmp / name, state);
    write_file_atomically(tmp / "config.json",
                          [&](std::ostream& s) { s << out_config.dump(2) << "\n"; });
  });
  return load_warnings(config, keys);
}

}  // namespace

std::vector<std::string> write_pyreft_adapter(const ReftModel& reft, const fs::path& dir) {
  return write_files(reft.config(), reft.keys(), reft.interventions(), dir);
}

void convert_pyreft_to_reft(Model& base, const fs::path& pyreft_dir, const fs::path& out_dir,
                            const PyreftReadOptions& options) {
  auto reft = load_pyreft_adapter(base, pyreft_dir, options);
  AdapterMeta meta;
  meta.extra = {{"converted_from", "pyreft"}};
  save_adapter(*reft, out_dir, meta);
}

std::vector<std::string> convert_reft_to_pyreft(const fs::path& reft_dir, const fs::path& out_dir) {
  const json j = read_adapter_config(reft_dir);
  const std::string where = (reft_dir / "reft_config.json").string();
  if (auto task = j.find("task"); task != j.end() && !task->is_null() && *task != "causal_lm")
    fail("[", where, "] task: expected causal_lm, found ", json_excerpt(*task),
         "; a pyreft directory holds interventions only, and the task head would be lost");
  // No model is loaded: the hidden size comes from the file alone, bounded as config.json's sizes.
  constexpr int64_t kMaxHidden = int64_t{1} << 24;
  const json& bm = j.at("base_model");  // an object (read_adapter_config)
  const auto hidden = bm.find("hidden_size");
  if (hidden == bm.end() || !hidden->is_number_integer() || hidden->get<int64_t>() < 1 ||
      hidden->get<int64_t>() > kMaxHidden)
    fail("[", where, "] base_model.hidden_size: expected a positive integer of at most ",
         kMaxHidden, ", found ", hidden == bm.end() ? "nothing" : json_excerpt(*hidden));
  const int64_t d = hidden->get<int64_t>();
  auto config = ReftConfig::from_json(j.at("reft"), where);
  const fs::path tensor_path = adapter_tensor_file(reft_dir, j);
  auto tensors = load_safetensors(tensor_path);
  // The interventions are built at hidden size d before the stored tensors are copied in: sizes
  // the file cannot hold are refused first (hidden_size 10^12 asked torch for 16 TB).
  int64_t stored = 0;
  for (const auto& [name, t] : tensors) stored += t.numel();
  for (size_t i = 0; i < config.representations.size(); ++i) {
    const auto& o = config.representations[i].intervention;
    const auto& traits = intervention_traits(o.type);
    const int64_t r = o.low_rank_dimension;
    if (traits.low_rank && (r < 1 || r > d))
      fail("[", where, "] representations[", i, "].low_rank_dimension: expected 1 to ", d,
           " (base_model.hidden_size), found ", r);
    const bool square =
        traits.rotation && (!traits.low_rank || o.orthogonal == OrthogonalMode::kPyreft);
    const int64_t width = square                                    ? d
                          : traits.low_rank                         ? r
                          : (traits.trainable || o.constant_source) ? 1
                                                                    : 0;
    if (width > 0 && d > stored / width)
      fail("[", tensor_path.string(), "] expected tensors for hidden size ", d,
           " (base_model.hidden_size in ", kAdapterConfigFile, "), found ", stored,
           " values in all");
  }
  std::vector<std::string> keys;
  std::map<std::pair<int64_t, Component>, int64_t> seen;
  std::vector<std::shared_ptr<Intervention>> ivs;
  for (auto& rep : config.representations) {
    rep.intervention.embed_dim = d;
    keys.push_back(
        pyreft::pyvene_key(rep.layer, rep.component, seen[{rep.layer, rep.component}]++));
    ivs.push_back(make_intervention(rep.intervention));
  }
  if (j.contains("keys") && j["keys"] != json(keys))
    fail("[", where, "] keys: expected ", json_excerpt(json(keys)),
         " (from its representations), found ", json_excerpt(j["keys"]));
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < ivs.size(); ++i) {
    std::vector<std::pair<std::string, torch::Tensor>> own;
    for (auto& p : ivs[i]->named_parameters()) own.emplace_back(p.key(), p.value());
    for (auto& b : ivs[i]->named_buffers()) own.emplace_back(b.key(), b.value());
    for (auto& [name, t] : own) {
      auto it = tensors.find(keys[i] + "." + name);
      if (it == tensors.end())
        fail("[", tensor_path.string(), "] expected tensor '", keys[i], ".", name, "', found none");
      if (it->second.sizes() != t.sizes())
        fail("[", tensor_path.string(), "] tensor '", it->first, "': expected shape ", t.sizes(),
             ", found ", it->second.sizes());
      t.copy_(it->second);
      tensors.erase(it);
    }
  }
  if (!tensors.empty())
    fail("[", tensor_path.string(), "] unexpected tensor '", tensors.begin()->first,
         "'; a pyreft directory holds interventions only");
  return write_files(config, keys, ivs, out_dir);
}

LoadedAdapter load_adapter_auto(Model& base, const fs::path& dir,
                                const AdapterLoadOptions& options) {
  LoadedAdapter out;
  if (is_pyreft_adapter(dir)) {
    out.reft = load_pyreft_adapter(
        base, dir, {.positions = options.positions, .orthogonal = options.orthogonal});
    return out;
  }
  out = load_adapter(base, dir, options.allow_base_mismatch);
  const auto& config = out.reft->config();
  if (options.positions && *options.positions != config.positions)
    usage_fail("[--position] ", dir.string(), " is a reft adapter trained at positions '",
               config.positions, "', found '", *options.positions,
               "'; --position applies to pyreft directories");
  if (options.orthogonal)
    for (const auto& rep : config.representations)
      if (pyreft::has_rotation(rep.intervention.type) &&
          rep.intervention.orthogonal != *options.orthogonal)
        usage_fail("[--orthogonal] ", dir.string(), " is a reft adapter with orthogonal mode '",
                   orthogonal_mode_name(rep.intervention.orthogonal), "', found '",
                   orthogonal_mode_name(*options.orthogonal),
                   "'; --orthogonal applies to pyreft directories");
  return out;
}

}  // namespace reft
