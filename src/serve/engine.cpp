// The serving engine: one thread, one running batch, a KV cache allocated once.
//
// The cache is a shared timeline of `len` positions. Every running row occupies the right end of
// it, [len − n_b, len), with mask 0 before (left padding, as generate() batches prompts), so one
// decode step appends every row's next token at position len. A new row is prefilled on its own
// cache and copied into the right end of a free slot; when the timeline reaches ctx it is
// compacted to the longest running row (rows never exceed ctx: submit() checks prompt +
// max_new_tokens ≤ ctx). Running rows occupy slots [0, n), so a forward sees the cache views
// narrow(0, 0, n) without copying; a finished row is replaced by the last one (one row copied).
//
// Dimension legend: n running rows, k admitted rows, T prompt tokens (padded), D hidden, V vocab.

#include "reft/engine.h"

#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "reft/positions.h"
#include "reft/pyreft.h"
#include "reft/tokenizer.h"

namespace reft {

using Clock = std::chrono::steady_clock;

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "";
}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  if (counts.size() != bounds.size() + 1) counts.assign(bounds.size() + 1, 0);
  ++counts[i];
  sum += value;
  ++count;
}

// ---- adapters ----

std::shared_ptr<const ServedAdapter> load_served_adapter(Model& base, const std::string& name,
                                                         const std::filesystem::path& dir) {
  auto loaded = load_adapter_auto(base, dir);
  require_generation_adapter(loaded, "adapter " + name);
  auto served = std::make_shared<ServedAdapter>();
  served->name = name;
  served->dir = dir;
  served->meta = loaded.meta;
  // Steering vectors (reft steer) apply to generated tokens unless saved with --no-generated.
  const auto& extra = loaded.meta.extra;
  served->intervene_generated = loaded.meta.task == "steering";
  if (extra.is_object() && extra.contains("intervene_generated") &&
      extra["intervene_generated"].is_boolean())
    served->intervene_generated = extra["intervene_generated"].get<bool>();
  loaded.reft->train(false);
  served->reft = std::shared_ptr<ReftModel>(std::move(loaded.reft));
  return served;
}

// ---- request streams ----

struct RequestStream::State {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> tokens;  // produced, not yet taken by wait()
  std::string text;
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
  std::string error;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::atomic<bool> cancelled{false};

  // Set by submit(), read by the engine thread.
  EngineRequest request;
  Clock::time_point submitted;
};

namespace {

StreamEvent take(RequestStream::State& s) {
  StreamEvent ev;
  ev.tokens = std::move(s.tokens);
  ev.text = std::move(s.text);
  s.tokens.clear();
  s.text.clear();
  ev.finished = s.finished;
  ev.reason = s.reason;
  ev.error = s.error;
  ev.prompt_tokens = s.prompt_tokens;
  ev.completion_tokens = s.completion_tokens;
  return ev;
}

}  // namespace

StreamEvent RequestStream::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  state_->cv.wait_for(lock, timeout, [&] { return state_->finished || !state_->tokens.empty(); });
  return take(*state_);
}

StreamEvent RequestStream::wait_all() {
  std::unique_lock lock(state_->mu);
  state_->cv.wait(lock, [&] { return state_->finished; });
  return take(*state_);
}

void RequestStream::cancel() { state_->cancelled = true; }
bool RequestStream::cancelled() const { return state_->cancelled; }

// ---- per-row interventions ----

namespace {

// Interventions of several adapters in one forward: each (adapter, intervention) edits the flat
// rows b·T + t of the rows using that adapter. Rows of different adapters never overlap, so the
// order between adapters does not matter; within an adapter, config order is kept (ReftHooks').
class BatchHooks final : public SiteHooks {
 public:
  explicit BatchHooks(int64_t num_layers) : by_site_(num_layers * kNumComponents) {}

  void add(const std::shared_ptr<Intervention>& intervention, int64_t layer, Component component,
           torch::Tensor index) {
    if (index.numel() == 0) return;
    by_site_[layer * kNumComponents + static_cast<int>(component)].push_back(groups_.size());
    groups_.push_back({intervention, std::move(index)});
  }
  bool empty() const { return groups_.empty(); }

