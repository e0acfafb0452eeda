// Runs the built reft CLI from tests: stdout, stderr and the exit status of one invocation.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace reft::test {

struct Run {
  int status;
  std::string out, err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `reft <args>` and captures stdout, stderr and the exit status.
inline Run reft(const std::vector<std::string>& args) {
  static int counter = 0;
  const std::filesystem::path err_file =
      std::filesystem::path(REFT_BINARY_DIR) / "tmp" /
      ("cli_err_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(err_file.parent_path());
  std::string cmd = shell_quote(REFT_CLI);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " 2>" + shell_quote(err_file.string());
  Run r;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_file);
  r.err.assign(std::istreambuf_iterator<char>(in), {});
  std::filesystem::remove(err_file);
  return r;
}

// ---- runs under limits: fork/exec with rlimits, a wall-clock limit and signal detection ----

struct Limits {
  double timeout_s = 20;                  // killed (SIGKILL) after this long
  uint64_t address_space = uint64_t{4} << 30;  // RLIMIT_AS; 0: unlimited
  uint64_t file_size = 0;                 // RLIMIT_FSIZE (SIGXFSZ ignored: writes fail EFBIG)
};

struct LimitedRun {
  int status = -1;         // exit status, -1 when killed by a signal
  int signal = 0;          // the signal that ended it, 0 when it exited
  bool timed_out = false;  // killed by us at Limits::timeout_s
  std::string out, err;
  std::string describe() const {
    return "exit " + std::to_string(status) + ", signal " + std::to_string(signal) +
           (timed_out ? ", timed out" : "") + ", stderr: " + err;
  }
};

// A started `reft <args>` with stdout and stderr going to files.
struct Child {
  pid_t pid = -1;
  std::filesystem::path out_file, err_file;
};

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline Child spawn_reft(const std::vector<std::string>& args, const Limits& limits = {}) {
  static int counter = 0;
  const auto base = std::filesystem::path(REFT_BINARY_DIR) / "tmp" /
                    ("cli_run_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(base.parent_path());
  Child c{-1, base.string() + ".out", base.string() + ".err"};
  std::vector<std::string> argv_s = {REFT_CLI};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int out = ::open(c.out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = ::open(c.err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  c.pid = fork();
  if (c.pid == 0) {  // only async-signal-safe calls until exec
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    if (limits.address_space) {
      rlimit rl{limits.address_space, limits.address_space};
      setrlimit(RLIMIT_AS, &rl);
    }
    if (limits.file_size) {
      rlimit rl{limits.file_size, limits.file_size};
      setrlimit(RLIMIT_FSIZE, &rl);
      signal(SIGXFSZ, SIG_IGN);  // ignored dispositions survive exec
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(out);
  ::close(err);
  ::close(in);
  return c;
}

// Waits for `c` at most `timeout_s` (then kills it) and collects its result.
inline LimitedRun wait_reft(const Child& c, double timeout_s) {
  LimitedRun r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  while (true) {
    const pid_t w = waitpid(c.pid, &status, WNOHANG);
    if (w == c.pid) break;
    if (w < 0) return r;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(c.pid, SIGKILL);
      waitpid(c.pid, &status, 0);
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status)) r.status = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = read_text(c.out_file);
  r.err = read_text(c.err_file);
  std::error_code ec;
  std::filesystem::remove(c.out_file, ec);
  std::filesystem::remove(c.err_file, ec);
  return r;
}

// Runs `reft <args>` under `limits`.
inline LimitedRun reft_limited(const std::vector<std::string>& args, const Limits& limits = {}) {
  return wait_reft(spawn_reft(args, limits), limits.timeout_s);
}

inline std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// One clear line on stderr naming `needle`, and the expected exit status.
inline void expect_error(const Run& r, int status, const std::string& needle) {
  EXPECT_EQ(r.status, status) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace reft::test
