#include "util/files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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

std::string json_excerpt(const nlohmann::json& value, size_t max_chars) {
  std::string text =
      value.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
  if (text.size() > max_chars) text = text.substr(0, max_chars) + "…";
  return text;
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

// Siblings a writer creates: "<name>.tmp.<pid>.<n>" (being written, or after an exchange the
// replaced copy) and "<name>.old.tmp.<pid>.<n>" (the previous directory between two renames).
constexpr std::string_view kTmpInfix = ".tmp.";
constexpr std::string_view kOldInfix = ".old.tmp.";

std::string unique_suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::string(kTmpInfix) + std::to_string(getpid()) + "." + std::to_string(rng() % 1000000);
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

namespace {

// Swaps `from` and `to` in one step (Linux renameat2 RENAME_EXCHANGE); false with errno EINVAL or
// ENOSYS where the kernel or the filesystem cannot (then the caller renames twice).
std::atomic<bool> exchange_disabled{false};

bool exchange_paths(const fs::path& from, const fs::path& to) {
  if (exchange_disabled) {
    errno = EINVAL;
    return false;
  }
#if defined(__linux__) && defined(SYS_renameat2)
  constexpr unsigned kRenameExchange = 1u << 1;  // RENAME_EXCHANGE of <linux/fs.h>
  return ::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), kRenameExchange) ==
         0;
#else
  errno = ENOSYS;
  return false;
#endif
}

// The writer's process id in a leftover sibling "<name><infix><pid>.<n>", or -1 when `entry` is
// not one.
pid_t leftover_writer(const std::string& entry, const std::string& name, std::string_view infix) {
  const std::string prefix = name + std::string(infix);
  if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string rest = entry.substr(prefix.size());
  const size_t dot = rest.find('.');
  if (dot == 0 || dot == std::string::npos || dot > 9 ||
      rest.find_first_not_of("0123456789.") != std::string::npos)
    return -1;
  return static_cast<pid_t>(std::stol(rest.substr(0, dot)));
}

bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

}  // namespace

void disable_rename_exchange_for_testing(bool disabled) { exchange_disabled = disabled; }

void recover_directory_write(const fs::path& dir) {
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  const std::string name = dir.filename().string();
  std::error_code ec;
  std::vector<fs::path> stale_new, stale_old;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    const std::string entry = it->path().filename().string();
    for (auto [infix, list] : {std::pair{kOldInfix, &stale_old}, {kTmpInfix, &stale_new}}) {
      const pid_t pid = leftover_writer(entry, name, infix);
      if (pid > 0 && !process_alive(pid)) {
        list->push_back(it->path());
        break;
      }
    }
  }
  // A writer that died between moving the old directory aside and the new one in: the old copy
  // (complete: it was renamed whole) goes back. Newest first, should there be several.
  if (!fs::exists(dir, ec) && !stale_old.empty()) {
    std::sort(stale_old.begin(), stale_old.end(), [](const fs::path& a, const fs::path& b) {
      std::error_code e;
      return fs::last_write_time(a, e) > fs::last_write_time(b, e);
    });
    fs::rename(stale_old.front(), dir, ec);
    if (!ec) {
      stale_old.erase(stale_old.begin());
      sync_path(parent, true);
    }
  }
  // Unfinished new directories and old ones already replaced belong to no one.
  for (const auto& list : {stale_new, stale_old})
    for (const auto& path : list) fs::remove_all(path, ec);
}

void write_directory_atomically(const fs::path& dir,
                                const std::function<void(const fs::path&)>& fill) {
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  recover_directory_write(dir);
  const std::string suffix = unique_suffix();  // ".tmp.<pid>.<n>"
  const fs::path tmp = dir.string() + suffix;
  fs::create_directories(tmp, ec);
  if (ec) fail("[", dir.string(), "] cannot create a directory: ", ec.message());
  try {
    fill(tmp);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  sync_path(tmp, true);
  if (!fs::exists(dir, ec)) {
    fs::rename(tmp, dir, ec);
    if (ec) {
      fs::remove_all(tmp, ec);
      fail("[", dir.string(), "] cannot move the new directory into place: ", ec.message());
    }
    sync_path(parent, true);
    return;
  }
  // Swap in one step where the kernel can: `dir` always names a complete directory, and the old
  // one, now under the temporary name, is removed (by the next call after a crash).
  if (exchange_paths(tmp, dir)) {
    sync_path(parent, true);
    fs::remove_all(tmp, ec);
    return;
  }
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
    const int err = errno;
    fs::remove_all(tmp, ec);
    fail("[", dir.string(), "] cannot swap the new directory into place: ", std::strerror(err));
  }
  // Two renames. A crash between them leaves no `dir` but its complete old copy "<dir>.old.tmp.…",
  // which recover_directory_write (the next call) moves back.
  const fs::path old = dir.string() + std::string(kOldInfix) + suffix.substr(kTmpInfix.size());
  fs::rename(dir, old, ec);
  if (ec) {
    fs::remove_all(tmp, ec);
    fail("[", dir.string(), "] cannot move the previous directory aside: ", ec.message());
  }
  fs::rename(tmp, dir, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::rename(old, dir, ec);
    fs::remove_all(tmp, ec);
    fail("[", dir.string(), "] cannot move the new directory into place: ", why);
  }
  sync_path(parent, true);
  fs::remove_all(old, ec);
}

}  // namespace reft