  bool wants(int layer, Component c) const override {
    return !by_site_[layer * kNumComponents + static_cast<int>(c)].empty();
  }

  torch::Tensor at_site(int layer, Component c, const torch::Tensor& hidden) override {
    auto flat = hidden.reshape({-1, hidden.size(-1)});  // (B·T, D)
    for (size_t g : by_site_[layer * kNumComponents + static_cast<int>(c)]) {
      const auto& group = groups_[g];
      auto edited = group.intervention->forward(flat.index_select(0, group.index), {});
      flat = flat.index_copy(0, group.index, edited.to(flat.scalar_type()));
    }
    return flat.view(hidden.sizes());
  }

 private:
  struct Group {
    std::shared_ptr<Intervention> intervention;
    torch::Tensor index;  // (N) flat rows
  };
  std::vector<std::vector<size_t>> by_site_;
  std::vector<Group> groups_;
};

// Adds, for every adapter used in a forward over (B, T), its interventions at the flat rows
// `rows_of(b, i)` returns for each row b that uses it.
template <class RowsOf>
void plan_adapters(BatchHooks& hooks, const std::vector<const ServedAdapter*>& adapter_of_row,
                   int64_t T, torch::Device device, RowsOf rows_of) {
  std::vector<const ServedAdapter*> distinct;
  for (const auto* a : adapter_of_row)
    if (a && std::find(distinct.begin(), distinct.end(), a) == distinct.end())
      distinct.push_back(a);
  for (const auto* a : distinct) {
    const auto& reps = a->reft->config().representations;
    for (size_t i = 0; i < reps.size(); ++i) {
      std::vector<int64_t> flat;
      for (size_t b = 0; b < adapter_of_row.size(); ++b) {
        if (adapter_of_row[b] != a) continue;
        for (int64_t t : rows_of(b, i)) flat.push_back(static_cast<int64_t>(b) * T + t);
      }
      hooks.add(a->reft->interventions()[i], reps[i].layer, reps[i].component,
                torch::tensor(flat, torch::kInt64).to(device));
    }
  }
}

}  // namespace

// ---- the engine ----

