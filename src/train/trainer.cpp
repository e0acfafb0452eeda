#include "reft/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "reft/error.h"
#include "reft/generate.h"
#include "reft/safetensors.h"
#include "reft/tokenizer.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The order of examples in `epoch`: a permutation drawn from (seed, epoch), so that a resumed run
// sees exactly the batches the original run would have.
std::vector<size_t> epoch_order(size_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

// Parameter groups as HF's Trainer makes them, plus: the orthogonal parametrization never decays
// (pyreft's weight decay there silently zeroes R; see orthogonal.h).
bool decays(const std::string& name) {
  if (name.find("parametrizations") != std::string::npos) return false;
  const std::string bias = ".bias";
  if (name.size() >= bias.size() && name.compare(name.size() - bias.size(), bias.size(), bias) == 0)
    return false;
  if (name.find("learned_source") != std::string::npos && name.find("weight") == std::string::npos)
    return false;
  return true;
}

// Cached block inputs of layer `layer` for every example (frozen-prefix caching).
std::vector<torch::Tensor> cache_prefix(Model& model, const Dataset& data, int64_t layer) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (const auto& e : data.examples) {
    ForwardInput in;
    in.input_ids = torch::tensor(e.input_ids, torch::kInt64).unsqueeze(0).to(model.info().device);
    in.stop_layer = static_cast<int>(layer);
    in.logits = LogitsMode::kNone;
    out.push_back(model.forward(in).last_block[0]);  // (T, D)
  }
  return out;
}

// What the loop trains: the causal-LM loss of a ReftModel, or a classifier (interventions + head).
struct Task {
  ReftModel& reft;
  ReftClassifier* classifier = nullptr;

  std::vector<std::pair<std::string, torch::Tensor>> parameters() const {
    auto out = reft.named_parameters();
    if (classifier)
      for (auto& p : classifier->head_parameters()) out.push_back(p);
    return out;
  }
  ReftBatch batch(const Dataset& data, const std::vector<size_t>& idx, int64_t pad) const {
    return classifier ? make_classification_batch(data, idx, pad) : make_batch(data, idx, pad);
  }
  torch::Tensor loss(const ReftBatch& batch, const Dataset& data,
                     const std::vector<size_t>& idx) const {
    if (!classifier) return reft.lm_loss(batch);
    return classifier->loss(classifier->logits(batch), classifier->targets(data, idx));
  }
  void train(bool on) const {
    if (classifier)
      classifier->train(on);
    else
      reft.train(on);
  }
  void save(const fs::path& dir, AdapterMeta meta) const {
    std::vector<std::pair<std::string, torch::Tensor>> extra;
    if (classifier) {
      extra = classifier->head_parameters();
      meta.task = "classification";
      meta.extra["classification"] = classifier->meta();
    }
    save_adapter(reft, dir, meta, extra);
  }
  void load(const fs::path& adapter_dir) const {
    auto file = SafetensorsFile::open(adapter_dir / "interventions.safetensors");
    std::set<std::string> own;
    for (const auto& [name, t] : reft.state()) own.insert(name);
    std::vector<std::pair<std::string, torch::Tensor>> mine, head;
    for (const auto& e : file->entries())
      (own.count(e.name) ? mine : head).emplace_back(e.name, file->tensor(e.name));
    reft.load_state(mine, adapter_dir.string());
    if (classifier) classifier->load_head(head, adapter_dir.string());
  }
};

struct CheckpointState {
  int64_t step = 0;
  std::vector<double> losses;
};

const char* kCheckpointDir = "checkpoint";

void save_checkpoint(const Task& task, const AdamW& opt, const TrainOptions& o, int64_t step,
                     const std::vector<double>& losses) {
  const fs::path dir = o.output_dir / kCheckpointDir;
  // The adapter files, then the optimizer and loop state, all swapped in at once.
  write_directory_atomically(dir, [&](const fs::path& tmp) {
    task.save(tmp / "adapter", o.meta);
    save_safetensors(tmp / "optimizer.safetensors", opt.state());
    const nlohmann::json state = {{"step", step}, {"losses", losses}, {"seed", o.seed}};
    write_file_atomically(tmp / "trainer_state.json",
                          [&](std::ostream& out) { out << state.dump() << "\n"; });
  });
}

