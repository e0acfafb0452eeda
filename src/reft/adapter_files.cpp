// The torch-free half of reading an adapter directory: reft_config.json and the tensors file it
// pairs with.

#include "reft/adapter_files.h"

#include <cstdio>

#include "io/paths.h"
#include "reft/error.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

std::string adapter_file_checksum(const fs::path& path) {
  const std::string bytes = read_file(path);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

nlohmann::json read_adapter_config(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("[", dir.string(), "] adapter directory not found");
  const fs::path path = file_inside(dir, kAdapterConfigFile, dir.string(), "the adapter's config");
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
  if (version != j.end() && version->get<int64_t>() > kAdapterFormatVersion)
    fail("[", path.string(), "] adapter format version ", version->get<int64_t>(),
         " is newer than this reft (", kAdapterFormatVersion, ")");
  for (const char* key : {"base_model", "reft"})
    if (!j.contains(key) || !j[key].is_object())
      fail("[", path.string(), "] field '", key, "': expected an object, found ",
           j.contains(key) ? j[key].type_name() : "nothing");
  return j;
}

fs::path adapter_tensor_file(const fs::path& dir, const nlohmann::json& config) {
  const fs::path path = file_inside(dir, kAdapterTensorFile, dir.string(), "the adapter's tensors");
  if (!fs::exists(path)) fail("[", path.string(), "] file not found");
  if (config.contains("tensors_checksum") &&
      config["tensors_checksum"] != adapter_file_checksum(path))
    fail("[", path.string(), "] does not match ", kAdapterConfigFile,
         " (checksum differs): the adapter was written incompletely; retrain or restore it");
  return path;
}

}  // namespace reft
