// reft das | interchange | collect | steer: interchange-intervention analysis (DAS with IIA, and
// running one interchange intervention over pairs), activation collection and steering vectors.

#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "reft/activations.h"
#include "reft/adapter.h"
#include "reft/data.h"
#include "reft/error.h"
#include "reft/generate.h"
#include "reft/interchange.h"
#include "reft/positions.h"
#include "reft/pyreft.h"
#include "reft/runtime.h"
#include "reft/tokenizer.h"
#include "run_outputs.h"

namespace reft::cli {
namespace {

std::vector<Flag> with_runtime(std::vector<Flag> flags) {
  for (auto& f : runtime_flags()) flags.push_back(std::move(f));
  return flags;
}

std::unique_ptr<Model> open_model(const Args& args) {
  apply_runtime_flags(args);
  LoadOptions lo;
  lo.device = parse_device(args.get("device"));
  lo.dtype = parse_dtype(args.get("dtype"));
  return load_model(args.get("model"), lo);
}

uint64_t seed_flag(const Args& args) {
  const int64_t seed = args.get_int("seed");
  if (seed < 0) usage_fail("[--seed] expected a non-negative integer, found ", seed);
  return static_cast<uint64_t>(seed);
}

// A string field of a record, tokenized with special tokens; errors name file:line.
std::vector<int64_t> encode_field(const Record& r, const std::string& field, const Tokenizer& tok) {
  auto it = r.fields.find(field);
  if (it == r.fields.end() || !it->is_string())
    fail("[", r.where, "] expected field '", field, "' (text), found ",
         it == r.fields.end() ? "none" : it->type_name());
  return tok.encode(it->get<std::string>(), true);
}

// A position-spec flag, validated up front; errors name the flag itself.
std::string position_flag(const Args& args, const std::string& flag) {
  const std::string text = args.get(flag);
  try {
    PositionSpec::parse(text);
  } catch (const UsageError& e) {
    std::string why = e.what();
    if (why.starts_with("[") && why.find("] ") != std::string::npos)
      why.erase(0, why.find("] ") + 2);
    usage_fail("[--", flag, "] ", why);
  }
  return text;
}

// A directory that an adapter will be written to: its parent must be creatable now, so that a
// typo fails before minutes of training rather than after.
void check_output_dir(const std::filesystem::path& dir, const std::string& flag) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    usage_fail("[--", flag, "] expected a directory, found a file: ", dir.string());
  const auto parent = fs::absolute(dir, ec).parent_path();
  fs::create_directories(parent, ec);
  if (ec || !fs::is_directory(parent))
    fail("[--", flag, "] cannot create ", parent.string(), ": ", ec.message());
}

std::string fixed(double v, int digits = 3) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// ---- das ----

constexpr const char* kDasTypes = "dii, das, boundless_das or sigmoid_mask";

InterventionType das_type(const std::string& name) {
  InterventionType type;
  try {
    type = parse_intervention_type(name);
  } catch (const UsageError&) {
    usage_fail("[--type] expected ", kDasTypes, ", found '", name, "'");
  }
  if (!intervention_traits(type).trainable_interchange())
    usage_fail("[--type] expected ", kDasTypes, ", found '", name, "'");
  return type;
}

bool has_rank(InterventionType t) {
  const auto& traits = intervention_traits(t);
  return traits.low_rank || traits.rank_is_interchange_dim;
}

void print_das_config(const Model& model, const DasOptions& o, const std::string& data_path,
                      const PairSplit& split, const std::string& layers) {
  const auto& info = model.info();
  std::fprintf(stderr, "model         %s (%lld layers, hidden %lld, %s)\n",
               info.architecture.c_str(), static_cast<long long>(info.num_layers),
               static_cast<long long>(info.hidden_size), dtype_name(info.dtype).c_str());
  std::fprintf(stderr, "data          %s: %zu train, %zu held-out pairs\n", data_path.c_str(),
               split.train.size(), split.eval.size());
  const std::string rank =
      has_rank(o.type) ? " rank " + std::to_string(o.low_rank_dimension) : std::string();
  std::fprintf(stderr, "intervention  %s%s at %s, layers %s\n",
               std::string(intervention_type_name(o.type)).c_str(), rank.c_str(),
               std::string(component_name(o.component)).c_str(), layers.c_str());
  std::fprintf(stderr, "optimizer     AdamW lr %g, %lld epochs × batch %lld, seed %llu", o.lr,
               static_cast<long long>(o.epochs), static_cast<long long>(o.batch_size),
               static_cast<unsigned long long>(o.seed));
  if (intervention_traits(o.type).learned_boundary)
    std::fprintf(stderr, "; boundary lr %g, temperature %g → %g", o.boundary_lr,
                 o.temperature_start, o.temperature_end);
  std::fprintf(stderr, "\n");
}

void print_das_table(const DasSweep& sweep, InterventionType type, size_t eval_pairs) {
  const bool boundless = intervention_traits(type).learned_boundary;
  std::printf(
      "layer  component      DAS IIA  random IIA  vanilla IIA  unintervened  train IIA  loss%s\n",
      boundless ? "    boundary" : "");
  for (const auto& r : sweep.results) {
    std::printf("%5lld  %-13s  %7s  %10s  %11s  %12s  %9s  %-6s", static_cast<long long>(r.layer),
                std::string(component_name(r.component)).c_str(), fixed(r.iia).c_str(),
                fixed(r.random_iia).c_str(), fixed(r.vanilla_iia).c_str(),
                fixed(r.unintervened).c_str(), fixed(r.train_iia).c_str(),
                fixed(r.final_loss, 4).c_str());
    if (boundless) std::printf("  %8s", fixed(r.boundary).c_str());
    std::printf("\n");
  }
  const auto& best = sweep.results[sweep.best];
  std::printf("best: layer %lld, IIA %s (untrained %s, vanilla %s) on %zu held-out pairs\n",
              static_cast<long long>(best.layer), fixed(best.iia).c_str(),
              fixed(best.random_iia).c_str(), fixed(best.vanilla_iia).c_str(), eval_pairs);
}

nlohmann::ordered_json das_json(const DasSweep& sweep, const DasOptions& o,
                                const PairSplit& split) {
  nlohmann::ordered_json j;
  j["type"] = std::string(intervention_type_name(o.type));
  j["component"] = std::string(component_name(o.component));
  if (has_rank(o.type)) j["rank"] = o.low_rank_dimension;
  j["train_pairs"] = split.train.size();
  j["eval_pairs"] = split.eval.size();
  j["best_layer"] = sweep.results[sweep.best].layer;
  j["layers"] = nlohmann::json::array();
  for (const auto& r : sweep.results) {
    nlohmann::ordered_json row = {{"layer", r.layer},
                                  {"iia", r.iia},
                                  {"random_iia", r.random_iia},
                                  {"vanilla_iia", r.vanilla_iia},
                                  {"unintervened", r.unintervened},
                                  {"train_iia", r.train_iia},
                                  {"final_loss", r.final_loss}};
    if (r.boundary >= 0) row["boundary"] = r.boundary;
    j["layers"].push_back(row);
  }
  return j;
}

int run_das(const Args& args) {
  DasOptions o;
  o.component = parse_component(args.get("component"));
  o.type = das_type(args.get("type"));
  o.low_rank_dimension = args.get_int("rank");
  o.orthogonal = parse_orthogonal_mode(args.get("orthogonal"));
  o.epochs = args.get_int("epochs");
  o.batch_size = args.get_int("batch-size");
  o.lr = args.get_double("lr");
  o.boundary_lr = args.get_double("boundary-lr");
  o.temperature_start = args.get_double("temperature-start");
  o.temperature_end = args.get_double("temperature-end");
  o.seed = seed_flag(args);
  const double eval_fraction = args.get_double("eval-fraction");
  PairDataOptions po;
  po.default_position = position_flag(args, "position");
  if (auto out = args.maybe("output")) check_output_dir(*out, "output");
  auto model = open_model(args);
  const auto layers = parse_layers(args.get("layers"), model->info().num_layers);
  for (int64_t layer : layers) check_das_options(*model, layer, o);
  auto tokenizer = Tokenizer::load(args.get("model"));
  const std::string data_path = args.get("data");
  auto data = make_pair_dataset(read_records(data_path), *tokenizer, po);
  for (const auto& w : data.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  const auto split = split_pairs(data.pairs.size(), eval_fraction, o.seed);
  check_das_pairs(*model, data.pairs, split);
  print_das_config(*model, o, data_path, split, args.get("layers"));

  const int64_t per_epoch =
      static_cast<int64_t>((split.train.size() + o.batch_size - 1) / o.batch_size);
  double running = 0;
  // On a terminal a progress line (layer, step, loss, ETA over the whole sweep) is redrawn in
  // place between the per-epoch lines; elsewhere only the per-epoch lines are printed.
  const bool redraw = isatty(fileno(stderr)) != 0;
  size_t shown = 0;  // length of the progress line on screen
  const auto clear = [&] {
    if (shown) std::fprintf(stderr, "\r%*s\r", static_cast<int>(shown), "");
    shown = 0;
  };
  const auto start = std::chrono::steady_clock::now();
  auto sweep = das_sweep(*model, data.pairs, split, layers, o, [&](const DasEvent& e) {
    running += e.loss;
    if (e.step % per_epoch == 0) {
      clear();
      std::fprintf(stderr, "layer %lld  epoch %lld/%lld  loss %.4f\n",
                   static_cast<long long>(e.layer), static_cast<long long>(e.step / per_epoch),
                   static_cast<long long>(o.epochs), running / static_cast<double>(per_epoch));
      running = 0;
    }
    if (!redraw || e.step >= e.total_steps) return;
    const auto index = std::find(layers.begin(), layers.end(), e.layer) - layers.begin();
    const double done = static_cast<double>(index * e.total_steps + e.step);
    const double total = static_cast<double>(layers.size()) * static_cast<double>(e.total_steps);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char line[160];
    const int n = std::snprintf(
        line, sizeof line, "layer %lld (%lld/%zu)  step %lld/%lld  loss %.4f  ETA %s",
        static_cast<long long>(e.layer), static_cast<long long>(index + 1), layers.size(),
        static_cast<long long>(e.step), static_cast<long long>(e.total_steps), e.loss,
        format_duration(elapsed / done * (total - done)).c_str());
    const size_t len = static_cast<size_t>(std::clamp<int>(n, 0, sizeof line - 1));
    std::fprintf(stderr, "\r%s%*s", line, static_cast<int>(shown > len ? shown - len : 0), "");
    shown = len;
    std::fflush(stderr);
  });
  clear();
  const auto& best = sweep.results[sweep.best];

  if (auto out = args.maybe("output")) {
    AdapterMeta meta;
    meta.task = "das";
    meta.extra = {{"layer", best.layer},
                  {"iia", best.iia},
                  {"random_iia", best.random_iia},
                  {"vanilla_iia", best.vanilla_iia},
                  {"train_pairs", split.train.size()},
                  {"eval_pairs", split.eval.size()},
                  {"data", data_path}};
    save_adapter(*best.reft, *out, meta);
    std::fprintf(stderr, "wrote the layer %lld intervention to %s\n",
                 static_cast<long long>(best.layer), out->c_str());
  }
  if (args.has("json"))
    std::cout << das_json(sweep, o, split).dump() << "\n";
  else
    print_das_table(sweep, o.type, split.eval.size());
  return 0;
}

// ---- interchange ----

// The intervention of `reft interchange` without --adapter: an untrained interchange type.
std::unique_ptr<ReftModel> interchange_model(Model& model, const Args& args) {
  InterventionOptions iv;
  iv.type = parse_intervention_type(args.get("type"));
  iv.low_rank_dimension = args.get_int("rank");
  iv.interchange_dim = args.get_int("interchange-dim");
  // The full rotation swaps its first r coordinates unless told otherwise (as reft das trains it).
  if (intervention_traits(iv.type).rank_is_interchange_dim && !args.has("interchange-dim"))
    iv.interchange_dim = iv.low_rank_dimension;
  const int64_t layer = args.get_int("layers");
  if (layer < 0 || layer >= model.info().num_layers)
    usage_fail("[--layers] layer ", layer, " is out of range: the model has ",
               model.info().num_layers, " layers (0..", model.info().num_layers - 1, ")");
  auto config = ReftConfig::build({layer}, parse_component(args.get("component")), iv, "l1", false);
  return std::make_unique<ReftModel>(model, config, seed_flag(args));
}

int run_interchange(const Args& args) {
  if (args.has("adapter"))
    for (const char* flag : {"layers", "type", "rank", "interchange-dim", "component"})
      if (args.has(flag))
        usage_fail("[--", flag, "] conflicts with --adapter, which holds the site");
  if (!args.has("adapter") && !args.has("layers"))
    usage_fail("[reft interchange] expected --layers L (with --type) or --adapter DIR");
  const int64_t batch_size = args.get_int("batch-size");
  if (batch_size < 1) usage_fail("[--batch-size] expected >= 1, found ", batch_size);
  PairDataOptions po;
  po.default_position = position_flag(args, "position");
  po.require_label = false;
  auto model = open_model(args);
  std::unique_ptr<ReftModel> reft;
  if (auto dir = args.maybe("adapter")) {
    reft = std::move(load_adapter_auto(*model, *dir).reft);
  } else {
    reft = interchange_model(*model, args);
  }
  for (const auto& iv : reft->interventions())
    if (!iv->needs_source())
      usage_fail(
          "[reft interchange] expected interventions that read a source run (vanilla, addition, "
          "subtraction, dii, das, boundless_das, sigmoid_mask), found ",
          intervention_type_name(iv->options().type),
          iv->options().constant_source ? " with a stored source (a steering vector)" : "");
  // An adapter keeps the temperature it was trained down to; --temperature overrides it.
  if (args.has("temperature") || !args.has("adapter"))
    set_boundless_temperature(*reft, args.get_double("temperature"));
  auto tokenizer = Tokenizer::load(args.get("model"));
  const std::string data_path = args.get("data");
  auto data = make_pair_dataset(read_records(data_path), *tokenizer, po);
  for (const auto& w : data.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  const auto& pairs = data.pairs;
  const auto& r0 = reft->config().representations.at(0);
  std::fprintf(stderr, "interchange   %s at layer %lld %s%s on %zu pairs of %s\n",
               std::string(intervention_type_name(r0.intervention.type)).c_str(),
               static_cast<long long>(r0.layer), std::string(component_name(r0.component)).c_str(),
               reft->interventions().size() > 1 ? " (and more sites)" : "", pairs.size(),
               data_path.c_str());

  const auto intervened = interchange_logits(*reft, pairs, {}, batch_size).argmax(-1);  // (N)
  const auto base = plain_logits(*model, pairs, {}, batch_size).argmax(-1);             // (N)
  int64_t labelled = 0, hits = 0, base_hits = 0;
  const auto text_of = [&](int64_t id) {
    return tokenizer->tokens(std::vector<int64_t>{id}).at(0);
  };
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto& p = pairs[i];
    const int64_t predicted = intervened[i].item<int64_t>(), plain = base[i].item<int64_t>();
    nlohmann::ordered_json j = {{"pair", p.where},
                                {"predicted", text_of(predicted)},
                                {"predicted_id", predicted},
                                {"unintervened", text_of(plain)},
                                {"unintervened_id", plain}};
    if (p.label_id >= 0) {
      j["label"] = text_of(p.label_id);
      j["label_id"] = p.label_id;
      j["hit"] = predicted == p.label_id;
      ++labelled;
      hits += predicted == p.label_id;
      base_hits += plain == p.label_id;
    }
    std::cout << j.dump() << "\n";
  }
  if (labelled > 0)
    std::fprintf(stderr, "IIA %.3f (%lld/%lld labelled pairs); unintervened %.3f\n",
                 static_cast<double>(hits) / static_cast<double>(labelled),
                 static_cast<long long>(hits), static_cast<long long>(labelled),
                 static_cast<double>(base_hits) / static_cast<double>(labelled));
  return 0;
}

// ---- collect ----

int run_collect(const Args& args) {
  const std::string data_path = args.get("data"), field = args.get("field"),
                    out = args.get("output");
  CollectOptions c;
  c.component = parse_component(args.get("component"));
  c.positions = position_flag(args, "position");
  c.batch_size = args.get_int("batch-size");
  if (c.batch_size < 1) usage_fail("[--batch-size] expected >= 1, found ", c.batch_size);
  auto model = open_model(args);
  c.layers = parse_layers(args.get("layers"), model->info().num_layers);
  auto tokenizer = Tokenizer::load(args.get("model"));
  const auto records = read_records(data_path);
  std::vector<std::vector<int64_t>> sequences;
  std::vector<std::string> where;
  for (const auto& r : records) {
    sequences.push_back(encode_field(r, field, *tokenizer));
    where.push_back(r.where);
  }
  auto acts = collect_activations(*model, sequences, c, where);
  save_activations(acts, out,
                   {{"model", args.get("model")},
                    {"fingerprint", model->info().fingerprint},
                    {"data", data_path},
                    {"positions", c.positions}});
  std::fprintf(stderr, "wrote %s: %lld rows × %lld at %s layers %s from %zu records\n", out.c_str(),
               static_cast<long long>(acts.example_index.size(0)),
               static_cast<long long>(model->info().hidden_size),
               std::string(component_name(c.component)).c_str(), args.get("layers").c_str(),
               sequences.size());
  return 0;
}

// ---- steer ----

int run_steer(const Args& args) {
  if (!args.has("prompt") && !args.has("output"))
    usage_fail("[reft steer] expected --prompt (print a steered continuation) and/or --output DIR");
  SteeringOptions s;
  s.layer = args.get_int("layers");
  s.component = parse_component(args.get("component"));
  s.positions = position_flag(args, "position");
  s.batch_size = args.get_int("batch-size");
  if (s.batch_size < 1) usage_fail("[--batch-size] expected >= 1, found ", s.batch_size);
  const std::string apply = position_flag(args, "apply-position");
  const double alpha = args.get_double("alpha");
  if (!std::isfinite(alpha)) usage_fail("[--alpha] expected a finite scale, found ", alpha);
  GenerationOptions g;
  g.max_new_tokens = args.get_int("max-new-tokens");
  if (g.max_new_tokens < 0)
    usage_fail("[--max-new-tokens] expected >= 0, found ", g.max_new_tokens);
  if (auto dir = args.maybe("output")) check_output_dir(*dir, "output");
  auto model = open_model(args);
  if (s.layer < 0 || s.layer >= model->info().num_layers)
    usage_fail("[--layers] layer ", s.layer, " is out of range: the model has ",
               model->info().num_layers, " layers (0..", model->info().num_layers - 1, ")");
  auto tokenizer = Tokenizer::load(args.get("model"));
  const std::string pairs_path = args.get("data");
  const std::string positive_field = args.get("positive-field"),
                    negative_field = args.get("negative-field");
  std::vector<std::vector<int64_t>> positive, negative;
  std::vector<std::string> positive_where, negative_where;
  for (const auto& r : read_records(pairs_path)) {
    positive.push_back(encode_field(r, positive_field, *tokenizer));
    negative.push_back(encode_field(r, negative_field, *tokenizer));
    positive_where.push_back(r.where + " " + positive_field);
    negative_where.push_back(r.where + " " + negative_field);
  }
  const auto vector =
      steering_vector(*model, positive, negative, s, positive_where, negative_where);
  const double norm = vector.norm().item<double>();
  std::fprintf(stderr,
               "steering vector: %zu pairs at layer %lld %s positions %s, norm %.4f; alpha %g, "
               "applied at %s%s\n",
               positive.size(), static_cast<long long>(s.layer),
               std::string(component_name(s.component)).c_str(), s.positions.c_str(), norm, alpha,
               apply.c_str(), args.has("no-generated") ? "" : " and every generated token");
  auto steer = make_steering_model(*model, vector, alpha, s.layer, s.component, apply);
  if (auto dir = args.maybe("output")) {
    AdapterMeta meta;
    meta.task = "steering";
    meta.extra = {{"alpha", alpha},
                  {"pairs", pairs_path},
                  {"read_positions", s.positions},
                  {"pair_count", positive.size()},
                  {"vector_norm", norm},
                  // reft serve applies the vector to generated tokens too unless this is false.
                  {"intervene_generated", !args.has("no-generated")}};
    save_adapter(*steer, *dir, meta);
    std::fprintf(stderr, "wrote %s (apply with: reft generate --adapter %s%s)\n", dir->c_str(),
                 dir->c_str(), args.has("no-generated") ? "" : " --intervene-generated");
  }
  if (auto prompt = args.maybe("prompt")) {
    if (tokenizer->pad_id()) g.pad_token_id = *tokenizer->pad_id();
    const auto ids = tokenizer->encode(*prompt, true);
    if (args.has("baseline")) {
      auto plain = generate(*model, {ids}, g);
      std::fprintf(stderr, "unsteered: %s\n", tokenizer->decode(plain[0].new_ids, true).c_str());
    }
    auto hooks = steer->generation_hooks(!args.has("no-generated"));
    auto out = generate(*model, {ids}, g, hooks.get());
    std::cout << tokenizer->decode(out[0].new_ids, true) << "\n";
  }
  return 0;
}

}  // namespace

std::vector<Command> analysis_commands() {
  return {
      {"das",
       "Distributed alignment search: at each layer, train an interchange intervention (DII of "
       "rank r by default) on counterfactual pairs so that the intervened model predicts the "
       "label, and print the held-out interchange intervention accuracy (IIA) per layer beside "
       "the untrained (random rotation), vanilla (whole-vector swap) and unintervened baselines.",
       "--model DIR --data PAIRS.jsonl [--layers all] [--type dii|das|boundless_das|sigmoid_mask] "
       "[--rank 4] [--output DIR] [--json]",
       with_runtime({
           {"model", "DIR", "", "HuggingFace causal LM folder"},
           {"data", "FILE", "",
            "pairs: {\"base\", \"source\", \"label\" (text after the base, e.g. \" Ben\", or "
            "a token id), \"base_position\"?, \"source_position\"?} per record"},
           {"layers", "L", "all", "layers to search: \"0-4\", \"1;3\" or all"},
           {"component", "C", "block_output",
            "site: block_input, attention_input, attention_output, mlp_input, mlp_output, "
            "block_output"},
           {"type", "T", "dii",
            "dii (low-rank rotated), das (full rotation, first r dims swapped), boundless_das or "
            "sigmoid_mask"},
           {"rank", "R", "4", "subspace dimension r (dii, das)"},
           {"position", "P", "-1",
            "positions of pairs without base_position/source_position (-1 = last token; l1, "
            "f1+l1, 3,5 …)"},
           {"epochs", "N", "10", "passes over the training pairs"},
           {"lr", "LR", "0.01", "AdamW learning rate of the rotation (constant, no weight decay)"},
           {"boundary-lr", "LR", "0.01", "boundless_das: learning rate of the boundary"},
           {"temperature-start", "T", "50", "boundless_das: initial mask temperature"},
           {"temperature-end", "T", "0.1",
            "boundless_das: final mask temperature (linear schedule)"},
           {"batch-size", "B", "16", "pairs per step"},
           {"eval-fraction", "F", "0.2", "held-out fraction of the pairs for IIA"},
           {"orthogonal", "M", "lean", "parametrization of R: lean or pyreft"},
           {"seed", "S", "0", "seed of the split, the initial rotation and the batch order"},
           {"output", "DIR", "", "write the best layer's intervention as an adapter"},
           {"json", "", "", "print one JSON object instead of the table"},
       }),
       run_das},
      {"interchange",
       "Run an interchange intervention over counterfactual pairs: the base with (part of) the "
       "source's representation at the paired positions. Prints one JSON line per pair (the "
       "intervened and unintervened next token, the label and whether it was hit) and the IIA on "
       "stderr.",
       "--model DIR --data PAIRS.jsonl (--layers L [--type vanilla] [--rank r] | --adapter DIR)",
       with_runtime({
           {"model", "DIR", "", "HuggingFace causal LM folder"},
           {"data", "FILE", "", "pairs as for reft das; the label is optional here"},
           {"adapter", "DIR", "", "a trained interchange adapter (reft das --output)"},
           {"layers", "L", "", "site layer (without --adapter)", {"layer"}},
           {"component", "C", "block_output", "site component (without --adapter)"},
           {"type", "T", "vanilla",
            "vanilla, addition, subtraction, dii, das, boundless_das or sigmoid_mask (untrained: "
            "random rotation)"},
           {"rank", "R", "4", "subspace dimension r (dii, das)"},
           {"interchange-dim", "K", "0",
            "swap only the first K dims (vanilla, addition, subtraction; das: of the rotated "
            "basis); 0 = all (das: r)"},
           {"temperature", "T", "0.1",
            "boundless_das: mask temperature (an adapter keeps its own unless given)"},
           {"position", "P", "-1",
            "positions of pairs without base_position/source_position (-1 = last token)"},
           {"seed", "S", "0", "seed of an untrained rotation"},
           {"batch-size", "B", "32", "pairs per forward"},
       }),
       run_interchange},
      {"collect",
       "Collect the representations at (layer, component) and chosen positions for every record "
       "and write them to safetensors: layer_<l>.<component> (N, D) per layer, example_index, "
       "position and token_id (N).",
       "--model DIR --data FILE --output FILE.safetensors [--layers all] [--component "
       "block_output] "
       "[--position l1]",
       with_runtime({
           {"model", "DIR", "", "HuggingFace model folder"},
           {"data", "FILE", "", ".jsonl/.json/.csv records"},
           {"field", "NAME", "text",
            "the text field of each record (tokenized with special tokens)"},
           {"layers", "L", "all", "layers: \"0-4\", \"1;3\" or all"},
           {"component", "C", "block_output", "site component"},
           {"position", "P", "l1",
            "positions per text: l1 (last token), all, f1+l1, or a list 0,3,-1"},
           {"batch-size", "B", "16", "texts per forward"},
           {"output", "FILE", "", "output .safetensors", {"out"}},
       }),
       run_collect},
      {"steer",
       "Build a steering vector from contrastive pairs (mean representation of the positive "
       "prompts minus that of the negative ones) and add alpha times it as a constant-source "
       "addition intervention: print a steered continuation and/or save it as an adapter.",
       "--model DIR --data FILE --layers L [--alpha 1] [--prompt TEXT] [--output DIR]",
       with_runtime({
           {"model", "DIR", "", "HuggingFace causal LM folder"},
           {"data", "FILE", "", "records with a positive and a negative prompt", {"pairs"}},
           {"positive-field", "NAME", "positive", "field of the positive prompt"},
           {"negative-field", "NAME", "negative", "field of the negative prompt"},
           {"layers", "L", "", "layer whose representation is read and steered", {"layer"}},
           {"component", "C", "block_output", "site component"},
           {"position", "P", "l1", "positions of each prompt whose representations are averaged"},
           {"alpha", "A", "1", "scale of the added vector"},
           {"apply-position", "P", "all", "prompt positions the vector is added to"},
           {"no-generated", "", "", "do not add the vector to generated tokens"},
           {"prompt", "TEXT", "", "print the steered greedy continuation of TEXT"},
           {"baseline", "", "", "with --prompt: also print the unsteered continuation (stderr)"},
           {"max-new-tokens", "N", "32", "tokens to generate"},
           {"batch-size", "B", "16", "prompts per forward"},
           {"output",
            "DIR",
            "",
            "write the steering intervention as an adapter (reft generate --adapter DIR)",
            {"save"}},
       }),
       run_steer},
  };
}

}  // namespace reft::cli
