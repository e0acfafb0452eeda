#include "util/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "reft/error.h"

namespace reft {
namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!fs::exists(path)) fail("[", path.string(), "] file not found");
    fail("[", path.string(), "] cannot read: ", std::strerror(errno));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

nlohmann::json read_json_file(const fs::path& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail("[", path.string(), "] expected valid JSON, found a syntax error at byte ", e.byte, "; ",
         e.what());
  }
}

namespace {

std::string unique_suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  return ".tmp." + std::to_string(getpid()) + "." + std::to_string(rng() % 1000000);
}

void sync_path(const fs::path& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  const fs::path tmp = path.string() + unique_suffix();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("[", path.string(), "] cannot write: ", std::strerror(errno));
    write(out);
    out.flush();
    if (!out) {
      fs::remove(tmp, ec);
      fail("[", path.string(), "] write failed: ", std::strerror(errno));
    }
  }
  sync_path(tmp, false);
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("[", path.string(), "] cannot rename the temporary file into place: ", ec.message());
  }
  sync_path(parent, true);
}

void write_directory_atomically(const fs::path& dir,
                                const std::function<void(const fs::path&)>& fill) {
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  const fs::path tmp = dir.string() + unique_suffix();
  fs::create_directories(tmp, ec);
  if (ec) fail("[", dir.string(), "] cannot create a directory: ", ec.message());
  try {
    fill(tmp);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  sync_path(tmp, true);
  // Swap: move the old directory aside, move the new one in, then delete the old one. A crash in
  // between leaves either the old or the new complete directory next to a temporary one.
  const fs::path old = dir.string() + ".old" + unique_suffix();
  const bool had_old = fs::exists(dir);
  if (had_old) fs::rename(dir, old, ec);
  if (ec) fail("[", dir.string(), "] cannot move the previous directory aside: ", ec.message());
  fs::rename(tmp, dir, ec);
  if (ec) {
    if (had_old) fs::rename(old, dir);
    fail("[", dir.string(), "] cannot move the new directory into place: ", ec.message());
  }
  sync_path(parent, true);
  if (had_old) fs::remove_all(old, ec);
}

}  // namespace reft
