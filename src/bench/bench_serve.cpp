// reft bench serve: the engine's throughput with one stream, many streams, and many adapters.

#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <chrono>
#include <thread>

#include "reft/bench.h"
#include "reft/engine.h"
#include "reft/error.h"

namespace reft {
namespace {

using Clock = std::chrono::steady_clock;

struct RunResult {
  double tokens_per_s = 0;
  std::vector<double> ttft;  // seconds, one per request
  double mean_batch = 0;
  double decode_tokens_per_s = 0;  // tokens of decode steps / seconds in decode steps
};

// Submits every request at once to an engine with `streams` rows and waits for all of them; each
// request is followed by a thread of its own so its first token is timed when it arrives.
RunResult run_load(Model& model, const std::vector<std::vector<int64_t>>& prompts,
                   const std::vector<std::shared_ptr<const ServedAdapter>>& adapters,
                   int64_t streams, int64_t new_tokens) {
  EngineOptions eo;
  eo.max_seqs = streams;
  eo.max_queue = static_cast<int64_t>(prompts.size());
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, p.size());
  eo.ctx = longest + new_tokens;
  Engine engine(model, eo);
  GenerationOptions g;
  g.max_new_tokens = new_tokens;
  g.use_model_eos = false;
  RunResult out;
  out.ttft.resize(prompts.size());
  int64_t generated = 0;
  std::vector<int64_t> counts(prompts.size());
  std::vector<std::thread> waiters;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EngineRequest r;
    r.prompt = prompts[i];
    r.adapter = adapters.empty() ? nullptr : adapters[i % adapters.size()];
    r.options = g;
    auto stream = engine.submit(std::move(r));
    const auto submitted = Clock::now();
    waiters.emplace_back([&, stream, submitted, i] {
      bool first = true;
      for (;;) {
        auto ev = stream->wait(std::chrono::milliseconds(1000));
        if (first && !ev.tokens.empty()) {
          out.ttft[i] = std::chrono::duration<double>(Clock::now() - submitted).count();
          first = false;
        }
        if (ev.finished) {
          if (ev.reason == FinishReason::kError) fail("[bench serve] ", ev.error);
          counts[i] = ev.completion_tokens;
          return;
        }
      }
    });
  }
  for (auto& w : waiters) w.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (int64_t c : counts) generated += c;
  out.tokens_per_s = static_cast<double>(generated) / seconds;
  const auto stats = engine.stats();
  out.mean_batch = stats.batch_size.count ? stats.batch_size.sum / stats.batch_size.count : 0;
  out.decode_tokens_per_s =
      stats.decode_seconds > 0 ? stats.batch_size.sum / stats.decode_seconds : 0;
  return out;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

}  // namespace

ServeBenchResult bench_serve(Model& model, const ServeBenchOptions& opt) {
  const auto& info = model.info();
  if (!info.causal) usage_fail("[bench serve] ", info.architecture, " is not a decoder");
  if (opt.adapters < 1 || opt.streams < 1 || opt.requests < 1 || opt.prompt_tokens < 1 ||
      opt.new_tokens < 1 || opt.rank < 1)
    usage_fail("[bench serve] expected positive sizes");
  // Random prompts (ids ≥ 3 stay clear of the usual specials) and random LoReFT adapters.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
  const int64_t low = std::min<int64_t>(3, info.vocab_size - 1);
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t i = 0; i < opt.requests; ++i) {
    auto ids = torch::randint(low, info.vocab_size, {opt.prompt_tokens}, gen, torch::kInt64);
    prompts.emplace_back(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  }
  InterventionOptions io;
  io.type = InterventionType::kLoReFT;
  io.low_rank_dimension = opt.rank;
  const auto config =
      ReftConfig::build({info.num_layers / 2}, Component::kBlockOutput, io, "f1+l1", false);
  std::vector<std::shared_ptr<const ServedAdapter>> adapters;
  for (int64_t a = 0; a < opt.adapters; ++a) {
    auto served = std::make_shared<ServedAdapter>();
    served->name = "bench-" + std::to_string(a);
    served->reft = std::make_shared<ReftModel>(model, config, opt.seed + 1 + a);
    adapters.push_back(std::move(served));
  }

  ServeBenchResult r;
  // Warm-up: thread pools, first-touch pages of the cache.
  run_load(model, {prompts[0]}, {}, 1, std::min<int64_t>(opt.new_tokens, 8));
  const auto single = run_load(model, {prompts[0]}, {}, 1, opt.new_tokens);
  const auto base = run_load(model, prompts, {}, opt.streams, opt.new_tokens);
  const auto with_adapters = run_load(model, prompts, adapters, opt.streams, opt.new_tokens);
  r.single_tokens_per_s = single.tokens_per_s;
  r.base_tokens_per_s = base.tokens_per_s;
  r.adapters_tokens_per_s = with_adapters.tokens_per_s;
  r.concurrency_speedup = base.tokens_per_s / single.tokens_per_s;
  r.adapter_ratio = with_adapters.tokens_per_s / base.tokens_per_s;
  r.ttft_p50_s = quantile(with_adapters.ttft, 0.5);
  r.ttft_p99_s = quantile(with_adapters.ttft, 0.99);
  r.mean_batch = with_adapters.mean_batch;
  r.single_decode_tokens_per_s = single.decode_tokens_per_s;
  r.base_decode_tokens_per_s = base.decode_tokens_per_s;
  r.adapters_decode_tokens_per_s = with_adapters.decode_tokens_per_s;
  r.decode_speedup = base.decode_tokens_per_s / single.decode_tokens_per_s;
  r.decode_adapter_ratio = with_adapters.decode_tokens_per_s / base.decode_tokens_per_s;
  return r;
}

}  // namespace reft
