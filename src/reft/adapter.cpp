#include "reft/adapter.h"

#include <cstdio>
#include <set>

#include "io/paths.h"
#include "reft/error.h"
#include "reft/safetensors.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

namespace {
constexpr const char* kConfigFile = "reft_config.json";
constexpr const char* kTensorFile = "interventions.safetensors";
constexpr int kFormatVersion = 1;

// FNV-1a of a file's bytes, as 16 hex digits.
std::string file_checksum(const fs::path& path) {
  const std::string bytes = read_file(path);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}
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
  config["tensors_checksum"] = file_checksum(dir / kTensorFile);
  write_file_atomically(dir / kConfigFile,
                        [&](std::ostream& out) { out << config.dump(2) << "\n"; });
}

nlohmann::json read_adapter_config(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("[", dir.string(), "] adapter directory not found");
  const fs::path path = file_inside(dir, kConfigFile, dir.string(), "the adapter's config");
  if (!fs::exists(path)) {
    if (fs::exists(dir / "config.json"))
      fail("[", dir.string(),
           "] this looks like a pyreft adapter (config.json + intkey_*.bin); convert it with "
           "reft convert --from pyreft");
    fail("[", path.string(), "] file not found; not a reft adapter directory");
  }
  auto j = read_json_file(path);
  if (!j.is_object() || !j.contains("format") || j["format"] != "reft-adapter")
    fail("[", path.string(), "] expected \"format\": \"reft-adapter\"");
  const auto version = j.find("version");
  if (version != j.end() && !version->is_number_integer())
    fail("[", path.string(), "] field 'version': expected an integer, found ",
         version->type_name());
  if (version != j.end() && version->get<int64_t>() > kFormatVersion)
    fail("[", path.string(), "] adapter format version ", version->get<int64_t>(),
         " is newer than this reft (", kFormatVersion, ")");
  for (const char* key : {"base_model", "reft"})
    if (!j.contains(key) || !j[key].is_object())
      fail("[", path.string(), "] field '", key, "': expected an object, found ",
           j.contains(key) ? j[key].type_name() : "nothing");
  return j;
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
  const fs::path tensor_path = file_inside(dir, kTensorFile, dir.string(), "the adapter's tensors");
  if (!fs::exists(tensor_path)) fail("[", tensor_path.string(), "] file not found");
  if (j.contains("tensors_checksum") && j["tensors_checksum"] != file_checksum(tensor_path))
    fail("[", tensor_path.string(), "] does not match ", kConfigFile,
         " (checksum differs): the adapter was written incompletely; retrain or restore it");
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
