// reft: the command-line frontend of libreft. Subcommands live in cmd_*.cpp; this file dispatches
// and turns library errors into one line on stderr (exit 1; usage errors exit 2).

#include <c10/util/Exception.h>

#include <torch/version.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "cli.h"
#include "reft/error.h"
#include "reft/runtime.h"
#include "reft_version.h"
#include "util/files.h"

namespace {

std::vector<reft::cli::Command> all_commands() {
  auto commands = reft::cli::model_commands();
  for (auto& c : reft::cli::train_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::eval_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::bench_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::convert_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::analysis_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::chat_commands()) commands.push_back(std::move(c));
  for (auto& c : reft::cli::serve_commands()) commands.push_back(std::move(c));
  return commands;
}

void print_overview(std::ostream& out, const std::vector<reft::cli::Command>& commands) {
  out << "reft: Representation Finetuning of frozen HuggingFace models\n\nusage: reft <command> "
         "[flags]\n\n"
         "commands:\n";
  for (const auto& c : commands)
    out << "  " << c.name << std::string(14 - std::min<size_t>(13, c.name.size()), ' ')
        << c.summary.substr(0, c.summary.find('\n')) << "\n";
  out << "\nRun 'reft <command> --help' for the flags of a command, 'reft --version' for the "
         "version.\n";
}

// "bench" of "bench generate": the first word of two-word commands.
std::vector<std::string> subcommands_of(const std::string& group,
                                        const std::vector<reft::cli::Command>& commands) {
  std::vector<std::string> out;
  for (const auto& c : commands)
    if (c.name.rfind(group + " ", 0) == 0) out.push_back(c.name.substr(group.size() + 1));
  return out;
}

// "filesystem error: cannot open: No such file or directory [p]" → "[p] cannot open: No such …".
std::string filesystem_message(const std::filesystem::filesystem_error& e) {
  std::string what = e.what();
  const std::string prefix = "filesystem error: ";
  if (what.rfind(prefix, 0) == 0) what = what.substr(prefix.size());
  if (!e.path1().empty()) {
    if (auto at = what.find(" [" + e.path1().string() + "]"); at != std::string::npos)
      what = what.substr(0, at);
    return "[" + e.path1().string() + "] " + what;
  }
  return what;
}

// The first line of a message (torch errors carry backtraces after it).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// `s` with control characters escaped (\n, \r, \t, \xNN), so that an error always prints as one
// line even when it quotes a file name or a key taken from the input.
std::string one_line(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const auto commands = all_commands();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    print_overview(argc < 2 ? std::cerr : std::cout, commands);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "version")) {
    std::cout << "reft " << REFT_VERSION << " (libtorch " << TORCH_VERSION << ")\n";
    return 0;
  }
  std::string name = argv[1];
  int first = 2;
  // Two-word commands: "bench generate", "bench train".
  const auto group = subcommands_of(name, commands);
  if (!group.empty()) {
    const bool help = argc > 2 && (!std::strcmp(argv[2], "--help") || !std::strcmp(argv[2], "-h"));
    if (argc < 3 || argv[2][0] == '-') {
      std::ostream& out = help ? std::cout : std::cerr;
      out << "usage: reft " << name << " <command> [flags]\n\ncommands:\n";
      for (const auto& c : commands)
        if (c.name.rfind(name + " ", 0) == 0)
          out << "  " << c.name << std::string(18 - std::min<size_t>(17, c.name.size()), ' ')
              << c.summary.substr(0, c.summary.find(". ")) << "\n";
      out << "\nRun 'reft " << name << " <command> --help' for the flags of a command.\n";
      return help ? 0 : 2;
    }
    if (std::find(group.begin(), group.end(), argv[2]) == group.end()) {
      const std::string near = reft::cli::closest_match(argv[2], group);
      std::cerr << "reft: error: unknown command '" << one_line(name + " " + argv[2]) << "'"
                << (near.empty() ? "" : "; did you mean '" + name + " " + near + "'?")
                << " (run 'reft " << name << " --help' for its commands)\n";
      return 2;
    }
    name += " " + std::string(argv[2]);
    first = 3;
  }
  const reft::cli::Command* command = nullptr;
  for (const auto& c : commands)
    if (c.name == name) command = &c;
  if (!command) {
    std::vector<std::string> names;
    for (const auto& c : commands) names.push_back(c.name.substr(0, c.name.find(' ')));
    const std::string near = reft::cli::closest_match(name, names);
    std::cerr << "reft: error: unknown command '" << one_line(name) << "'"
              << (near.empty() ? "" : "; did you mean '" + one_line(near) + "'?")
              << " (run 'reft --help' for the list of commands)\n";
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
    if (command->merges_config && args.has("config")) {
      const std::string file = args.get("config");
      args.merge_config(reft::read_json_file(file), file, command->flags);
    }
    return command->run(args);
  } catch (const reft::UsageError& e) {
    std::cerr << "reft: error: " << one_line(reft::cli::fields_as_flags(e.what())) << "\n";
    return 2;
  } catch (const reft::Error& e) {
    std::cerr << "reft: error: " << one_line(reft::cli::fields_as_flags(e.what())) << "\n";
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    std::cerr << "reft: error: " << one_line(filesystem_message(e)) << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "reft: error: [torch] " << one_line(first_line(e.what_without_backtrace()))
              << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "reft: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "reft: error: " << one_line(first_line(e.what())) << "\n";
    return 1;
  }
}
