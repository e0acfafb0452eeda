#include "cli.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>
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

std::vector<std::string> Args::all(const std::string& name) const {
  auto it = repeated_.find(name);
  return it == repeated_.end() ? std::vector<std::string>{} : it->second;
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
      if (f.name == name || std::count(f.aliases.begin(), f.aliases.end(), name)) flag = &f;
    if (!flag) {
      std::vector<std::string> names;
      for (const auto& f : flags) {
        names.push_back(f.name);
        for (const auto& a : f.aliases) names.push_back(a);
      }
      const std::string near = closest_match(name, names);
      usage_fail("[reft ", command, "] unknown flag --", name,
                 near.empty() ? "" : "; did you mean --" + near + "?", " (see reft ", command,
                 " --help)");
    }
    name = flag->name;  // an old name stands for the current one
    if (args.values_.count(name) && !flag->repeatable)
      usage_fail("[reft ", command, "] flag --", name, " given twice");
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
    args.repeated_[name].push_back(value);
  }
  return args;
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  // Levenshtein distance, with '_' and '-' equal (--batch_size means --batch-size).
  const auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const bool same = a[i - 1] == b[j - 1] || (a[i - 1] == '_' && b[j - 1] == '-');
        const size_t next = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
        diagonal = row[j];
        row[j] = next;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_distance = std::string::npos;
  for (const auto& c : candidates) {
    const size_t d = distance(word, c);
    if (d < best_distance) best_distance = d, best = c;
  }
  // A typo changes a few characters; more than a third of the word is a different word.
  const size_t allowed = std::max<size_t>(1, std::min<size_t>(3, (word.size() + 1) / 3));
  return best_distance <= allowed ? best : "";
}

bool Args::from_command_line(const std::string& name) const {
  return has(name) && !from_config_.count(name);
}

std::vector<std::string> Args::merge_config(const nlohmann::json& json, const std::string& file,
                                            const std::vector<Flag>& flags) {
  // pyreft's and HF TrainingArguments' words for flags; any other key names the flag spelt with
  // '-' for '_' ("batch_size" → --batch-size).
  static const std::map<std::string, std::string> kSynonyms = {
      {"low_rank_dimension", "rank"},
      {"intervention", "type"},
      {"positions", "position"},
      {"learning_rate", "lr"},
      {"num_train_epochs", "epochs"},
      {"gradient_accumulation_steps", "grad-accum"},
      {"per_device_train_batch_size", "batch-size"},
  };
  // Paths and the machine come from the command line only (a config's "dtype" is the
  // intervention's, not --dtype).
  static const std::set<std::string> kNeverFromConfig = {
      "config", "model", "data", "output", "eval-data", "threads", "device", "dtype", "resume"};
  std::vector<std::string> used;
  if (!json.is_object()) return used;
  for (const auto& [key, value] : json.items()) {
    std::string name = key;
    if (auto it = kSynonyms.find(key); it != kSynonyms.end()) name = it->second;
    std::replace(name.begin(), name.end(), '_', '-');
    const auto flag =
        std::find_if(flags.begin(), flags.end(), [&](const Flag& f) { return f.name == name; });
    if (flag == flags.end() || kNeverFromConfig.count(name)) continue;
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_boolean()) {
      text = value.get<bool>() ? (flag->value.empty() ? "1" : "true") : "false";
    } else if (value.is_number()) {
      text = value.dump();
    } else if (value.is_array()) {  // "layers": [3, 9]
      for (const auto& v : value) text += (text.empty() ? "" : ";") + v.dump();
    } else {
      continue;
    }
    const bool off_switch = flag->value.empty() && text == "false";
    if (values_.count(name)) {
      const std::string& given = values_[name];
      bool same = flag->value.empty() ? !off_switch : given == text;
      if (!same && !flag->value.empty()) {
        try {
          same = std::stod(given) == std::stod(text);
        } catch (const std::exception&) {
        }
      }
      if (!same)
        std::fprintf(stderr, "note: --%s%s overrides %s from %s\n", name.c_str(),
                     flag->value.empty() ? "" : (" " + given).c_str(), text.c_str(), file.c_str());
      continue;
    }
    if (off_switch) continue;
    values_[name] = text;
    from_config_.insert(name);
    used.push_back(name);
  }
  return used;
}

