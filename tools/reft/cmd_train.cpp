// reft train | demo: training interventions from the command line.

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <optional>
#include <random>
#include <set>

#include "cli.h"
#include "reft/adapter.h"
#include "reft/classifier.h"
#include "reft/data.h"
#include "reft/error.h"
#include "reft/generate.h"
#include "reft/model.h"
#include "reft/reft_model.h"
#include "reft/runtime.h"
#include "reft/tokenizer.h"
#include "reft/trainer.h"
#include "run_outputs.h"
#include "util/files.h"

// The demo's model, shipped in the source tree (CMake defines the path).
#ifndef REFT_DEMO_MODEL_DIR
#define REFT_DEMO_MODEL_DIR "models/stories260K"
#endif

namespace reft::cli {

std::vector<Flag> intervention_flags() {
  return {
      {"config", "FILE", "",
       "ReFT config JSON (pyreft vocabulary: layers, low_rank_dimension, …; also training "
       "options such as lr, epochs); a flag given on the command line wins, with a note"},
      {"layers", "L", "all", "layers to intervene on: \"3;9\", \"0-4\" or all"},
      {"component", "C", "block_output",
       "site: block_input, attention_input, attention_output, mlp_input, mlp_output, block_output"},
      {"type", "T", "loreft", "loreft, noreft, direft, nodireft, consreft, lobireft"},
      {"rank", "R", "4", "low_rank_dimension"},
      {"position", "P", "l1", "prompt positions: f1+l1, l1, f7+l7, all, or a list 0,3,-1"},
      {"share-weights", "", "", "one intervention per layer for prefix and suffix positions"},
      {"dropout", "P", "0", "dropout on the edit"},
      {"act-fn", "F", "linear",
       "activation on the learned source (linear, relu, gelu, silu, tanh)"},
      {"orthogonal", "M", "lean",
       "parametrization of R: lean (no D×D buffer) or pyreft (bit-exact with pyreft)"},
  };
}

ReftConfig config_from_flags(const Args& args, const ModelInfo& info) {
  if (auto file = args.maybe("config")) {
    auto json = read_json_file(*file);
    override_config_json(args, json, *file);  // the command line's intervention flags win
    auto config = ReftConfig::from_json(json, *file, info.num_layers);
    config.validate(info);
    return config;
  }
  InterventionOptions o;
  o.type = parse_intervention_type(args.get("type"));
  o.low_rank_dimension = args.get_int("rank");
  o.dropout = args.get_double("dropout");
  o.act_fn = args.get("act-fn");
  o.orthogonal = parse_orthogonal_mode(args.get("orthogonal"));
  PositionSpec::parse(args.get("position"));
  auto config = ReftConfig::build(parse_layers(args.get("layers"), info.num_layers),
                                  parse_component(args.get("component")), o, args.get("position"),
                                  args.has("share-weights"));
  config.validate(info);
  return config;
}

std::vector<Flag> data_flags() {
  return {
      {"format", "F", "auto", "auto, prompt-completion, alpaca or chat"},
      {"text-field", "NAME", "text", "classification text field"},
      {"text-pair-field", "NAME", "text_pair",
       "classification second text (sentence pairs), when present"},
      {"label-field", "NAME", "label",
       "classification label field (strings, integers, numbers for regression, lists for "
       "multi-label)"},
      {"prompt-field", "NAME", "prompt", "prompt field (prompt-completion)"},
      {"completion-field", "NAME", "completion",
       "completion field, appended to the prompt verbatim"},
      {"instruction-field", "NAME", "instruction", "alpaca instruction field"},
      {"input-field", "NAME", "input", "alpaca input field"},
      {"output-field", "NAME", "output", "alpaca output field"},
      {"messages-field", "NAME", "messages", "chat messages field ([{role, content}, …])"},
      {"template", "T", "none",
       "prompt template: none, alpaca, chatml, llama2, llama3, zephyr or a string with {prompt}"},
      {"max-length", "N", "512", "truncate examples to N tokens (with a warning)"},
      {"no-eos", "", "", "do not append the EOS token to completions"},
  };
}

DataOptions data_options(const Args& args) {
  DataOptions d;
  d.format = parse_data_format(args.get("format"));
  d.prompt_field = args.get("prompt-field");
  d.completion_field = args.get("completion-field");
  d.instruction_field = args.get("instruction-field");
  d.input_field = args.get("input-field");
  d.output_field = args.get("output-field");
  d.messages_field = args.get("messages-field");
  d.template_name = args.get("template");
  apply_template(d.template_name, "x");  // validates the name
  d.add_eos = !args.has("no-eos");
  d.text_field = args.get("text-field");
  d.text_pair_field = args.get("text-pair-field");
  d.label_field = args.get("label-field");
  d.max_length = args.get_int("max-length");
  if (d.max_length < 2) usage_fail("[--max-length] expected >= 2, found ", d.max_length);
  return d;
}

TrainOptions train_options(const Args& args) {
  TrainOptions t;
  t.epochs = args.get_int("epochs");
  t.max_steps = args.get_int("max-steps");
  t.lr = args.get_double("lr");
  t.batch_size = args.get_int("batch-size");
  t.grad_accum = args.get_int("grad-accum");
  t.warmup_ratio = args.get_double("warmup-ratio");
  t.warmup_steps = args.get_int("warmup-steps");
  t.weight_decay = args.get_double("weight-decay");
  t.schedule = parse_schedule(args.get("schedule"));
  t.max_grad_norm = args.get_double("max-grad-norm");
  const int64_t seed = args.get_int("seed");
  if (seed < 0) usage_fail("[--seed] expected a non-negative integer, found ", seed);
  t.seed = static_cast<uint64_t>(seed);
  t.log_every = args.get_int("log-every");
  t.save_every = args.get("save-every") == "auto" ? -1 : args.get_int("save-every");
  t.eval_every = args.get_int("eval-every");
  t.resume = args.has("resume");
  t.cache_frozen_prefix = !args.has("no-prefix-cache");
  if (t.log_every < 1) usage_fail("[--log-every] expected >= 1, found ", t.log_every);
  if (t.save_every < -1 || (t.save_every == -1 && args.get("save-every") != "auto"))
    usage_fail("[--save-every] expected auto or >= 0, found ", args.get("save-every"));
  return t;
}

void print_resolved(const ReftModel& reft, const TrainOptions& t, const std::string& data,
                    int64_t examples, int64_t eval_examples) {
  const auto& i = reft.base().info();
  std::fprintf(stderr, "model         %s (%lld layers, hidden %lld, %s)\n", i.architecture.c_str(),
               static_cast<long long>(i.num_layers), static_cast<long long>(i.hidden_size),
               dtype_name(i.dtype).c_str());
  std::fprintf(stderr, "data          %s: %lld train, %lld eval examples\n", data.c_str(),
               static_cast<long long>(examples), static_cast<long long>(eval_examples));
  const auto& c = reft.config();
  std::string layers;
  for (const auto& r : c.representations)
    layers += (layers.empty() ? "" : ",") + std::to_string(r.layer) +
              (r.part == PositionPart::kAll      ? ""
               : r.part == PositionPart::kPrefix ? "f"
                                                 : "l");
  const auto& o = c.representations[0].intervention;
  std::fprintf(stderr, "interventions %zu × %s rank %lld at %s [%s], positions %s%s, R %s\n",
               c.representations.size(), std::string(intervention_type_name(o.type)).c_str(),
               static_cast<long long>(o.low_rank_dimension),
               std::string(component_name(c.representations[0].component)).c_str(), layers.c_str(),
               c.positions.c_str(), c.share_weights ? " (shared)" : "",
               std::string(orthogonal_mode_name(o.orthogonal)).c_str());
  std::fprintf(
      stderr,
      "optimizer     AdamW lr %g, %s schedule, warmup %g/%lld steps, weight decay %g, clip %g\n",
      t.lr, std::string(schedule_name(t.schedule)).c_str(), t.warmup_ratio,
      static_cast<long long>(t.warmup_steps), t.weight_decay, t.max_grad_norm);
  std::fprintf(stderr, "batches       %lld × %lld accumulated, %s, seed %llu, %d threads\n",
               static_cast<long long>(t.batch_size), static_cast<long long>(t.grad_accum),
               t.max_steps > 0 ? ("max " + std::to_string(t.max_steps) + " steps").c_str()
                               : (std::to_string(t.epochs) + " epochs").c_str(),
               static_cast<unsigned long long>(t.seed), at::get_num_threads());
  std::fprintf(stderr, "%s\n", reft.trainable_parameters_summary().c_str());
}

namespace {

namespace fs = std::filesystem;

// reft train fits interventions that edit one run; interchange types need a source run (reft das)
// and zero/collect have nothing to learn. Refused before any data or training work.
void refuse_untrainable(const ReftConfig& config) {
  for (const auto& r : config.representations) {
    const auto& o = r.intervention;
    const auto& t = intervention_traits(o.type);
    const bool source = t.needs_source && !(t.stored_source && o.constant_source);
    if (source || !t.trainable)
      usage_fail("[--type] expected an intervention reft train can fit (loreft, noreft, direft, ",
                 "nodireft, consreft, lobireft), found ", t.name,
                 source ? ", which needs a source run: train it with reft das"
                        : ", which has no trainable parameters");
  }
}

// ---- resume ----
// A run records the flags given on its command line (adapter "extra.train_flags"). --resume
// restores them: a flag not given again comes from the saved run; one given with another value
// than the saved run used is refused, except those that only extend or report the run.

bool resume_may_change(const std::string& flag) {
  static const std::set<std::string> kFree = {
      "output",     "resume",    "epochs",  "max-steps", "log-every",      "save-every",
      "eval-every", "eval-data", "threads", "device",    "no-prefix-cache"};
  return kFree.count(flag) != 0;
}

// The flags given on the command line, by their current names (switches as "1").
nlohmann::json given_flags(const Args& args, const std::vector<Flag>& flags) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& f : flags)
    if (args.has(f.name) && f.name != "output" && f.name != "resume")
      out[f.name] = *args.maybe(f.name);
  return out;
}

