// AdapterRegistry: loading, naming and removing served adapters; folder names from clients are
// confined to --adapters-dir.

#include "serve/adapter_registry.h"

#include <system_error>

#include "io/paths.h"
#include "reft/openai_api.h"
#include "reft/pyreft.h"

namespace reft::serve {
namespace fs = std::filesystem;

std::shared_ptr<const ServedAdapter> AdapterRegistry::load(const std::string& name,
                                                           const fs::path& dir) {
  std::lock_guard load_lock(load_mu_);
  {
    std::lock_guard lock(mu_);
    if (adapters_.count(name))
      throw openai::ApiError(409,
                             "an adapter named '" + name +
                                 "' is already loaded; DELETE "
                                 "/v1/adapters/" +
                                 name + " first",
                             "name", "adapter_exists");
  }
  auto adapter = load_served_adapter(base_, name, dir);
  std::lock_guard lock(mu_);
  if (!adapters_.emplace(name, adapter).second)
    throw openai::ApiError(409, "an adapter named '" + name + "' is already loaded", "name",
                           "adapter_exists");
  return adapter;
}

std::shared_ptr<const ServedAdapter> AdapterRegistry::load_relative(const std::string& name,
                                                                    const std::string& relative) {
  if (root_.empty())
    throw openai::ApiError(403,
                           "loading adapters at run time is off: start reft serve with "
                           "--adapters-dir DIR to allow folders inside DIR");
  const fs::path rel(relative);
  const std::string shown = printable_name(relative.substr(0, 200));
  bool escapes = rel.is_absolute() || rel.has_root_name();
  for (const auto& part : rel)
    if (part == "..") escapes = true;
  std::error_code ec;
  const fs::path root = fs::canonical(root_, ec);
  if (ec) throw openai::ApiError(500, "--adapters-dir " + root_.string() + " is not readable");
  fs::path dir;
  if (!escapes) {
    dir = fs::weakly_canonical(root / rel, ec);  // symlinks resolved
    escapes = ec || !path_is_under(dir, root) || dir == root;
  }
  if (escapes)
    throw openai::ApiError(
        400, "'path' expected a folder inside --adapters-dir, found '" + shown + "'", "path");
  if (!fs::is_directory(dir, ec))
    throw openai::ApiError(
        400, "'path' expected a folder inside --adapters-dir, found no folder '" + shown + "'",
        "path");
  return load(name, dir);
}

size_t AdapterRegistry::load_root() {
  size_t n = 0;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(root_)) {
    std::error_code ec;
    if (!entry.is_directory(ec)) continue;
    const fs::path d = entry.path();
    if (fs::exists(d / "reft_config.json", ec) || is_pyreft_adapter(d)) dirs.push_back(d);
  }
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    const std::string name = d.filename().string();
    if (!openai::valid_model_name(name))
      fail("[--adapters-dir ", root_.string(),
           "] expected adapter folder names of A-Z a-z 0-9 . _ "
           ": - (they become model ids), found '",
           printable_name(name), "'");
    load(name, d);
    ++n;
  }
  return n;
}

std::shared_ptr<const ServedAdapter> AdapterRegistry::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = adapters_.find(name);
  return it == adapters_.end() ? nullptr : it->second;
}

bool AdapterRegistry::remove(const std::string& name) {
  std::lock_guard lock(mu_);
  return adapters_.erase(name) > 0;
}

std::vector<std::shared_ptr<const ServedAdapter>> AdapterRegistry::list() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const ServedAdapter>> out;
  for (const auto& [name, a] : adapters_) out.push_back(a);
  return out;
}

size_t AdapterRegistry::size() const {
  std::lock_guard lock(mu_);
  return adapters_.size();
}

}  // namespace reft::serve