std::optional<CheckpointState> load_checkpoint(const Task& task, AdamW& opt,
                                               const TrainOptions& o) {
  const fs::path dir = o.output_dir / kCheckpointDir;
  if (!fs::exists(dir / "trainer_state.json")) return std::nullopt;
  const auto state = read_json_file(dir / "trainer_state.json");
  // Tensors and optimizer moments are matched by name and position: a checkpoint of another
  // configuration (layers, types, ranks, task) would load partly or wrongly, so it is refused.
  const auto saved = read_adapter_config(dir / "adapter");
  const std::string task_now = task.classifier ? "classification" : "causal_lm";
  const auto config_now = task.reft.config().to_json();
  if (saved.value("task", "causal_lm") != task_now ||
      saved.value("reft", nlohmann::json()) != config_now)
    fail("[", dir.string(), "] expected a checkpoint of this run's configuration (", task_now, ", ",
         config_now.dump(), "), found ", saved.value("task", "causal_lm"), ", ",
         saved.value("reft", nlohmann::json()).dump(),
         "; resume with the saved configuration or use another output directory");
  task.load(dir / "adapter");
  auto opt_file = SafetensorsFile::open(dir / "optimizer.safetensors");
  std::vector<std::pair<std::string, torch::Tensor>> opt_state;
  for (const auto& e : opt_file->entries())
    opt_state.emplace_back(e.name, opt_file->tensor(e.name));
  opt.load_state(opt_state, (dir / "optimizer.safetensors").string());
  CheckpointState s;
  s.step = state.at("step").get<int64_t>();
  s.losses = state.at("losses").get<std::vector<double>>();
  return s;
}

double exact_match(ReftModel& reft, const Dataset& data, const Tokenizer& tok,
                   int64_t max_new_tokens) {
  auto hooks = reft.generation_hooks(false);
  int64_t hits = 0;
  for (const auto& e : data.examples) {
    auto prompt = encode_prompt(tok, e.prompt);
    const auto want = tok.encode(e.completion, false);
    GenerationOptions g;
    g.max_new_tokens = std::min<int64_t>(max_new_tokens, static_cast<int64_t>(want.size()) + 8);
    if (tok.pad_id()) g.pad_token_id = *tok.pad_id();
    auto out = generate(reft.base(), {prompt}, g, hooks.get());
    const auto trim = [](std::string s) {
      const auto a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
      return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
    };
    if (trim(tok.decode(out[0].new_ids, true)) == trim(e.completion)) ++hits;
  }
  return data.examples.empty() ? 0.0 : static_cast<double>(hits) / data.examples.size();
}

}  // namespace

ReftBatch make_batch(const Dataset& data, const std::vector<size_t>& indices, int64_t pad_id) {
  const int64_t B = indices.size();
  int64_t T = 0;
  for (size_t i : indices) T = std::max<int64_t>(T, data.examples[i].input_ids.size());
  auto ids = torch::full({B, T}, pad_id, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64);
  auto labels = torch::full({B, T}, -100, torch::kInt64);
  ReftBatch batch;
  for (int64_t b = 0; b < B; ++b) {
    const auto& e = data.examples[indices[b]];
    const int64_t n = e.input_ids.size();
    ids[b].narrow(0, 0, n).copy_(torch::tensor(e.input_ids, torch::kInt64));
    mask[b].narrow(0, 0, n).fill_(1);
    if (!e.labels.empty()) labels[b].narrow(0, 0, n).copy_(torch::tensor(e.labels, torch::kInt64));
    batch.prompt_lengths.push_back(e.prompt_length);
  }
  batch.input_ids = ids;
  batch.attention_mask = mask;
  batch.labels = labels;
  return batch;
}

ReftBatch make_classification_batch(const Dataset& data, const std::vector<size_t>& indices,
                                    int64_t pad_id) {
  ReftBatch batch = make_batch(data, indices, pad_id);
  batch.labels = torch::Tensor();
  batch.prompt_lengths.clear();
  bool segments = false;
  for (size_t i : indices) {
    batch.prompt_lengths.push_back(static_cast<int64_t>(data.examples[i].input_ids.size()));
    segments = segments || !data.examples[i].token_type_ids.empty();
  }
  if (segments) {
    batch.token_type_ids = torch::zeros_like(batch.input_ids);
    for (size_t b = 0; b < indices.size(); ++b) {
      const auto& t = data.examples[indices[b]].token_type_ids;
      if (!t.empty())
        batch.token_type_ids[b].narrow(0, 0, t.size()).copy_(torch::tensor(t, torch::kInt64));
    }
  }
  return batch;
}

