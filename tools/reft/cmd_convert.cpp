// reft convert: moving adapters between pyreft directories (config.json + intkey_*.bin) and reft
// adapter directories (reft_config.json + interventions.safetensors).

#include <iostream>

#include "cli.h"
#include "reft/error.h"
#include "reft/pyreft.h"
#include "reft/runtime.h"

namespace reft::cli {
namespace {

void print_config(const ReftConfig& config, const std::vector<std::string>& keys) {
  std::cerr << "positions " << config.positions << (config.share_weights ? " (shared)" : "")
            << "\n";
  for (size_t i = 0; i < config.representations.size(); ++i) {
    const auto& r = config.representations[i];
    const auto& o = r.intervention;
    std::cerr << "  " << keys[i] << ": " << pyreft_class_name(o.type) << " rank "
              << o.low_rank_dimension << ", part " << position_part_name(r.part) << ", R "
              << orthogonal_mode_name(o.orthogonal) << "\n";
  }
}

int run_convert(const Args& args) {
  if (args.positional().size() != 1)
    usage_fail("[reft convert] expected one input directory, found ", args.positional().size());
  const std::string in = args.positional()[0];
  const std::string out = args.get("output");
  if (args.has("from") == args.has("to"))
    usage_fail("[reft convert] expected exactly one of --from pyreft or --to pyreft");
  const std::string format = args.has("from") ? args.get("from") : args.get("to");
  if (format != "pyreft")
    usage_fail("[--", args.has("from") ? "from" : "to", "] expected pyreft, found '", format, "'");

  if (args.has("to")) {
    for (const char* flag : {"model", "position", "orthogonal"})
      if (args.has(flag)) usage_fail("[--", flag, "] applies to --from pyreft only");
    const auto warnings = convert_reft_to_pyreft(in, out);
    for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
    std::cerr << "wrote " << out << " (pyreft: config.json + intkey_*.bin)\n";
    return 0;
  }

  if (!args.has("model"))
    usage_fail(
        "[reft convert --from pyreft] expected --model DIR: a reft adapter records the base "
        "model's layer "
        "count and fingerprint, which pyreft's files do not hold");
  apply_runtime_flags(args);
  PyreftReadOptions options;
  if (auto p = args.maybe("position")) options.positions = *p;
  if (auto m = args.maybe("orthogonal")) options.orthogonal = parse_orthogonal_mode(*m);
  // Read first so that a malformed directory fails before the model loads.
  const auto adapter = read_pyreft_adapter(in, options);
  for (const auto& note : adapter.notes) std::cerr << "note: " << note << "\n";
  print_config(adapter.config, adapter.keys);
  LoadOptions load;
  load.device = parse_device(args.get("device"));
  load.dtype = parse_dtype(args.get("dtype"));
  auto model = load_model(args.get("model"), load);
  convert_pyreft_to_reft(*model, in, out, options);
  std::cerr << "wrote " << out << " (reft: reft_config.json + interventions.safetensors)\n";
  return 0;
}

}  // namespace

std::vector<Command> convert_commands() {
  auto flags = std::vector<Flag>{
      {"from", "FORMAT", "",
       "convert a pyreft directory (config.json + intkey_*.bin) into a reft adapter"},
      {"to", "FORMAT", "",
       "convert a reft adapter into a pyreft directory that pyreft.ReftModel.load reads"},
      {"output", "DIR", "", "output directory (replaced)", {"out"}},
      {"model", "DIR", "",
       "--from pyreft: the base model (checks layers and hidden size, recorded in the adapter)"},
      {"position", "P", "",
       "--from pyreft: positions (pyreft stores none); default f1+l1 untied when every layer "
       "appears twice, else l1"},
      {"orthogonal", "M", "",
       "--from pyreft: parametrization of R: lean (default) or pyreft (bit-exact round trip)"},
  };
  for (auto& f : runtime_flags()) flags.push_back(std::move(f));
  return {{"convert",
           "Convert adapters between pyreft's format and reft's. Positions are not part of "
           "pyreft's files: pass "
           "--position for anything but pyreft's defaults.",
           "(--from pyreft --model DIR [--position P] | --to pyreft) IN_DIR --output DIR", flags,
           run_convert, /*takes_positional=*/true}};
}

}  // namespace reft::cli
