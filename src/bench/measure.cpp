#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "models/kernels.h"
#include "reft/bench.h"
#include "reft/generate.h"
#include "reft/runtime.h"

namespace reft {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs `fn` until `budget` seconds have passed (at least `min_runs` times) and returns the median
// time of one run.
template <class Fn>
double median_time(Fn&& fn, double budget, int min_runs = 3) {
  fn();  // warm up: first-touch page faults, thread pools, caches
  std::vector<double> times;
  const auto start = Clock::now();
  while (static_cast<int>(times.size()) < min_runs || seconds_since(start) < budget) {
    const auto t0 = Clock::now();
    fn();
    times.push_back(seconds_since(t0));
    if (times.size() > 1000) break;
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

double measure_gemm_gflops(torch::Dtype dtype, int64_t n, double seconds) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
  auto c = torch::empty({n, n}, dtype);
  // The machine's GEMM rate as reft reaches it: BLAS runs no threads of its own (util/blas.h), so
  // fp32 goes through the products split over the pool (kernels::matmul), every core busy.
  runtime();
  const double t = median_time(
      [&] {
        if (dtype == torch::kFloat32)
          c = kernels::matmul(a, b);
        else
          torch::matmul_out(c, a, b);
      },
      seconds);
  return 2.0 * n * n * n / t / 1e9;
}

double measure_copy_gbps(int64_t bytes, double seconds) {
  torch::NoGradGuard no_grad;
  bytes = std::max<int64_t>(bytes, 256ll << 20);
  auto src = torch::ones({bytes / 4}, torch::kFloat32);
  auto dst = torch::empty_like(src);
  // The ceiling is the machine's: copy with every core even if libtorch was set to fewer threads.
  const int threads = at::get_num_threads();
  torch::set_num_threads(available_cores());
  const double t = median_time([&] { dst.copy_(src); }, seconds);
  torch::set_num_threads(threads);
  return 2.0 * static_cast<double>(src.numel()) * 4 / t / 1e9;
}

GenerateBenchResult bench_generate(Model& model, const GenerateBenchOptions& opt) {
  const auto& info = model.info();
  const ForwardCost cost = model.forward_cost();
  GenerateBenchResult r;
  r.gemm_gflops = measure_gemm_gflops();
  r.copy_gbps = measure_copy_gbps();
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
  const int64_t low = std::min<int64_t>(3, info.vocab_size - 1);
  auto ids = torch::randint(low, info.vocab_size, {opt.prefill_batch, opt.prefill_tokens}, gen,
                            torch::kInt64);

  ForwardInput in;
  in.input_ids = ids.to(info.device);
  in.logits = LogitsMode::kLast;
  const double prefill_s = median_time([&] { model.forward(in); }, 0.0, opt.repeats);
  r.prefill_tokens_per_s = opt.prefill_batch * opt.prefill_tokens / prefill_s;
  r.prefill_gflops =
      cost.flops(opt.prefill_batch, opt.prefill_tokens, 0, opt.prefill_batch) / prefill_s / 1e9;
  r.prefill_mfu = r.prefill_gflops / r.gemm_gflops;

  auto prompt_t = torch::randint(low, info.vocab_size, {opt.decode_prompt}, gen, torch::kInt64);
  std::vector<int64_t> prompt(prompt_t.data_ptr<int64_t>(),
                              prompt_t.data_ptr<int64_t>() + opt.decode_prompt);
  GenerationOptions g;
  g.max_new_tokens = opt.decode_tokens;
  g.use_model_eos = false;
  // Time only the decode steps: the prefill of the short prompt is measured separately and removed.
  const double prompt_s = median_time(
      [&] {
        GenerationOptions one = g;
        one.max_new_tokens = 1;
        generate(model, {prompt}, one);
      },
      0.0, opt.repeats);
  const double total_s = median_time([&] { generate(model, {prompt}, g); }, 0.0, opt.repeats);
  const double decode_s = std::max(total_s - prompt_s, 1e-9);
  r.decode_tokens_per_s = (opt.decode_tokens - 1) / decode_s;
  r.decode_gbps = cost.weight_bytes * r.decode_tokens_per_s / 1e9;
  r.decode_bandwidth_utilisation = r.decode_gbps / r.copy_gbps;
  return r;
}

}  // namespace reft
