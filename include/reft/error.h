#pragma once
/// Errors thrown by libreft.
///
/// Every failure in the library is a `reft::Error` whose message is one line of the form
/// `[where] expected …, found …; likely cause`, naming the file, tensor, line or flag involved.
/// Frontends catch it at the top: the CLI prints the line and exits 1 (2 for `UsageError`).

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace reft {

/// The exception type of libreft: a malformed file, an unsupported config value, a shape mismatch.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// A bad argument from the caller (a flag value, a position spec, a layer out of range).
/// The CLI exits with status 2 for these.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message) {}
};

/// Concatenates the arguments with `operator<<` into one string.
template <class... Args>
std::string str(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

/// Throws `Error(str(args...))`.
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(str(std::forward<Args>(args)...));
}

/// Throws `UsageError(str(args...))`.
template <class... Args>
[[noreturn]] void usage_fail(Args&&... args) {
  throw UsageError(str(std::forward<Args>(args)...));
}

}  // namespace reft