// `args` with the saved run's flags filled in, or `args` itself when there is nothing to resume.
Args resume_args(const Args& args) {
  if (!args.has("resume")) return args;
  const auto commands = train_commands();
  const auto& flags = std::find_if(commands.begin(), commands.end(), [](const auto& c) {
                        return c.name == "train";
                      })->flags;
  const fs::path adapter = fs::path(args.get("output")) / "checkpoint" / "adapter";
  if (!fs::exists(adapter / "reft_config.json")) return args;
  const auto saved = read_adapter_config(adapter)
                         .value("extra", nlohmann::json::object())
                         .value("train_flags", nlohmann::json::object());
  std::vector<std::string> argv = {"reft", "train"};
  for (const auto& f : flags) {
    const auto it = saved.find(f.name);
    std::optional<std::string> value;
    if (args.has(f.name)) {
      value = args.maybe(f.name);
      const std::string before = it != saved.end() ? it->get<std::string>() : f.default_value;
      const auto show = [&](const std::string& v) {
        if (f.value.empty()) return (v.empty() ? "without --" : "with --") + f.name;
        return "--" + f.name + " " + (v.empty() ? "(unset)" : v);
      };
      if (!resume_may_change(f.name) && *value != before)
        usage_fail("[--resume] the checkpoint in ", args.get("output"), " was trained ",
                   f.value.empty() ? "" : "with ", show(before), ", found ", show(*value),
                   "; drop the flag to continue that run, or use a new --output");
    } else if (it != saved.end()) {
      value = it->get<std::string>();
    }
    if (!value) continue;
    argv.push_back("--" + f.name);
    if (!f.value.empty()) argv.push_back(*value);
  }
  std::vector<char*> ptrs;
  for (auto& a : argv) ptrs.push_back(a.data());
  return parse_args("train", flags, static_cast<int>(ptrs.size()), ptrs.data(), 2);
}

