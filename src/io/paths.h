#pragma once
// Files named from inside a folder (a shard index's weight_map, an adapter's or a pyreft
// directory's files) must stay inside that folder: no "..", no absolute path, no symlink that
// leads out. Header-only; used by checkpoint.cpp and the adapter readers.

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>

#include "reft/error.h"

namespace reft {

/// `text` with control characters and non-ASCII bytes escaped (\n, \x1b), so that a name taken
/// from a file keeps an error message on one line.
inline std::string printable_name(const std::string& text) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// Whether `path` (already normal and absolute) lies under `root` (idem).
inline bool path_is_under(const std::filesystem::path& path, const std::filesystem::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

/// Checks that `dir / name` stays inside `dir` once symlinks are resolved, and returns it; fails
/// "[where] expected <what> inside <dir>, found …" otherwise. A name must be one plain file name
/// (no separator or control character, not "." or ".."). Hugging Face's hub cache links
/// snapshots/<rev>/<file> to
/// ../../blobs/<hash>; a link into that blobs folder is accepted.
inline std::filesystem::path file_inside(const std::filesystem::path& dir, const std::string& name,
                                         const std::string& where, const std::string& what) {
  namespace fs = std::filesystem;
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || std::any_of(name.begin(), name.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20;
      }))
    fail("[", where, "] expected ", what, " as a file name inside ", dir.string(), ", found '",
         printable_name(name), "'");
  const fs::path file = dir / name;
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(file, ec))) return file;
  const fs::path root = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  const fs::path target = fs::weakly_canonical(fs::absolute(file, ec), ec);
  if (ec) fail("[", file.string(), "] expected a readable ", what, ", found ", ec.message());
  if (path_is_under(target, root)) return file;
  const fs::path hub_blobs = root.parent_path().parent_path() / "blobs";
  if (root.parent_path().filename() == "snapshots" && path_is_under(target, hub_blobs)) return file;
  fail("[", file.string(), "] expected ", what, " inside ", dir.string(),
       ", found a symlink that leads out of it (to ", target.string(), ")");
}

}  // namespace reft
