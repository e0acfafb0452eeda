#pragma once
// The adapters a server holds, by name: loaded at start (--adapter, --adapters-dir) or at run time
// (POST /v1/adapters), removed by DELETE. Requests take a shared_ptr, so a removed adapter stays
// alive until the requests that started with it end.

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "reft/engine.h"

namespace reft::serve {

class AdapterRegistry {
 public:
  /// `root`: --adapters-dir (empty: run-time loading refused).
  AdapterRegistry(Model& base, std::filesystem::path root) : base_(base), root_(std::move(root)) {}

  /// Loads `dir` as `name`. Throws openai::ApiError 409 when the name is taken, and the loader's
  /// reft::Error for a bad folder.
  std::shared_ptr<const ServedAdapter> load(const std::string& name,
                                            const std::filesystem::path& dir);
  /// Loads a folder named relative to the root: 403 without a root, 400 when `relative` leaves it
  /// (absolute, "..", a symlink out) or is not a folder.
  std::shared_ptr<const ServedAdapter> load_relative(const std::string& name,
                                                     const std::string& relative);
  /// Every subfolder of the root that holds an adapter (reft_config.json or a pyreft
  /// config.json), loaded under its folder name. Returns how many.
  size_t load_root();

  std::shared_ptr<const ServedAdapter> find(const std::string& name) const;  // null: none
  bool remove(const std::string& name);
  std::vector<std::shared_ptr<const ServedAdapter>> list() const;  // sorted by name
  size_t size() const;
  bool has_root() const { return !root_.empty(); }

 private:
  Model& base_;
  std::filesystem::path root_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const ServedAdapter>> adapters_;
  std::mutex load_mu_;  // one load at a time (they are quick; keeps memory use predictable)
};

}  // namespace reft::serve