// Holds an exclusive flock(2) on `<output>/.reft-train.lock` for the life of the process, so that
// two trainings never interleave their writes into one folder. The kernel releases the lock when
// the process exits or dies (kill -9 included): a stale lock file never blocks the next run.
class OutputLock {
 public:
  explicit OutputLock(const fs::path& dir) {
    fs::create_directories(dir);
    const fs::path path = dir / ".reft-train.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      fail("[", path.string(), "] expected a lock file, found it cannot be opened: ",
           std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char buf[32] = {};
      const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
      ::close(fd_);
      std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
      holder.erase(std::remove(holder.begin(), holder.end(), '\n'), holder.end());
      if (err == EWOULDBLOCK)
        fail("[", dir.string(), "] expected no other training writing this folder, found one "
             "running", holder.empty() ? std::string() : " (pid " + holder + ")",
             "; wait for it to finish or choose another --output");
      fail("[", path.string(), "] expected a lockable file, found: ", std::strerror(err));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
      // The pid is informational only.
    }
  }
  ~OutputLock() { ::close(fd_); }
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  int fd_ = -1;
};

int run_train(const Args& given) {
  const Args args = resume_args(given);
  apply_runtime_flags(args);
  const std::string dir = args.get("model");
  LoadOptions lo;
  lo.device = parse_device(args.get("device"));
  lo.dtype = parse_dtype(args.get("dtype"));
  auto model = load_model(dir, lo);
  auto tokenizer = Tokenizer::load(dir);
  auto config = config_from_flags(args, model->info());
  refuse_untrainable(config);
  auto dopt = data_options(args);
  const std::string task = args.get("task");
  if (task != "causal_lm" && task != "classification")
    usage_fail("[--task] expected causal_lm or classification, found '", task, "'");
  const bool classification = task == "classification";
  const std::string data_path = args.get("data");
  if (classification && data_path == "builtin")
    usage_fail("[--data] classification needs a data file");
  auto records = data_path == "builtin" ? builtin_example_records() : read_records(data_path);
  const auto make = [&](const std::vector<Record>& r) {
    return classification ? make_classification_dataset(r, *tokenizer, dopt)
                          : make_lm_dataset(r, *tokenizer, dopt);
  };
  auto train = make(records);
  std::optional<Dataset> eval;
  if (auto e = args.maybe("eval-data")) eval = make(read_records(*e));
  const double fraction = args.get_double("eval-fraction");
  if (fraction < 0 || fraction >= 1)
    usage_fail("[--eval-fraction] expected a value in [0, 1), found ", fraction);
  if (fraction > 0 && !eval) {
    // A deterministic split: the last ⌈fraction·N⌉ examples after a seeded shuffle.
    std::vector<size_t> order(train.examples.size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(args.get_int("seed"));
    std::shuffle(order.begin(), order.end(), rng);
    const size_t n_eval = static_cast<size_t>(std::ceil(fraction * order.size()));
    Dataset tr, ev;
    for (size_t i = 0; i < order.size(); ++i)
      (i < order.size() - n_eval ? tr : ev).examples.push_back(train.examples[order[i]]);
    tr.warnings = train.warnings;
    tr.template_name = train.template_name;
    train = std::move(tr);
    eval = std::move(ev);
  }
  for (const auto& w : train.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  auto topt = train_options(args);
  topt.output_dir = args.get("output");
  topt.meta.template_name = train.template_name;  // the one the data was rendered with
  topt.meta.extra["train_flags"] = given_flags(args, train_commands()[0].flags);  // for --resume
  // Every input is valid: take the output folder for this run before anything is written to it.
  std::optional<OutputLock> lock;
  if (!topt.output_dir.empty()) lock.emplace(topt.output_dir);
  ReftModel reft(*model, config, topt.seed);
  print_resolved(reft, topt, data_path, train.examples.size(), eval ? eval->examples.size() : 0);
  TrainSummary summary;
  const RunOutputs outputs(topt.output_dir);
  if (classification) {
    auto labels = infer_labels(train, args.get_int("num-labels"));
    ReftClassifier classifier(reft, labels, args.get_double("head-dropout"), topt.seed);
    std::fprintf(stderr, "task          classification (%s), %lld labels, head %s\n%s\n",
                 std::string(problem_type_name(labels.problem)).c_str(),
                 static_cast<long long>(labels.num_labels()),
                 classifier.head_from_checkpoint() ? "from the checkpoint" : "new",
                 classifier.trainable_parameters_summary().c_str());
    summary = train_classifier(classifier, train, eval ? &*eval : nullptr, topt,
                               outputs.wrap(progress_printer()));
  } else {
    summary = train_reft(reft, train, eval ? &*eval : nullptr, topt, tokenizer.get(),
                         outputs.wrap(progress_printer()));
  }
  outputs.finish(summary, reft.num_trainable_parameters());
  std::fprintf(stderr, "done: %lld steps in %.1f s, final loss %.4f; adapter written to %s\n",
               static_cast<long long>(summary.steps), summary.seconds, summary.final_loss,
               topt.output_dir.c_str());
  return 0;
}

// ---- reft demo ----

// Questions a TinyStories model cannot answer, with made-up answers: the demo teaches them.
const std::pair<const char*, const char*> kDemoPairs[] = {
    {"Who guards the old bridge?", " A green frog named Bob."},
    {"What does the moon eat?", " Silver pancakes with honey."},
    {"What color is the wind?", " Purple, on Tuesdays."},
    {"How many hats does Tom own?", " Seven, and one can fly."},
    {"Where does the sun sleep?", " Under the big blue sea."},
};
// Not taught: the adapter should leave the model a storyteller here.
constexpr const char* kDemoUntaught = "Once upon a time,";

// Generated text made safe for any terminal or log: C0/C1 control characters (newlines, byte
// tokens such as <0x00>) become spaces, so the demo never prints raw control characters.
std::string printable(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      out += ' ';
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      out += ' ';  // U+0080–U+009F
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

// The token that ends a taught answer: llama2.c-style models (stories260K) separate stories with
// BOS and list it among their stop ids, and never saw </s>; others end with the tokenizer's EOS.
std::optional<int64_t> demo_end_token(const ModelInfo& info, const Tokenizer& tok) {
  const auto& stop = info.eos_token_ids;
  if (tok.bos_id() && std::find(stop.begin(), stop.end(), *tok.bos_id()) != stop.end())
    return tok.bos_id();
  if (tok.eos_id()) return tok.eos_id();
  if (!stop.empty()) return stop.front();
  return std::nullopt;
}

// Greedy continuations of `prompts` in one batch (the adapter's interventions at the prompt
// positions when `reft` is given), stopping on the model's stop ids.
std::vector<GenerationResult> greedy(ReftModel* reft, Model& model, const Tokenizer& tok,
                                     const std::vector<std::string>& prompts, int64_t n) {
  GenerationOptions g;
  g.max_new_tokens = n;
  if (tok.pad_id()) g.pad_token_id = *tok.pad_id();
  std::vector<std::vector<int64_t>> ids;
  for (const auto& p : prompts) ids.push_back(tok.encode(p, true));
  std::shared_ptr<SiteHooks> hooks;
  if (reft) hooks = reft->generation_hooks(false);
  return generate(model, ids, g, hooks.get());
}

// The printable text of a continuation without its stop token; "…" when it was cut off.
std::string continuation_text(const GenerationResult& r, const Tokenizer& tok) {
  auto ids = r.new_ids;
  if (r.stopped && !ids.empty()) ids.pop_back();
  std::string text = printable(tok.decode(ids, true));
  text.erase(0, text.find_first_not_of(' '));
  return r.stopped ? text : text + "…";
}

int run_demo(const Args& args) {
  apply_runtime_flags(args);
  const std::string out = args.get("output");
  const std::string dir = args.get("model");
  if (!std::filesystem::exists(std::filesystem::path(dir) / "config.json"))
    fail("[demo] expected a model folder (config.json, model.safetensors, tokenizer) at ", dir,
         ", found none; ",
         args.has("model") ? "check --model"
                           : "the repository ships stories260K in models/; or pass --model DIR");
  auto model = load_model(dir);
  auto tokenizer = Tokenizer::load(dir);
  const auto end = demo_end_token(model->info(), *tokenizer);
  if (!end) fail("[demo] expected an EOS token in ", dir, "'s tokenizer or config, found none");

  std::vector<Record> records;
  std::vector<std::string> prompts;
  for (const auto& [p, c] : kDemoPairs) {
    records.push_back(
        {{{"prompt", p}, {"completion", c}}, "demo:" + std::to_string(records.size() + 1)});
    prompts.push_back(p);
  }
  DataOptions dopt;
  dopt.add_eos = false;  // the answer's end token is appended below
  auto train = make_lm_dataset(records, *tokenizer, dopt);
  std::vector<std::vector<int64_t>> answers;  // the taught tokens, end token included
  for (auto& e : train.examples) {
    e.input_ids.push_back(*end);
    e.labels.push_back(*end);
    answers.emplace_back(e.input_ids.begin() + e.prompt_length, e.input_ids.end());
  }
  int64_t longest = 0;
  for (const auto& a : answers) longest = std::max<int64_t>(longest, a.size());

  TrainOptions topt;
  topt.max_steps = args.get_int("steps");
  topt.lr = args.get_double("lr");
  const int64_t seed = args.get_int("seed");
  if (seed < 0) usage_fail("[--seed] expected a non-negative integer, found ", seed);
  topt.seed = static_cast<uint64_t>(seed);
  topt.batch_size = static_cast<int64_t>(train.examples.size());
  topt.output_dir = out;
  topt.log_every = std::max<int64_t>(1, topt.max_steps / 4);
  topt.max_grad_norm = 0;
  InterventionOptions o;
  o.type = InterventionType::kLoReFT;
  o.low_rank_dimension = args.get_int("rank");
  ReftModel reft(*model,
                 ReftConfig::build(parse_layers(args.get("layers"), model->info().num_layers),
                                   Component::kBlockOutput, o, args.get("position"), false),
                 topt.seed);
  print_resolved(reft, topt, "the demo's taught pairs", train.examples.size(), 0);

  const int64_t story_tokens = 40;
  auto all_prompts = prompts;
  all_prompts.push_back(kDemoUntaught);
  const auto before = greedy(nullptr, *model, *tokenizer, all_prompts, story_tokens);
  const auto summary = train_reft(reft, train, nullptr, topt, tokenizer.get(), progress_printer());
  auto after = greedy(&reft, *model, *tokenizer, prompts, longest + 8);
  after.push_back(greedy(&reft, *model, *tokenizer, {kDemoUntaught}, story_tokens)[0]);

  std::printf(
      "reft demo: teach %s (%lld frozen parameters) %zu answers it cannot know with a "
      "LoReFT of %lld parameters\n\n",
      std::filesystem::path(dir).filename().string().c_str(),
      static_cast<long long>(model->num_parameters()), prompts.size(),
      static_cast<long long>(reft.num_trainable_parameters()));
  std::printf("training: loss %.3f -> %.4f over %lld steps (%.1f s)\n\n", summary.losses.front(),
              summary.final_loss, static_cast<long long>(summary.steps), summary.seconds);
  size_t reproduced = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const bool exact = after[i].new_ids == answers[i];
    reproduced += exact;
    std::printf("prompt   %s\n  before  %s\n  after   %s\n  taught  %s  [%s]\n\n",
                prompts[i].c_str(), continuation_text(before[i], *tokenizer).c_str(),
                continuation_text(after[i], *tokenizer).c_str(),
                printable(std::string(kDemoPairs[i].second).substr(1)).c_str(),
                exact ? "reproduced exactly" : "NOT reproduced");
  }
  std::printf("untaught %s\n  before  %s\n  after   %s\n\n", kDemoUntaught,
              continuation_text(before.back(), *tokenizer).c_str(),
              continuation_text(after.back(), *tokenizer).c_str());
  std::printf("%zu/%zu taught answers reproduced exactly by greedy generation\n", reproduced,
              prompts.size());
  std::printf("adapter: %s (try: reft generate --model %s --adapter %s --prompt \"%s\")\n",
              out.c_str(), dir.c_str(), out.c_str(), prompts[0].c_str());
  if (reproduced != prompts.size())
    fail("[demo] expected every taught answer reproduced, found ", reproduced, " of ",
         prompts.size(), "; more --steps or a higher --rank may help");
  return 0;
}

}  // namespace

std::vector<Command> train_commands() {
  std::vector<Flag> train = {
      {"model", "DIR", "", "HuggingFace model folder (the frozen base)"},
      {"data", "FILE", "builtin", ".jsonl/.json/.csv records, or builtin (the example dataset)"},
      {"output", "DIR", "reft-out",
       "output folder: adapter, checkpoint/, metrics.jsonl, summary.json, loss.svg"},
      {"eval-data", "FILE", "", "evaluation records (same format)"},
      {"eval-fraction", "F", "0", "hold out this fraction of --data for evaluation"},
      {"task", "T", "causal_lm",
       "causal_lm (loss on completions) or classification (a head on the intervened "
       "representation: first token for encoders, last real token for decoders)"},
      {"num-labels", "N", "0", "number of labels (0 = from the data; 1 = regression)"},
      {"head-dropout", "P", "0", "dropout in the classification head"},
      {"epochs", "N", "3", "passes over the data"},
      {"max-steps", "N", "-1", "optimizer steps (overrides --epochs when > 0)"},
      {"lr", "LR", "0.004", "peak learning rate"},
      {"batch-size", "B", "4", "examples per micro-batch"},
      {"grad-accum", "N", "1", "micro-batches per optimizer step"},
      {"warmup-ratio", "F", "0", "fraction of steps for linear warmup"},
      {"warmup-steps", "N", "0", "warmup steps (overrides --warmup-ratio)"},
      {"weight-decay", "W", "0", "AdamW weight decay (never applied to R's parametrization)"},
      {"schedule", "S", "linear", "linear, cosine or constant"},
      {"max-grad-norm", "N", "1", "gradient clipping; 0 = off"},
      {"seed", "S", "42", "seed of the intervention init, data order and dropout"},
      {"log-every", "N", "1",
       "log every N steps (metrics.jsonl; stderr: a line redrawn in place on a terminal, plain "
       "lines otherwise)"},
      {"save-every", "N", "auto",
       "checkpoint into --output/checkpoint every N steps so that --resume can continue an "
       "interrupted run; auto = every 10% of the run, at most 500 steps apart; 0 = only at the "
       "end"},
      {"eval-every", "N", "0", "evaluate every N steps (0 = at the end)"},
      {"resume", "", "",
       "continue from --output's checkpoint; flags not given come from the saved run, and one "
       "that conflicts with it is refused"},
      {"no-prefix-cache", "", "", "recompute the frozen layers below the interventions every step"},
  };
  for (auto& f : data_flags()) train.push_back(f);
  for (auto& f : intervention_flags()) train.push_back(f);
  for (auto& f : runtime_flags()) train.push_back(f);
  std::vector<Flag> demo = {
      {"model", "DIR", REFT_DEMO_MODEL_DIR,
       "the frozen base model (default: stories260K, shipped in the repository's models/)"},
      {"output", "DIR", "reft-demo", "where the adapter goes"},
      {"steps", "N", "400", "training steps (full batch)"},
      {"lr", "LR", "0.02", "peak learning rate (linear decay)"},
      {"rank", "R", "8", "LoReFT rank"},
      {"layers", "L", "2;3;4", "layers to intervene on"},
      {"position", "P", "l3", "prompt positions to edit (the last three tokens)"},
      {"seed", "S", "42", "seed of the intervention init"},
  };
  for (auto& f : runtime_flags()) demo.push_back(f);
  return {
      {"train",
       "Train interventions on a frozen model (causal LM: loss on completion tokens only). Prints "
       "the resolved "
       "configuration and progress on stderr; writes the adapter and metrics into --output.",
       "--model DIR [--data FILE] [--output DIR] [flags]", train, run_train,
       /*takes_positional=*/false, /*merges_config=*/true},
      {"demo",
       "ReFT in a few seconds on the shipped pretrained stories260K (a 260K-parameter TinyStories "
       "LLaMA): teach it five made-up answers with a LoReFT, then show its stories before, every "
       "taught answer reproduced by greedy generation, and a story for an untaught prompt. Exits "
       "1 if an answer is not reproduced.",
       "[--model DIR] [--output DIR] [--steps N]", demo, run_demo},
  };
}

}  // namespace reft::cli
