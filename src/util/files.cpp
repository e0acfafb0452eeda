#include "util/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "reft/error.h"

namespace reft {
namespace fs = std::filesystem;

namespace {

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "something else";
}

}  // namespace

std::string json_error_summary(const nlohmann::json::exception& e) {
  std::string what = e.what();
  // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error …"
  if (const auto close = what.find("] ");
      what.rfind("[json.exception.", 0) == 0 && close != what.npos)
    what = what.substr(close + 2);
  return what;
}

nlohmann::json parse_json_bounded(std::string_view text, const std::string& where) {
  constexpr int kMaxDepth = 256;
  try {
    return nlohmann::json::parse(text.begin(), text.end(),
                                 [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
                                   if (depth > kMaxDepth)
                                     fail("[", where, "] expected JSON nested at most ", kMaxDepth,
                                          " levels deep, found deeper nesting");
                                   return true;
                                 });
  } catch (const nlohmann::json::exception& e) {
    fail("[", where, "] expected valid JSON, found ", json_error_summary(e));
  }
}

int open_regular_file(const fs::path& path) {
  // O_NONBLOCK: opening a FIFO with no writer must not block before fstat can refuse it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) fail("[", path.string(), "] expected a file, found no such file");
    fail("[", path.string(), "] expected a readable file, found ", std::strerror(err));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int err = errno;
    ::close(fd);
    fail("[", path.string(), "] expected a readable file, found ", std::strerror(err));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    fail("[", path.string(), "] expected a regular file, found ", file_kind(info.st_mode));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

size_t regular_file_size(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0 || info.st_size < 0) return 0;
  return static_cast<size_t>(info.st_size);
}

std::string read_file(const fs::path& path, size_t max_bytes) {
  const int fd = open_regular_file(path);
  const size_t size = regular_file_size(fd);
  if (size > max_bytes) {
    ::close(fd);
    fail("[", path.string(), "] expected a file of at most ", max_bytes, " bytes, found ", size,
         " bytes");
  }
  std::string bytes(size, '\0');
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, bytes.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      fail("[", path.string(), "] expected a readable file, found ", std::strerror(err));
    }
    if (n == 0) break;  // the file shrank while being read
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  bytes.resize(got);
  return bytes;
}

nlohmann::json read_json_file(const fs::path& path, size_t max_bytes) {
  return parse_json_bounded(read_file(path, max_bytes), path.string());
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
