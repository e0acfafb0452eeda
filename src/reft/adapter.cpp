#include "reft/adapter.h"

#include <set>

#include "io/paths.h"
#include "reft/error.h"
#include "reft/safetensors.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

namespace {
constexpr const char* kConfigFile = kAdapterConfigFile;
constexpr const char* kTensorFile = kAdapterTensorFile;
constexpr int kFormatVersion = kAdapterFormatVersion;
}  // namespace

void save_adapter(const ReftModel& reft, const fs::path& dir, const AdapterMeta& meta,
                  const std::vector<std::pair<std::string, torch::Tensor>>& extra_tensors) {
  const auto& info = reft.base().info();
  nlohmann::json config = {
      {"format", "reft-adapter"},
      {"version", kFormatVersion},
      {"reft", reft.config().to_json()},
      {"keys", reft.keys()},
      {"task", meta.task},
      {"template", meta.template_name},
      {"base_model",
       {{"architecture", info.architecture},
        {"fingerprint", info.fingerprint},
        {"hidden_size", info.hidden_size},
        {"num_layers", info.num_layers},
        {"vocab_size", info.vocab_size}}},
      {"trainable_parameters", reft.num_trainable_parameters()},
      {"extra", meta.extra},
  };
  auto tensors = reft.state();
  for (const auto& t : extra_tensors) tensors.push_back(t);
  // The directory may hold other files (a training run's metrics, checkpoint/): each file is
  // replaced atomically, tensors first; the config records the tensors' checksum, so a crash
  // between the two renames is detected at load instead of pairing a config with other tensors.
  fs::create_directories(dir);
  save_safetensors(dir / kTensorFile, tensors, {{"format", "reft"}});
  config["tensors_checksum"] = adapter_file_checksum(dir / kTensorFile);
  write_file_atomically(dir / kConfigFile,
                        [&](std::ostream& out) { out << config.dump(2) << "\n"; });
}

namespace {
LoadedAdapter load_adapter_checked(Model& base, const fs::path& dir, bool allow_base_mismatch);
}  // namespace

LoadedAdapter load_adapter(Model& base, const fs::path& dir, bool allow_base_mismatch) {
  try {
    return load_adapter_checked(base, dir, allow_base_mismatch);
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type that no check above named: one line naming the file.
    fail("[", (dir / kConfigFile).string(), "] expected the fields of a reft adapter, found ",
         json_error_summary(e));
  }
}

namespace {
LoadedAdapter load_adapter_checked(Model& base, const fs::path& dir, bool allow_base_mismatch) {
  const auto j = read_adapter_config(dir);
  const std::string where = (dir / kConfigFile).string();
  const auto& info = base.info();
  const auto& bm = j.at("base_model");
  const bool same_shape = bm.value("hidden_size", -1) == info.hidden_size &&
                          bm.value("num_layers", -1) == info.num_layers;
  const std::string fp = bm.value("fingerprint", "");
  if (!same_shape ||
      (!allow_base_mismatch && !fp.empty() && !info.fingerprint.empty() && fp != info.fingerprint))
    fail("[", where, "] expected the base model this adapter was trained on (",
         printable_name(bm.value("architecture", "?")), ", hidden ", bm.value("hidden_size", -1), ", ",
         bm.value("num_layers", -1), " layers, fingerprint ", printable_name(fp), "), found ", info.architecture,
         ", hidden ", info.hidden_size, ", ", info.num_layers, " layers, fingerprint ",
         info.fingerprint, same_shape ? "; pass --allow-base-mismatch to load it anyway" : "");
  auto config = ReftConfig::from_json(j.at("reft"), where, info.num_layers);
  LoadedAdapter out;
  out.reft = std::make_unique<ReftModel>(base, std::move(config), 0);
  out.meta.task = j.value("task", "causal_lm");
  out.meta.template_name = j.value("template", "none");
  out.meta.extra = j.value("extra", nlohmann::json::object());
  const fs::path tensor_path = adapter_tensor_file(dir, j);
  auto file = SafetensorsFile::open(tensor_path);
  std::set<std::string> own;
  for (const auto& [name, t] : out.reft->state()) own.insert(name);
  std::vector<std::pair<std::string, torch::Tensor>> mine;
  for (const auto& e : file->entries()) {
    if (own.count(e.name))
      mine.emplace_back(e.name, file->tensor(e.name));
    else
      out.extra_tensors.emplace_back(e.name, file->tensor(e.name).clone());
  }
  out.reft->load_state(mine, tensor_path.string());
  return out;
}
}  // namespace

void require_generation_adapter(const LoadedAdapter& adapter, const std::string& where) {
  // A steering adapter (reft steer) adds a stored vector: it edits one run like a causal-LM one.
  if (adapter.meta.task != "causal_lm" && adapter.meta.task != "steering")
    usage_fail("[", where, "] expected a causal-LM adapter, found a ", adapter.meta.task,
               " adapter; use reft predict or reft eval with it");
  for (const auto& iv : adapter.reft->interventions())
    if (iv->needs_source())
      usage_fail("[", where, "] expected interventions that edit without a source run, found ",
                 intervention_type_name(iv->options().type),
                 " (an interchange intervention, e.g. from reft das); use reft das to evaluate it");
}

}  // namespace reft