class Engine::Impl {
 public:
  Impl(Model& model, const Tokenizer* tokenizer, const EngineOptions& options)
      : model_(model), tokenizer_(tokenizer), opt_(options) {
    const auto& info = model.info();
    device_ = info.device;
    pad_id_ = tokenizer ? tokenizer->pad_id().value_or(0) : 0;
    if (pad_id_ < 0 || pad_id_ >= info.vocab_size) pad_id_ = 0;
    KVCache full = model.new_cache(opt_.max_seqs, opt_.ctx);
    keys_ = std::move(full.keys);
    values_ = std::move(full.values);
    mask_ = torch::zeros({opt_.max_seqs, opt_.ctx}, torch::dtype(torch::kInt64).device(device_));
    stats_.batch_size.bounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    const std::vector<double> seconds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10,  30};
    stats_.time_to_first_token.bounds = seconds;
    stats_.request_latency.bounds = seconds;
    stats_.queue_wait.bounds = seconds;
    for (auto* h : {&stats_.batch_size, &stats_.time_to_first_token, &stats_.request_latency,
                    &stats_.queue_wait})
      h->counts.assign(h->bounds.size() + 1, 0);
    thread_ = std::thread([this] { loop(); });
  }

  ~Impl() { stop(true); }

  std::shared_ptr<RequestStream> submit(EngineRequest request) {
    const auto& info = model_.info();
    const auto& g = request.options;
    if (request.prompt.empty()) usage_fail("[prompt] expected at least one token, found none");
    for (int64_t id : request.prompt)
      if (id < 0 || id >= info.vocab_size)
        usage_fail("[prompt] token id ", id, " is outside the vocabulary [0, ", info.vocab_size,
                   ")");
    check_generation_options(g);
    if (!tokenizer_ && !g.stop_strings.empty())
      usage_fail("[stop] stop strings need an engine with a tokenizer");
    const int64_t n = static_cast<int64_t>(request.prompt.size());
    if (n + std::max<int64_t>(g.max_new_tokens, 1) > opt_.ctx)
      usage_fail("[max_tokens] the prompt (", n, " tokens) plus max_tokens (", g.max_new_tokens,
                 ") exceeds the context of ", opt_.ctx, " tokens");
    auto state = std::make_shared<RequestStream::State>();
    state->prompt_tokens = n;
    state->request = std::move(request);
    state->submitted = Clock::now();
    {
      std::lock_guard lock(mu_);
      if (stopping_) throw QueueFullError("[engine] the server is shutting down");
      if (static_cast<int64_t>(queue_.size()) >= opt_.max_queue)
        throw QueueFullError(
            str("[engine] the queue is full (", opt_.max_queue, " waiting requests); retry later"));
      queue_.push_back(state);
      stats_.queue_length = static_cast<int64_t>(queue_.size());
    }
    cv_.notify_all();
    return std::make_shared<RequestStream>(state);
  }

  EngineStats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }

  void stop(bool cancel) {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      if (cancel) cancel_all_ = true;
    }
    cv_.notify_all();
    std::lock_guard join_lock(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  using State = RequestStream::State;

  struct Row {
    std::shared_ptr<State> state;
    const ServedAdapter* adapter = nullptr;  // kept alive by state->request.adapter
    std::vector<int64_t> seen;               // prompt + generated (repetition penalty)
    std::vector<int64_t> generated;
    std::vector<int64_t> eos;
    int64_t length = 0;   // real tokens in the cache
    int64_t next = -1;    // sampled, not yet fed
    size_t emitted = 0;   // bytes of the decoded continuation handed out
    size_t max_stop = 0;  // longest stop string
    at::Generator generator;
    bool first_token = true;
    bool stopped = false;  // ended on a stop id or stop string
  };

  void loop() {
    torch::NoGradGuard no_grad;
    for (;;) {
      std::vector<std::shared_ptr<State>> admitted;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] {
          return stopping_ || !rows_.empty() ||
                 (!queue_.empty() && static_cast<int64_t>(rows_.size()) < opt_.max_seqs);
        });
        if (cancel_all_) {
          for (auto& s : queue_) s->cancelled = true;
          for (auto& r : rows_) r.state->cancelled = true;
        }
        if (stopping_ && queue_.empty() && rows_.empty()) return;
        admitted = admit_locked();
      }
      double prefill_s = 0, decode_s = 0;
      try {
        drop_cancelled();
        const auto t0 = Clock::now();
        if (!admitted.empty()) prefill(admitted);
        const auto t1 = Clock::now();
        if (!rows_.empty()) decode_step();
        prefill_s = std::chrono::duration<double>(t1 - t0).count();
        decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
      } catch (const std::exception& e) {
        // Bookkeeping failed (e.g. out of memory while copying the cache): end every running row
        // with the error rather than the process.
        for (auto& r : rows_) {
          std::lock_guard lock(r.state->mu);
          r.state->error = e.what();
        }
        while (!rows_.empty()) end_row(rows_.size() - 1, FinishReason::kError);
      }
      std::lock_guard lock(mu_);
      stats_.running = static_cast<int64_t>(rows_.size());
      stats_.prefill_seconds += prefill_s;
      stats_.decode_seconds += decode_s;
    }
  }

  // Takes the requests that fit: free rows, and max_prefill_tokens for the padded prompts.
  std::vector<std::shared_ptr<State>> admit_locked() {
    std::vector<std::shared_ptr<State>> out;
    int64_t longest = 0;
    const auto now = Clock::now();
    while (!queue_.empty() && static_cast<int64_t>(rows_.size() + out.size()) < opt_.max_seqs) {
      auto& s = queue_.front();
      if (s->cancelled) {
        finish_unadmitted(s, FinishReason::kCancelled);
        queue_.pop_front();
        continue;
      }
      const int64_t n = static_cast<int64_t>(s->request.prompt.size());
      const int64_t padded = std::max(longest, n) * static_cast<int64_t>(out.size() + 1);
      if (!out.empty() && padded > opt_.max_prefill_tokens) break;
      longest = std::max(longest, n);
      stats_.queue_wait.observe(std::chrono::duration<double>(now - s->submitted).count());
      out.push_back(std::move(s));
      queue_.pop_front();
    }
    stats_.queue_length = static_cast<int64_t>(queue_.size());
    return out;
  }

  // A request that ends before it runs (cancelled while queued, max_new_tokens = 0).
  void finish_unadmitted(const std::shared_ptr<State>& s, FinishReason reason) {
    {
      std::lock_guard lock(s->mu);
      s->finished = true;
      s->reason = reason;
    }
    s->cv.notify_all();
    count_finish(reason, s->submitted);
  }

  // Called with mu_ held.
  void count_finish(FinishReason reason, Clock::time_point submitted) {
    ++stats_.requests_finished;
    switch (reason) {
      case FinishReason::kStop:
        ++stats_.finished_stop;
        break;
      case FinishReason::kLength:
        ++stats_.finished_length;
        break;
      case FinishReason::kCancelled:
        ++stats_.finished_cancelled;
        break;
      default:
        ++stats_.finished_error;
    }
    stats_.request_latency.observe(std::chrono::duration<double>(Clock::now() - submitted).count());
  }

  void drop_cancelled() {
    for (size_t i = 0; i < rows_.size();) {
      if (rows_[i].state->cancelled) {
        end_row(i, FinishReason::kCancelled);
      } else {
        ++i;
      }
    }
  }

  // Prefills the admitted prompts in one forward on a cache of their own, samples each one's
  // first token and moves the survivors into free slots.
  void prefill(std::vector<std::shared_ptr<State>>& admitted) {
    std::vector<std::shared_ptr<State>> run;
    for (auto& s : admitted) {
      if (s->request.options.max_new_tokens == 0) {
        std::lock_guard lock(mu_);
        ++stats_.requests_started;
        finish_unadmitted(s, FinishReason::kLength);
      } else {
        run.push_back(s);
      }
    }
    if (run.empty()) return;
    const int64_t k = static_cast<int64_t>(run.size());
    int64_t T = 0;
    for (auto& s : run) T = std::max<int64_t>(T, s->request.prompt.size());
    auto ids = torch::full({k, T}, pad_id_, torch::kInt64);
    auto mask = torch::zeros({k, T}, torch::kInt64);
    std::vector<const ServedAdapter*> adapters(k);
    std::vector<int64_t> lengths(k);
    for (int64_t b = 0; b < k; ++b) {
      const auto& p = run[b]->request.prompt;
      const int64_t n = static_cast<int64_t>(p.size());
      ids[b].narrow(0, T - n, n).copy_(torch::tensor(p, torch::kInt64));
      mask[b].narrow(0, T - n, n).fill_(1);
      adapters[b] = run[b]->request.adapter.get();
      lengths[b] = n;
    }
    torch::Tensor logits;
    KVCache cache = model_.new_cache(k, T);
    try {
      BatchHooks hooks(model_.info().num_layers);
      plan_adapters(hooks, adapters, T, device_, [&](size_t b, size_t i) {
        const auto* a = adapters[b];
        const auto spec = PositionSpec::parse(a->reft->config().positions);
        auto positions = spec.resolve(lengths[b], a->reft->config().representations[i].part);
        std::vector<int64_t> ts;
        for (int64_t p : positions)
          if (p >= 0) ts.push_back(T - lengths[b] + p);
        return ts;
      });
      ForwardInput in;
      in.input_ids = ids.to(device_);
      in.attention_mask = mask.to(device_);
      in.cache = &cache;
      in.hooks = hooks.empty() ? nullptr : &hooks;
      in.logits = LogitsMode::kLast;
      logits = model_.forward(in).logits.to(torch::kFloat32).to(torch::kCPU);  // (k, V)
      make_room(T);
    } catch (const std::exception& e) {
      for (auto& s : run) fail_unadmitted(s, e.what());
      return;
    }
    {
      std::lock_guard lock(mu_);
      stats_.requests_started += k;
      ++stats_.prefills;
      for (auto& s : run) stats_.prompt_tokens += s->request.prompt.size();
    }
    const int64_t n0 = static_cast<int64_t>(rows_.size());
    for (int64_t b = 0; b < k; ++b) {
      const int64_t slot = n0 + b;
      for (size_t l = 0; l < keys_.size(); ++l) {
        keys_[l][slot].narrow(1, len_ - T, T).copy_(cache.keys[l][b]);
        values_[l][slot].narrow(1, len_ - T, T).copy_(cache.values[l][b]);
      }
      mask_[slot].zero_();
      mask_[slot].narrow(0, len_ - T, T).copy_(mask[b]);
      rows_.push_back(new_row(run[b], lengths[b]));
    }
    // Sample every new row's first token; rows that end at once leave again.
    for (int64_t b = k - 1; b >= 0; --b) {
      const size_t i = static_cast<size_t>(n0 + b);
      if (!accept(rows_[i], sample(rows_[i], logits[b]))) end_row(i, finish_reason_of(rows_[i]));
    }
  }

  void fail_unadmitted(const std::shared_ptr<State>& s, const std::string& message) {
    {
      std::lock_guard lock(s->mu);
      s->error = message;
    }
    std::lock_guard lock(mu_);
    ++stats_.requests_started;
    finish_unadmitted(s, FinishReason::kError);
  }

  Row new_row(const std::shared_ptr<State>& s, int64_t length) {
    Row r;
    r.state = s;
    r.adapter = s->request.adapter.get();
    const auto& g = s->request.options;
    r.seen = s->request.prompt;
    r.length = length;
    r.eos = g.eos_token_ids;
    if (g.use_model_eos)
      r.eos.insert(r.eos.end(), model_.info().eos_token_ids.begin(),
                   model_.info().eos_token_ids.end());
    for (const auto& stop : g.stop_strings) r.max_stop = std::max(r.max_stop, stop.size());
    r.generator = at::make_generator<at::CPUGeneratorImpl>(g.seed);
    return r;
  }

  // generate()'s choice for one row: argmax, or a draw from the processed distribution with the
  // row's own generator (so a row draws what generate() draws for that prompt alone).
  int64_t sample(Row& r, const torch::Tensor& row_logits) {
    const auto& g = r.state->request.options;
    auto logits = row_logits.unsqueeze(0);  // (1, V)
    if (g.temperature == 0) {
      if (g.repetition_penalty != 1.0) logits = process_logits(logits, g, {r.seen});
      return logits.argmax(-1).item<int64_t>();
    }
    auto probs = process_logits(logits, g, {r.seen}).softmax(-1);
    return torch::multinomial(probs, 1, /*replacement=*/false, r.generator).item<int64_t>();
  }

  // Records a sampled token, hands out its text; false when the row is finished.
  bool accept(Row& r, int64_t token) {
    const auto& g = r.state->request.options;
    r.generated.push_back(token);
    r.seen.push_back(token);
    r.next = token;
    bool stop = std::find(r.eos.begin(), r.eos.end(), token) != r.eos.end();
    const std::string text =
        tokenizer_ ? tokenizer_->decode(r.generated, /*skip_special_tokens=*/true) : std::string();
    size_t end = text.size();
    for (const auto& s : g.stop_strings) {
      if (s.empty()) continue;
      const size_t at = text.find(s);
      if (at != std::string::npos) {
        stop = true;
        end = std::min(end, at);
      }
    }
    const bool length = static_cast<int64_t>(r.generated.size()) >= g.max_new_tokens;
    r.stopped = stop;
    if (!stop && !length) {
      // Hold back an incomplete UTF-8 character and what could be the start of a stop string.
      static const std::string kReplacement = "\xEF\xBF\xBD";
      if (end >= 3 && text.compare(end - 3, 3, kReplacement) == 0) end -= 3;
      if (r.max_stop > 1) end = end > r.max_stop - 1 ? end - (r.max_stop - 1) : 0;
    }
    end = std::max(end, r.emitted);
    std::string piece = text.substr(r.emitted, end - r.emitted);
    r.emitted = end;
    auto& s = *r.state;
    {
      std::lock_guard lock(s.mu);
      s.tokens.push_back(token);
      s.text += piece;
      s.completion_tokens = static_cast<int64_t>(r.generated.size());
    }
    s.cv.notify_all();
    {
      std::lock_guard lock(mu_);
      ++stats_.generated_tokens;
      if (r.first_token)
        stats_.time_to_first_token.observe(
            std::chrono::duration<double>(Clock::now() - s.submitted).count());
    }
    r.first_token = false;
    return !stop && !length;
  }

  static FinishReason finish_reason_of(const Row& r) {
    return r.stopped ? FinishReason::kStop : FinishReason::kLength;
  }

  // Ends row i and fills its slot with the last row.
  void end_row(size_t i, FinishReason reason) {
    auto& s = *rows_[i].state;
    {
      std::lock_guard lock(s.mu);
      s.finished = true;
      s.reason = reason;
    }
    s.cv.notify_all();
    {
      std::lock_guard lock(mu_);
      count_finish(reason, s.submitted);
    }
    const size_t last = rows_.size() - 1;
    if (i != last) {
      for (size_t l = 0; l < keys_.size(); ++l) {
        keys_[l][i].narrow(1, 0, len_).copy_(keys_[l][last].narrow(1, 0, len_));
        values_[l][i].narrow(1, 0, len_).copy_(values_[l][last].narrow(1, 0, len_));
      }
      mask_[i].copy_(mask_[last]);
      rows_[i] = std::move(rows_[last]);
    }
    rows_.pop_back();
    if (rows_.empty()) len_ = 0;
    std::lock_guard lock(mu_);
    stats_.running = static_cast<int64_t>(rows_.size());
  }

  // Makes the timeline at least T long (new rows are right-aligned at len_) by moving the running
  // rows right; copies through a temporary because source and destination overlap.
  void make_room(int64_t T) {
    if (len_ >= T) return;
    const int64_t n = static_cast<int64_t>(rows_.size()), shift = T - len_;
    if (n > 0 && len_ > 0) {
      for (size_t l = 0; l < keys_.size(); ++l) {
        for (auto* t : {&keys_[l], &values_[l]}) {
          auto running = t->narrow(0, 0, n);
          auto moved = running.narrow(2, 0, len_).clone();
          running.narrow(2, shift, len_).copy_(moved);
        }
      }
      auto running = mask_.narrow(0, 0, n);
      auto moved = running.narrow(1, 0, len_).clone();
      running.narrow(1, shift, len_).copy_(moved);
      running.narrow(1, 0, shift).zero_();
    } else if (n > 0) {
      mask_.narrow(0, 0, n).narrow(1, 0, shift).zero_();
    }
    len_ = T;
  }

  // Moves the running rows left so the timeline is as long as the longest row.
  void compact() {
    const int64_t n = static_cast<int64_t>(rows_.size());
    int64_t longest = 0;
    for (const auto& r : rows_) longest = std::max(longest, r.length);
    if (longest >= len_) fail("[engine] a row fills the whole context of ", opt_.ctx, " tokens");
    const int64_t from = len_ - longest;
    for (size_t l = 0; l < keys_.size(); ++l) {
      for (auto* t : {&keys_[l], &values_[l]}) {
        auto running = t->narrow(0, 0, n);
        auto moved = running.narrow(2, from, longest).clone();
        running.narrow(2, 0, longest).copy_(moved);
      }
    }
    auto running = mask_.narrow(0, 0, n);
    auto moved = running.narrow(1, from, longest).clone();
    running.narrow(1, 0, longest).copy_(moved);
    len_ = longest;
  }

  // Feeds every running row its sampled token and samples the next.
  void decode_step() {
    const int64_t n = static_cast<int64_t>(rows_.size());
    torch::Tensor logits;
    try {
      if (len_ >= opt_.ctx) compact();
      KVCache cache;
      for (size_t l = 0; l < keys_.size(); ++l) {
        cache.keys.push_back(keys_[l].narrow(0, 0, n));
        cache.values.push_back(values_[l].narrow(0, 0, n));
      }
      cache.mask = mask_.narrow(0, 0, n).narrow(1, 0, len_);
      cache.length = len_;
      std::vector<int64_t> next(n);
      std::vector<const ServedAdapter*> adapters(n, nullptr);
      for (int64_t b = 0; b < n; ++b) {
        next[b] = rows_[b].next;
        if (rows_[b].adapter && rows_[b].adapter->intervene_generated)
          adapters[b] = rows_[b].adapter;
      }
      BatchHooks hooks(model_.info().num_layers);
      plan_adapters(hooks, adapters, 1, device_,
                    [](size_t, size_t) { return std::vector<int64_t>{0}; });
      ForwardInput in;
      in.input_ids = torch::tensor(next, torch::kInt64).view({n, 1}).to(device_);
      in.attention_mask = torch::ones({n, 1}, torch::dtype(torch::kInt64).device(device_));
      in.cache = &cache;
      in.hooks = hooks.empty() ? nullptr : &hooks;
      in.logits = LogitsMode::kLast;
      logits = model_.forward(in).logits.to(torch::kFloat32).to(torch::kCPU);  // (n, V)
    } catch (const std::exception& e) {
      // Nothing of this step is trusted: every running row ends with the error.
      for (auto& r : rows_) {
        std::lock_guard lock(r.state->mu);
        r.state->error = e.what();
      }
      while (!rows_.empty()) end_row(rows_.size() - 1, FinishReason::kError);
      return;
    }
    mask_.narrow(0, 0, n).select(1, len_).fill_(1);
    ++len_;
    for (auto& r : rows_) ++r.length;
    {
      std::lock_guard lock(mu_);
      ++stats_.decode_steps;
      stats_.batch_size.observe(static_cast<double>(n));
    }
    for (int64_t b = n - 1; b >= 0; --b) {
      auto& r = rows_[b];
      if (r.state->cancelled) continue;  // dropped before the next step
      if (!accept(r, sample(r, logits[b]))) end_row(static_cast<size_t>(b), finish_reason_of(r));
    }
  }

  Model& model_;
  const Tokenizer* tokenizer_;  // null: token ids only
  EngineOptions opt_;
  torch::Device device_ = torch::kCPU;
  int64_t pad_id_ = 0;

  // Engine thread only.
  std::vector<torch::Tensor> keys_, values_;  // per layer (max_seqs, Hkv, ctx, Dh)
  torch::Tensor mask_;                        // (max_seqs, ctx)
  int64_t len_ = 0;
  std::vector<Row> rows_;

  mutable std::mutex mu_;  // queue_, stats_, stopping_
  std::condition_variable cv_;
  std::deque<std::shared_ptr<State>> queue_;
  EngineStats stats_;
  bool stopping_ = false, cancel_all_ = false;
  std::mutex join_mu_;
  std::thread thread_;
};

