#include "reft/adapter.h"

#include <set>

#include "reft/error.h"
#include "reft/safetensors.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

namespace {
constexpr const char* kConfigFile = "reft_config.json";
constexpr const char* kTensorFile = "interventions.safetensors";
constexpr int kFormatVersion = 1;
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
  write_directory_atomically(dir, [&](const fs::path& tmp) {
    save_safetensors(tmp / kTensorFile, tensors, {{"format", "reft"}});
    write_file_atomically(tmp / kConfigFile, [&](std::ostream& out) { out << config.dump(2) << "\n"; });
  });
}

nlohmann::json read_adapter_config(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("[", dir.string(), "] adapter directory not found");
  const fs::path path = dir / kConfigFile;
  if (!fs::exists(path)) {
    if (fs::exists(dir / "config.json"))
      fail("[", dir.string(), "] this looks like a pyreft adapter (config.json + intkey_*.bin); convert it with "
           "reft convert --from pyreft");
    fail("[", path.string(), "] file not found; not a reft adapter directory");
  }
  auto j = read_json_file(path);
  if (!j.is_object() || j.value("format", "") != "reft-adapter")
    fail("[", path.string(), "] expected \"format\": \"reft-adapter\"");
  if (j.value("version", 0) > kFormatVersion)
    fail("[", path.string(), "] adapter format version ", j.value("version", 0), " is newer than this reft (",
         kFormatVersion, ")");
  return j;
}

LoadedAdapter load_adapter(Model& base, const fs::path& dir, bool allow_base_mismatch) {
  const auto j = read_adapter_config(dir);
  const std::string where = (dir / kConfigFile).string();
  const auto& info = base.info();
  const auto& bm = j.at("base_model");
  const bool same_shape = bm.value("hidden_size", -1) == info.hidden_size &&
                          bm.value("num_layers", -1) == info.num_layers;
  const std::string fp = bm.value("fingerprint", "");
  if (!same_shape || (!allow_base_mismatch && !fp.empty() && !info.fingerprint.empty() && fp != info.fingerprint))
    fail("[", where, "] expected the base model this adapter was trained on (", bm.value("architecture", "?"),
         ", hidden ", bm.value("hidden_size", -1), ", ", bm.value("num_layers", -1), " layers, fingerprint ", fp,
         "), found ", info.architecture, ", hidden ", info.hidden_size, ", ", info.num_layers, " layers, fingerprint ",
         info.fingerprint, same_shape ? "; pass --allow-base-mismatch to load it anyway" : "");
  auto config = ReftConfig::from_json(j.at("reft"), where, info.num_layers);
  LoadedAdapter out;
  out.reft = std::make_unique<ReftModel>(base, std::move(config), 0);
  out.meta.task = j.value("task", "causal_lm");
  out.meta.template_name = j.value("template", "none");
  out.meta.extra = j.value("extra", nlohmann::json::object());
  const fs::path tensor_path = dir / kTensorFile;
  auto file = SafetensorsFile::open(tensor_path);
  std::set<std::string> own;
  for (const auto& [name, t] : out.reft->state()) own.insert(name);
  std::vector<std::pair<std::string, torch::Tensor>> mine;
  for (const auto& e : file->entries()) {
    if (own.count(e.name)) mine.emplace_back(e.name, file->tensor(e.name));
    else out.extra_tensors.emplace_back(e.name, file->tensor(e.name).clone());
  }
  out.reft->load_state(mine, tensor_path.string());
  return out;
}

}  // namespace reft