double evaluate_loss(ReftModel& reft, const Dataset& data, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  reft.train(false);
  double total = 0;
  int64_t tokens = 0;
  const int64_t pad = reft.base().info().pad_token_id.value_or(0);
  for (size_t start = 0; start < data.examples.size(); start += batch_size) {
    std::vector<size_t> idx;
    for (size_t i = start; i < std::min(data.examples.size(), start + batch_size); ++i)
      idx.push_back(i);
    auto batch = make_batch(data, idx, pad);
    const int64_t n =
        batch.labels.narrow(1, 1, batch.labels.size(1) - 1).ne(-100).sum().item<int64_t>();
    total += reft.lm_loss(batch).item<double>() * n;
    tokens += n;
  }
  return tokens ? total / tokens : 0.0;
}

namespace {

// Evaluation: the loss, and for classifiers the metrics.
EvalResult evaluate(const Task& task, const Dataset& data, int64_t step, int64_t batch_size) {
  EvalResult r{step, 0, -1, static_cast<int64_t>(data.examples.size()), nlohmann::json::object()};
  if (!task.classifier) {
    r.loss = evaluate_loss(task.reft, data, batch_size);
    return r;
  }
  auto logits = predict_logits(*task.classifier, data, batch_size);
  std::vector<size_t> all(data.examples.size());
  std::iota(all.begin(), all.end(), 0);
  auto targets = task.classifier->targets(data, all);
  r.loss = task.classifier->loss(logits, targets).item<double>();
  r.metrics = classification_metrics(task.classifier->labels(), logits, targets)
                  .to_json(task.classifier->labels());
  return r;
}

TrainSummary run_training(const Task& task, const Dataset& train, const Dataset* eval,
                          const TrainOptions& o, const Tokenizer* tokenizer,
                          const TrainCallbacks& cb) {
  ReftModel& reft = task.reft;
  if (train.examples.empty()) usage_fail("[train] the training set is empty");
  // Errors name TrainOptions' fields; the CLI shows them as its flags.
  if (o.batch_size < 1) usage_fail("[TrainOptions.batch_size] expected >= 1, found ", o.batch_size);
  if (o.grad_accum < 1) usage_fail("[TrainOptions.grad_accum] expected >= 1, found ", o.grad_accum);
  if (o.lr <= 0) usage_fail("[TrainOptions.lr] expected > 0, found ", o.lr);
  if (o.epochs < 1 && o.max_steps <= 0)
    usage_fail("[TrainOptions.epochs] expected >= 1 (or max_steps > 0), found ", o.epochs);
  if (o.warmup_ratio < 0 || o.warmup_ratio > 1)
    usage_fail("[TrainOptions.warmup_ratio] expected a value in [0, 1], found ", o.warmup_ratio);
  if (o.weight_decay < 0)
    usage_fail("[TrainOptions.weight_decay] expected >= 0, found ", o.weight_decay);
  const auto message = [&](const std::string& m) {
    if (cb.on_message) cb.on_message(m);
  };
  const int64_t N = train.examples.size();
  const int64_t micro_per_epoch = (N + o.batch_size - 1) / o.batch_size;
  // Counts from a --config file are checked before they are multiplied (no overflow) or looped
  // over: a step accumulates at most one epoch, and a run does at most 2^40 micro-batches.
  constexpr int64_t kMaxMicroBatches = int64_t{1} << 40;
  if (o.grad_accum > micro_per_epoch)
    usage_fail("[TrainOptions.grad_accum] expected at most the ", micro_per_epoch,
               " micro-batches of one epoch (", N, " examples, batch size ", o.batch_size,
               "), found ", o.grad_accum);
  if (o.max_steps > kMaxMicroBatches / o.grad_accum)
    usage_fail("[TrainOptions.max_steps] expected at most ", kMaxMicroBatches / o.grad_accum,
               ", found ", o.max_steps);
  if (o.max_steps <= 0 && o.epochs > kMaxMicroBatches / micro_per_epoch)
    usage_fail("[TrainOptions.epochs] expected at most ", kMaxMicroBatches / micro_per_epoch,
               ", found ", o.epochs);
  const int64_t total_steps = o.max_steps > 0
                                  ? o.max_steps
                                  : (o.epochs * micro_per_epoch + o.grad_accum - 1) / o.grad_accum;
  const int64_t warmup = o.warmup_steps > 0
                             ? o.warmup_steps
                             : static_cast<int64_t>(std::ceil(o.warmup_ratio * total_steps));
  const int64_t pad = reft.base().info().pad_token_id.value_or(0);

  std::vector<torch::Tensor> params;
  std::vector<bool> decay;
  for (auto& [name, p] : task.parameters()) {
    params.push_back(p);
    decay.push_back(decays(name));
  }
  AdamW opt(params, decay, {.lr = o.lr, .weight_decay = o.weight_decay});

  TrainSummary summary;
  int64_t start_step = 0;
  const bool write = !o.output_dir.empty();
  if (write) fs::create_directories(o.output_dir);
  if (o.resume) {
    if (!write) usage_fail("[TrainOptions.resume] needs an output_dir");
    if (auto state = load_checkpoint(task, opt, o)) {
      start_step = state->step;
      summary.losses = state->losses;
      summary.resumed_from_checkpoint = true;
      message("resumed from " + (o.output_dir / kCheckpointDir).string() + " at step " +
              std::to_string(start_step));
    } else {
      message("no checkpoint in " + o.output_dir.string() + ": starting from step 0");
    }
  }
  summary.start_step = start_step;
  if (cb.on_start) cb.on_start(start_step, total_steps);
  // Default cadence: every 10% of the run, at most 500 steps apart (see TrainOptions).
  const int64_t save_every =
      o.save_every >= 0 ? o.save_every : std::min<int64_t>(500, (total_steps + 9) / 10);

  // Frozen-prefix cache: the layers below the lowest intervention never change.
  std::vector<torch::Tensor> prefix;
  const int64_t lowest = reft.resumable_layer();
  if (o.cache_frozen_prefix && lowest > 0 && reft.base().info().causal) {
    const int64_t bytes = train.num_tokens() * reft.base().info().hidden_size *
                          torch::elementSize(reft.base().info().dtype);
    if (bytes <= o.cache_budget_bytes) prefix = cache_prefix(reft.base(), train, lowest);
  }

  const auto t0 = Clock::now();
  double window_tokens = 0, window_s = 0;
  int64_t total_tokens = 0;
  task.train(true);
  for (int64_t step = start_step; step < total_steps; ++step) {
    const auto step_start = Clock::now();
    torch::manual_seed(o.seed +
                       static_cast<uint64_t>(step));  // dropout masks independent of resume
    opt.zero_grad();
    double step_loss = 0;
    int64_t step_tokens = 0;
    for (int64_t a = 0; a < o.grad_accum; ++a) {
      const int64_t micro = step * o.grad_accum + a;
      const int64_t epoch = micro / micro_per_epoch, pos = micro % micro_per_epoch;
      const auto order = epoch_order(N, o.seed, epoch, o.shuffle);
      std::vector<size_t> idx(order.begin() + pos * o.batch_size,
                              order.begin() + std::min<int64_t>(N, (pos + 1) * o.batch_size));
      auto batch = task.batch(train, idx, pad);
      if (!prefix.empty()) {
        const int64_t T = batch.input_ids.size(1), D = reft.base().info().hidden_size;
        auto h = torch::zeros({static_cast<int64_t>(idx.size()), T, D}, prefix[0].options());
        for (size_t b = 0; b < idx.size(); ++b)
          h[b].narrow(0, 0, prefix[idx[b]].size(0)).copy_(prefix[idx[b]]);
        batch.start_hidden = h;
        batch.start_layer = lowest;
      }
      auto loss = task.loss(batch, train, idx);
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        fail("[train] the loss became non-finite (", value, ") at step ", step + 1,
             "; training stopped. The last good checkpoint is in ",
             write && fs::exists(o.output_dir / kCheckpointDir)
                 ? (o.output_dir / kCheckpointDir).string()
                 : std::string("(none written)"),
             "; lower --lr or check the data");
      }
      (loss / static_cast<double>(o.grad_accum)).backward();
      step_loss += value / o.grad_accum;
      step_tokens += batch.attention_mask.sum().item<int64_t>();
    }
    const double grad_norm = clip_grad_norm(params, o.max_grad_norm);
    const double lr = o.lr * schedule_factor(o.schedule, step, total_steps, warmup);
    opt.set_lr(lr);
    opt.step();
    for (const auto& p : params)
      if (!torch::isfinite(p).all().item<bool>())
        fail("[train] the parameters became non-finite at step ", step + 1,
             "; training stopped. The last good "
             "checkpoint is in ",
             write && fs::exists(o.output_dir / kCheckpointDir)
                 ? (o.output_dir / kCheckpointDir).string()
                 : std::string("(none written)"),
             "; lower --lr or enable clipping (--max-grad-norm)");
    summary.losses.push_back(step_loss);
    total_tokens += step_tokens;

    const double step_s = seconds_between(step_start, Clock::now());
    window_tokens += step_tokens;
    window_s += step_s;
    const int64_t done = step + 1;
    const bool last = done == total_steps;
    if (done % std::max<int64_t>(1, o.log_every) == 0 || last) {
      TrainEvent ev;
      ev.step = done;
      ev.total_steps = total_steps;
      ev.epoch = static_cast<double>(done * o.grad_accum) / micro_per_epoch;
      ev.loss = step_loss;
      ev.lr = lr;
      ev.grad_norm = grad_norm;
      ev.tokens_per_s = window_s > 0 ? window_tokens / window_s : 0;
      ev.elapsed_s = seconds_between(t0, Clock::now());
      ev.eta_s = (total_steps - done) * (ev.elapsed_s / std::max<int64_t>(1, done - start_step));
      window_tokens = window_s = 0;
      if (cb.on_step) cb.on_step(ev);
    }
    if (write && save_every > 0 && done % save_every == 0 && !last) {
      save_checkpoint(task, opt, o, done, summary.losses);
      message("checkpoint at step " + std::to_string(done));
    }
    if (eval && o.eval_every > 0 && done % o.eval_every == 0 && !last) {
      auto r = evaluate(task, *eval, done, o.batch_size);
      task.train(true);
      if (cb.on_eval) cb.on_eval(r);
    }
  }
  task.train(false);
  summary.steps = total_steps;
  summary.seconds = seconds_between(t0, Clock::now());
  summary.tokens = total_tokens;
  summary.final_loss = summary.losses.empty() ? 0.0 : summary.losses.back();
  if (eval && !eval->examples.empty()) {
    auto r = evaluate(task, *eval, total_steps, o.batch_size);
    if (!task.classifier && o.eval_generate && tokenizer && reft.base().info().causal)
      r.exact_match = exact_match(reft, *eval, *tokenizer, o.eval_max_new_tokens);
    summary.eval = r;
    if (cb.on_eval) cb.on_eval(r);
  }
  if (write) {
    AdapterMeta meta = o.meta;
    meta.extra["training"] = {
        {"steps", summary.steps}, {"final_loss", summary.final_loss}, {"lr", o.lr},
        {"epochs", o.epochs},     {"batch_size", o.batch_size},       {"seed", o.seed}};
    // The final checkpoint first (one atomic directory swap), then the adapter's files (each
    // replaced atomically, the config last with the tensors' checksum): a crash between or during
    // the two leaves a checkpoint from which --resume rewrites the same adapter.
    save_checkpoint(task, opt, o, total_steps, summary.losses);
    task.save(o.output_dir, meta);
  }
  return summary;
}

}  // namespace