void override_config_json(const Args& args, nlohmann::json& json, const std::string& file) {
  if (!json.is_object()) return;
  if (args.from_command_line("layers") && json.contains("representations")) {
    // New layers: the compact form at those layers, with the first representation's options.
    const auto& reps = json["representations"];
    const nlohmann::json first = reps.is_array() && !reps.empty() ? reps[0] : reps;
    if (first.is_object())
      for (const auto& [key, value] : first.items())
        if (key != "layer" && key != "positions_part" && !json.contains(key)) json[key] = value;
    json.erase("representations");
    std::fprintf(stderr, "note: --layers %s overrides the representations of %s\n",
                 args.get("layers").c_str(), file.c_str());
  }
  if (args.from_command_line("layers")) json["layers"] = args.get("layers");
  if (args.from_command_line("position")) json["positions"] = args.get("position");
  if (args.from_command_line("share-weights")) json["share_weights"] = true;
  // Per-intervention options: at the top level and in every listed representation.
  struct Key {
    const char* flag;
    const char* key;
    const char* synonym;  // an older spelling that the reader also accepts
  };
  static const Key kKeys[] = {{"component", "component", ""},
                              {"type", "intervention", "type"},
                              {"rank", "low_rank_dimension", "rank"},
                              {"dropout", "dropout", ""},
                              {"act-fn", "act_fn", ""},
                              {"orthogonal", "orthogonal", ""}};
  for (const auto& k : kKeys) {
    if (!args.from_command_line(k.flag)) continue;
    const std::string flag = k.flag;
    const nlohmann::json value = flag == "rank"      ? nlohmann::json(args.get_int(k.flag))
                                 : flag == "dropout" ? nlohmann::json(args.get_double(k.flag))
                                                     : nlohmann::json(args.get(k.flag));
    const auto set = [&](nlohmann::json& j) {
      j[k.key] = value;
      if (*k.synonym) j.erase(k.synonym);
    };
    set(json);
    auto reps = json.find("representations");
    if (reps == json.end()) continue;
    bool noted = false;
    if (!reps->is_array()) {
      if (reps->is_object()) set(*reps);
      continue;
    }
    for (auto& r : *reps) {
      if (!r.is_object()) continue;
      const auto old = r.contains(k.key) ? r[k.key]
                       : *k.synonym      ? r.value(k.synonym, value)
                                         : value;
      if (old != value && !noted) {
        std::fprintf(stderr, "note: --%s %s overrides %s in the representations of %s\n", k.flag,
                     args.get(k.flag).c_str(),
                     old.is_string() ? old.get<std::string>().c_str() : old.dump().c_str(),
                     file.c_str());
        noted = true;
      }
      set(r);
    }
  }
}

std::string fields_as_flags(const std::string& message) {
  // The library names option-struct fields ("[TrainOptions.lr]"); the flag is the field spelt
  // with '-' for '_', except for these.
  static const std::map<std::string, std::string> kFlagOfField = {
      {"low_rank_dimension", "rank"},
      {"output_dir", "output"},
      {"positions", "position"},
      {"layer", "layers"},
  };
  // Plain function parameters the library names the same way ("[alpha] expected a finite …").
  static const std::set<std::string> kParameters = {"alpha", "batch_size", "eval_fraction"};
  std::string out;
  size_t at = 0;
  while (at < message.size()) {
    const size_t open = message.find('[', at);
    const size_t close = open == std::string::npos ? open : message.find(']', open);
    if (close == std::string::npos) break;
    const std::string inside = message.substr(open + 1, close - open - 1);
    const size_t dot = inside.find('.');
    const bool field =
        dot != std::string::npos && dot > 0 && std::isupper(inside[0]) &&
        inside.find_first_not_of("abcdefghijklmnopqrstuvwxyz_", dot + 1) == std::string::npos &&
        dot + 1 < inside.size() &&
        inside.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == dot;
    out += message.substr(at, open - at + 1);
    if (field || kParameters.count(inside)) {
      std::string name = field ? inside.substr(dot + 1) : inside;
      if (auto it = kFlagOfField.find(name); it != kFlagOfField.end()) name = it->second;
      std::replace(name.begin(), name.end(), '_', '-');
      out += "--" + name;
    } else {
      out += inside;
    }
    out += "]";
    at = close + 1;
  }
  return out + message.substr(std::min(at, message.size()));
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
    for (const auto& a : f.aliases) out << " (old name: --" << a << ")";
    if (f.repeatable) out << " (repeatable)";
    out << "\n";
  }
  out << "  --help" << std::string(width - 6 + 2, ' ') << "show this help\n";
  return out.str();
}

std::vector<Flag> runtime_flags() {
  return {
      {"threads", "N", std::to_string(available_cores()),
       "threads of the compute pool (every parallel kernel and matrix product)"},
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
