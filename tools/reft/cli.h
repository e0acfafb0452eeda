#pragma once
// The reft command line: one option table per subcommand, from which parsing and --help come.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reft/data.h"
#include "reft/reft_config.h"

namespace reft::cli {

struct Flag {
  std::string name;           // without the leading "--"
  std::string value;          // metavariable, e.g. "DIR"; empty for a switch
  std::string default_value;  // shown in --help; empty = no default
  std::string help;
  /// Older names that still work (e.g. "out" for "output"); listed in --help as "old name".
  std::vector<std::string> aliases = {};
  /// May be given more than once (e.g. --adapter NAME=DIR per adapter); read with Args::all().
  bool repeatable = false;
};

/// Parsed arguments of one subcommand.
class Args {
 public:
  bool has(const std::string& name) const;  // given on the command line (or a switch set)
  /// The value, or the flag's default; UsageError when neither exists.
  std::string get(const std::string& name) const;
  std::optional<std::string> maybe(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  /// Every value of a repeatable flag, in command-line order (empty when not given).
  std::vector<std::string> all(const std::string& name) const;
  bool flag(const std::string& name) const { return has(name); }
  /// Given on the command line (not filled from a --config file).
  bool from_command_line(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

  /// Fills flags from a --config JSON file: each key that names a flag (pyreft's and TrainOptions'
  /// snake_case words: "lr", "low_rank_dimension", "act_fn", "layers", …) gives that flag a value.
  /// A flag also given on the command line wins, and a note on stderr says so
  /// ("note: --lr 0.01 overrides 0.004 from config.json"). Returns the keys it used.
  std::vector<std::string> merge_config(const nlohmann::json& json, const std::string& file,
                                        const std::vector<Flag>& flags);

 private:
  friend Args parse_args(const std::string&, const std::vector<Flag>&, int, char**, int);
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> repeated_;
  std::map<std::string, std::string> defaults_;
  std::set<std::string> from_config_;
  std::vector<std::string> positional_;
};

struct Command {
  std::string name;
  std::string summary;
  std::string usage;  // the synopsis line after "reft <name>"
  std::vector<Flag> flags;
  int (*run)(const Args&);
  bool takes_positional = false;
  /// --config FILE also fills the command's flags (see Args::merge_config).
  bool merges_config = false;
};

/// Parses argv[first..argc) against `flags`; throws UsageError for unknown flags, missing values
/// and repeated flags. "--help" is handled by the caller.
Args parse_args(const std::string& command, const std::vector<Flag>& flags, int argc, char** argv,
                int first);

/// The candidate closest to `word` by edit distance, or "" when none is close enough to be a
/// plausible typo (used for "did you mean --lr?").
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

/// Rewrites the library's field names in an error message into flags:
/// "[TrainOptions.lr] expected > 0" → "[--lr] expected > 0" (low_rank_dimension → --rank, …).
std::string fields_as_flags(const std::string& message);

/// The --help text of a command: usage, summary and one line per flag with its default.
std::string help_text(const Command& command);

/// Flags every model command shares: --threads, --device, --dtype.
std::vector<Flag> runtime_flags();
/// Applies --threads and returns nothing; call first in every command that runs a model.
void apply_runtime_flags(const Args& args);

/// Splits "1 2 3" or "1,2,3" or "[1, 2, 3]" into ids; UsageError on anything else.
std::vector<int64_t> parse_ids(const std::string& text, const std::string& flag);

/// Prints a JSON array of ints on one line.
std::string json_ids(const std::vector<int64_t>& ids);

// Commands, one function each (cmd_*.cpp).
std::vector<Command> model_commands();
std::vector<Command> bench_commands();
std::vector<Command> train_commands();
std::vector<Command> convert_commands();
std::vector<Command> eval_commands();
std::vector<Command> analysis_commands();  // das, collect, steer (cmd_analysis.cpp)
std::vector<Command> chat_commands();      // render-chat (cmd_chat.cpp)
std::vector<Command> serve_commands();     // serve (cmd_serve.cpp)

// Shared by train and bench train (cmd_train.cpp).
std::vector<Flag> intervention_flags();
/// Data flags (format, field names, template, max length) and the options they give.
std::vector<Flag> data_flags();
DataOptions data_options(const Args& args);
/// Writes the intervention flags given on the command line (--layers, --rank, --type, …) into a
/// --config JSON (compact or expanded form), noting on stderr each value they replace.
void override_config_json(const Args& args, nlohmann::json& json, const std::string& file);
/// The ReFT config from --config or the intervention flags, validated against the model.
ReftConfig config_from_flags(const Args& args, const ModelInfo& info);

}  // namespace reft::cli
