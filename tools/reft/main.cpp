// reft: the command-line frontend of libreft. Subcommands live in cmd_*.cpp; this file dispatches
// and turns library errors into one line on stderr (exit 1; usage errors exit 2).

#include <c10/util/Exception.h>

#include <cstring>
#include <iostream>

#include "cli.h"
#include "reft/error.h"
#include "reft/runtime.h"

namespace {

std::vector<reft::cli::Command> all_commands() {
  auto commands = reft::cli::model_commands();
  for (auto& c : reft::cli::train_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::eval_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::bench_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::convert_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::analysis_commands()) commands.push_back(std::move(c));
  return commands;
}

void print_overview(std::ostream& out, const std::vector<reft::cli::Command>& commands) {
  out << "reft: Representation Finetuning of frozen HuggingFace models\n\nusage: reft <command> "
         "[flags]\n\n"
         "commands:\n";
  for (const auto& c : commands)
    out << "  " << c.name << std::string(14 - std::min<size_t>(13, c.name.size()), ' ')
        << c.summary.substr(0, c.summary.find('\n')) << "\n";
  out << "\nRun 'reft <command> --help' for the flags of a command.\n";
}

// The first line of a message (torch errors carry backtraces after it).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Commands that run no tensor work skip the re-exec (it costs a second libtorch load).
bool needs_compute_runtime(int argc, char** argv) {
  if (argc < 2) return false;
  for (const char* light : {"tokenize", "inspect", "help", "--help", "-h"})
    if (!std::strcmp(argv[1], light)) return false;
  for (int i = 2; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (needs_compute_runtime(argc, argv)) reft::reexec_with_passive_wait_policy(argv);
  const auto commands = all_commands();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    print_overview(argc < 2 ? std::cerr : std::cout, commands);
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  int first = 2;
  // Two-word commands: "bench generate", "bench train".
  if (argc > 2 && argv[2][0] != '-') {
    const std::string two = name + " " + argv[2];
    for (const auto& c : commands)
      if (c.name == two) {
        name = two;
        first = 3;
      }
  }
  const reft::cli::Command* command = nullptr;
  for (const auto& c : commands)
    if (c.name == name) command = &c;
  if (!command) {
    std::cerr << "reft: error: unknown command '" << name
              << "'; run 'reft --help' for the list of commands\n";
    return 2;
  }
  for (int i = first; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::cout << reft::cli::help_text(*command);
      return 0;
    }
  try {
    auto args = reft::cli::parse_args(name, command->flags, argc, argv, first);
    if (!command->takes_positional && !args.positional().empty())
      reft::usage_fail("[reft ", name, "] unexpected argument '", args.positional()[0], "'");
    return command->run(args);
  } catch (const reft::UsageError& e) {
    std::cerr << "reft: error: " << e.what() << "\n";
    return 2;
  } catch (const reft::Error& e) {
    std::cerr << "reft: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "reft: error: [torch] " << first_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "reft: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "reft: error: " << first_line(e.what()) << "\n";
    return 1;
  }
}