Engine::Engine(Model& model, const Tokenizer& tokenizer, EngineOptions options)
    : Engine(model, &tokenizer, options) {}

Engine::Engine(Model& model, EngineOptions options) : Engine(model, nullptr, options) {}

Engine::Engine(Model& model, const Tokenizer* tokenizer, EngineOptions options)
    : options_(options) {
  if (!model.info().causal)
    usage_fail("[serve] ", model.info().architecture, " is not a decoder; it cannot generate");
  if (options_.ctx < 2) usage_fail("[ctx] expected at least 2 positions, found ", options_.ctx);
  if (options_.max_seqs < 1) usage_fail("[max_seqs] expected >= 1, found ", options_.max_seqs);
  if (options_.max_queue < 0) usage_fail("[max_queue] expected >= 0, found ", options_.max_queue);
  if (options_.max_prefill_tokens < 1)
    usage_fail("[max_prefill_tokens] expected >= 1, found ", options_.max_prefill_tokens);
  impl_ = std::make_unique<Impl>(model, tokenizer, options_);
}

Engine::~Engine() = default;

std::shared_ptr<RequestStream> Engine::submit(EngineRequest request) {
  return impl_->submit(std::move(request));
}

EngineStats Engine::stats() const { return impl_->stats(); }

void Engine::stop(bool cancel) { impl_->stop(cancel); }

}  // namespace reft
