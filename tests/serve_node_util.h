// For the tests that drive `reft serve` from outside programs (node with the official openai
// client, chromium, curl, the load-test script): finding those programs, running them with a
// wall-clock limit, and a served model (the in-tree stories260K) with three adapters.
#pragma once

#include <torch/torch.h>

#include "reft/adapter.h"
#include "reft/model.h"
#include "reft/reft_model.h"
#include "serve_util.h"
#include "test_util.h"
#include "torch_test_util.h"

namespace reft::test {

/// The full path of `name` on $PATH, "" when absent.
inline std::string find_program(const std::string& name) {
  const std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find(':', start), path.size());
    const std::filesystem::path candidate =
        std::filesystem::path(path.substr(start, end - start)) / name;
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return "";
}

/// Runs `argv` (argv[0] a full path) with stdin from /dev/null, killing it after `timeout_s`.
inline LimitedRun run_program(const std::vector<std::string>& argv, double timeout_s) {
  static int counter = 0;
  const auto base = std::filesystem::path(REFT_BINARY_DIR) / "tmp" /
                    ("prog_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(base.parent_path());
  Child c{-1, base.string() + ".out", base.string() + ".err"};
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& s : args) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  const int out = ::open(c.out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = ::open(c.err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  c.pid = fork();
  if (c.pid == 0) {
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  ::close(out);
  ::close(err);
  ::close(in);
  return wait_reft(c, timeout_s);
}

/// `node SCRIPT --flag value …` as an argv for run_program.
inline std::vector<std::string> node_command(
    const std::string& node, const std::string& script,
    const std::vector<std::pair<std::string, std::string>>& flags) {
  std::vector<std::string> argv = {node, script};
  for (const auto& [flag, value] : flags) argv.insert(argv.end(), {flag, value});
  return argv;
}

/// The exit status node scripts use for "a prerequisite is missing" (the test then skips).
inline constexpr int kSkipStatus = 77;

/// tests/serve/<script> in the source tree.
inline std::string serve_script(const std::string& name) {
  return (std::filesystem::path(REFT_SOURCE_DIR) / "tests" / "serve" / name).string();
}

/// The in-tree stories260K (a real pretrained TinyStories model: readable answers) and adapters
/// a, b, c in one --adapters-dir: random LoReFTs (rank 2) at different layers and positions whose
/// biases are large enough that greedy answers visibly change.
struct ServedStories {
  TempDir dir;
  std::filesystem::path model = std::filesystem::path(REFT_SOURCE_DIR) / "models" / "stories260K";
  std::filesystem::path adapters = dir.path() / "adapters";

  ServedStories() {
    auto base = load_model(model);
    make_adapter(*base, "a", {1}, "f1+l1", 11);
    make_adapter(*base, "b", {0, 3}, "l2", 12);
    make_adapter(*base, "c", {4}, "f2", 13);
  }

  void make_adapter(Model& base, const std::string& name, const std::vector<int64_t>& layers,
                    const std::string& positions, uint64_t seed) {
    save_random_loreft(base, adapters / name, layers, positions, seed, 20.0);
  }

  /// `reft generate` alone (greedy): the reference answer for a prompt, "" adapter = the base.
  std::string generate(const std::string& prompt, const std::string& adapter, int n) const {
    std::vector<std::string> args = {"generate",        "--model",   model.string(),
                                     "--prompt",        prompt,      "--max-new-tokens",
                                     std::to_string(n), "--threads", "1"};
    if (!adapter.empty()) args.insert(args.end(), {"--adapter", (adapters / adapter).string()});
    const auto r = reft(args);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out.empty() ? r.out : r.out.substr(0, r.out.size() - 1);  // generate ends with '\n'
  }

  /// `reft serve` on this model and adapters (plus `extra` flags), on a free loopback port.
  std::unique_ptr<ServerProcess> serve(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"--model",         model.string(), "--adapters-dir",
                                     adapters.string(), "--threads",    "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<ServerProcess>(args);
  }
};

}  // namespace reft::test