TrainSummary train_reft(ReftModel& reft, const Dataset& train, const Dataset* eval,
                        const TrainOptions& options, const Tokenizer* tokenizer,
                        const TrainCallbacks& callbacks) {
  return run_training(Task{reft, nullptr}, train, eval, options, tokenizer, callbacks);
}

TrainSummary train_classifier(ReftClassifier& classifier, const Dataset& train, const Dataset* eval,
                              const TrainOptions& options, const TrainCallbacks& callbacks) {
  for (const auto& e : train.examples)
    if (e.label.empty()) fail("[", e.where, "] expected a label for classification, found none");
  return run_training(Task{classifier.reft(), &classifier}, train, eval, options, nullptr,
                      callbacks);
}

std::string loss_curve_svg(const std::vector<double>& losses, const std::string& title) {
  const double W = 640, H = 360, left = 60, right = 20, top = 40, bottom = 45;
  double lo = 0, hi = 1;
  if (!losses.empty()) {
    lo = *std::min_element(losses.begin(), losses.end());
    hi = *std::max_element(losses.begin(), losses.end());
  }
  if (hi - lo < 1e-9) hi = lo + 1;
  const double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  const auto x = [&](size_t i) {
    return left + (W - left - right) * (losses.size() > 1 ? double(i) / (losses.size() - 1) : 0.5);
  };
  const auto y = [&](double v) { return top + (H - top - bottom) * (1 - (v - lo) / (hi - lo)); };
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(int(W)) +
                    "\" height=\"" + std::to_string(int(H)) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + std::to_string(W / 2) +
         "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + title + "</text>\n";
  char buf[160];
  for (int k = 0; k <= 4; ++k) {
    const double v = lo + (hi - lo) * k / 4.0;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text "
                  "x=\"%.1f\" y=\"%.1f\" "
                  "text-anchor=\"end\">%.3g</text>\n",
                  left, y(v), W - right, y(v), left - 6, y(v) + 4, v);
    svg += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step (1 … %zu)</text>\n", W / 2,
                H - 10, losses.size());
  svg += buf;
  svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"";
  for (size_t i = 0; i < losses.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%.1f,%.1f ", x(i), y(losses[i]));
    svg += buf;
  }
  svg += "\"/>\n</svg>\n";
  return svg;
}

}  // namespace reft
