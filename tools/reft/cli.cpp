#include "cli.h"

#include <sstream>

#include "reft/error.h"
#include "reft/runtime.h"

namespace reft::cli {

bool Args::has(const std::string& name) const { return values_.count(name) != 0; }

std::optional<std::string> Args::maybe(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  if (auto it = defaults_.find(name); it != defaults_.end() && !it->second.empty())
    return it->second;
  return std::nullopt;
}

std::string Args::get(const std::string& name) const {
  auto v = maybe(name);
  if (!v) usage_fail("[--", name, "] required");
  return *v;
}

int64_t Args::get_int(const std::string& name) const {
  const std::string v = get(name);
  try {
    size_t used = 0;
    const int64_t out = std::stoll(v, &used);
    if (used == v.size()) return out;
  } catch (const std::exception&) {
  }
  usage_fail("[--", name, "] expected an integer, found '", v, "'");
}

double Args::get_double(const std::string& name) const {
  const std::string v = get(name);
  try {
    size_t used = 0;
    const double out = std::stod(v, &used);
    if (used == v.size()) return out;
  } catch (const std::exception&) {
  }
  usage_fail("[--", name, "] expected a number, found '", v, "'");
}

Args parse_args(const std::string& command, const std::vector<Flag>& flags, int argc, char** argv,
                int first) {
  Args args;
  for (const auto& f : flags) args.defaults_[f.name] = f.default_value;
  for (int i = first; i < argc; ++i) {
    std::string token = argv[i];
    if (token.rfind("--", 0) != 0 || token == "--") {
      args.positional_.push_back(token);
      continue;
    }
    std::string name = token.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const Flag* flag = nullptr;
    for (const auto& f : flags)
      if (f.name == name) flag = &f;
    if (!flag)
      usage_fail("[reft ", command, "] unknown flag --", name, "; see reft ", command, " --help");
    if (args.values_.count(name)) usage_fail("[reft ", command, "] flag --", name, " given twice");
    if (flag->value.empty()) {
      if (inline_value) usage_fail("[--", name, "] is a switch and takes no value");
      args.values_[name] = "1";
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) usage_fail("[--", name, "] expects a value (", flag->value, ")");
      value = argv[++i];
    }
    args.values_[name] = value;
  }
  return args;
}

std::string help_text(const Command& c) {
  std::ostringstream out;
  out << "usage: reft " << c.name << " " << c.usage << "\n\n" << c.summary << "\n\nflags:\n";
  size_t width = 0;
  for (const auto& f : c.flags) width = std::max(width, f.name.size() + f.value.size() + 3);
  for (const auto& f : c.flags) {
    std::string left = "--" + f.name + (f.value.empty() ? "" : " " + f.value);
    out << "  " << left << std::string(width - left.size() + 2, ' ') << f.help;
    if (!f.default_value.empty()) out << " (default: " << f.default_value << ")";
    out << "\n";
  }
  out << "  --help" << std::string(width - 6 + 2, ' ') << "show this help\n";
  return out.str();
}

std::vector<Flag> runtime_flags() {
  return {
      {"threads", "N", std::to_string(available_cores()),
       "intra-op threads for libtorch and OpenBLAS"},
      {"device", "DEV", "cpu", "cpu, cuda or cuda:N"},
      {"dtype", "DT", "f32", "compute dtype: f32, bf16 or f16"},
  };
}

void apply_runtime_flags(const Args& args) {
  RuntimeOptions opt;
  opt.threads = static_cast<int>(args.get_int("threads"));
  if (opt.threads < 1) usage_fail("[--threads] expected a positive integer, found ", opt.threads);
  init_runtime(opt);
}

std::vector<int64_t> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int64_t> ids;
  std::string cleaned;
  for (char c : text) cleaned += (c == ',' || c == '[' || c == ']') ? ' ' : c;
  std::istringstream in(cleaned);
  std::string tok;
  while (in >> tok) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size() || v < 0)
      usage_fail("[--", flag, "] expected non-negative integer ids, found '", tok, "'");
    ids.push_back(v);
  }
  return ids;
}

std::string json_ids(const std::vector<int64_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  return out + "]";
}

}  // namespace reft::cli
