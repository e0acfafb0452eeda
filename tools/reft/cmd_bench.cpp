// reft bench generate | train | serve: speed as ratios of this machine's ceilings measured in the
// same run.

#include <torch/torch.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "reft/bench.h"
#include "reft/error.h"
#include "reft/model.h"
#include "reft/reft_model.h"
#include "reft/runtime.h"

namespace reft::cli {
namespace {

// --model with --device/--dtype, after --threads.
std::unique_ptr<Model> bench_model(const Args& args) {
  apply_runtime_flags(args);
  LoadOptions lo;
  lo.device = parse_device(args.get("device"));
  lo.dtype = parse_dtype(args.get("dtype"));
  return load_model(args.get("model"), lo);
}

int run_bench_generate(const Args& args) {
  auto model = bench_model(args);
  GenerateBenchOptions opt;
  opt.prefill_batch = args.get_int("prefill-batch");
  opt.prefill_tokens = args.get_int("prefill-tokens");
  opt.decode_prompt = args.get_int("decode-prompt");
  opt.decode_tokens = args.get_int("decode-tokens");
  opt.repeats = static_cast<int>(args.get_int("repeats"));
  if (opt.prefill_batch < 1 || opt.prefill_tokens < 1 || opt.decode_prompt < 1 ||
      opt.decode_tokens < 2 || opt.repeats < 1)
    usage_fail("[reft bench generate] expected positive sizes (decode-tokens >= 2)");
  const auto r = bench_generate(*model, opt);
  if (args.has("json")) {
    nlohmann::ordered_json j = {{"prefill_tokens_per_s", r.prefill_tokens_per_s},
                                {"decode_tokens_per_s", r.decode_tokens_per_s},
                                {"gemm_gflops", r.gemm_gflops},
                                {"copy_gbps", r.copy_gbps},
                                {"prefill_mfu", r.prefill_mfu},
                                {"decode_bandwidth_utilisation", r.decode_bandwidth_utilisation},
                                {"prefill_gflops", r.prefill_gflops},
                                {"decode_gbps", r.decode_gbps},
                                {"threads", at::get_num_threads()},
                                {"omp_wait_policy", omp_wait_policy()},
                                {"model", model->info().architecture},
                                {"parameters", model->num_parameters()},
                                {"dtype", dtype_name(model->info().dtype)}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  const auto& i = model->info();
  std::printf("model      %s, %lld parameters, %s, %d threads, OMP_WAIT_POLICY=%s\n",
              i.architecture.c_str(), static_cast<long long>(model->num_parameters()),
              dtype_name(i.dtype).c_str(), at::get_num_threads(),
              omp_wait_policy().empty() ? "(unset)" : omp_wait_policy().c_str());
  std::printf("machine    fp32 GEMM %.1f GFLOP/s, copy %.1f GB/s (read + written)\n", r.gemm_gflops,
              r.copy_gbps);
  std::printf("prefill    %lld x %lld tokens: %.1f tokens/s, %.1f GFLOP/s = %.1f%% of GEMM\n",
              static_cast<long long>(opt.prefill_batch), static_cast<long long>(opt.prefill_tokens),
              r.prefill_tokens_per_s, r.prefill_gflops, 100 * r.prefill_mfu);
  std::printf("decode     batch 1: %.1f tokens/s, weights %.2f GB/s = %.1f%% of copy bandwidth\n",
              r.decode_tokens_per_s, r.decode_gbps, 100 * r.decode_bandwidth_utilisation);
  return 0;
}

int run_bench_train(const Args& args) {
  auto model = bench_model(args);
  auto config = config_from_flags(args, model->info());
  ReftModel reft(*model, config, 0);
  TrainBenchOptions o;
  o.batch_size = args.get_int("batch-size");
  o.seq_len = args.get_int("seq-len");
  o.steps = static_cast<int>(args.get_int("steps"));
  o.cache_frozen_prefix = args.has("prefix-cache");
  if (o.batch_size < 1 || o.seq_len < 2 || o.steps < 1)
    usage_fail("[reft bench train] expected positive sizes");
  const auto r = bench_train(reft, o);
  if (args.has("json")) {
    nlohmann::ordered_json j = {{"tokens_per_s", r.tokens_per_s},
                                {"step_s", r.step_s},
                                {"gemm_gflops", r.gemm_gflops},
                                {"mfu", r.mfu},
                                {"forward_gflop", r.forward_gflop},
                                {"backward_gflop", r.backward_gflop},
                                {"loss", r.loss},
                                {"threads", at::get_num_threads()},
                                {"omp_wait_policy", omp_wait_policy()},
                                {"dtype", dtype_name(model->info().dtype)},
                                {"trainable_parameters", reft.num_trainable_parameters()}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("model      %s, %lld parameters, %s, %d threads, OMP_WAIT_POLICY=%s\n",
              model->info().architecture.c_str(), static_cast<long long>(model->num_parameters()),
              dtype_name(model->info().dtype).c_str(), at::get_num_threads(),
              omp_wait_policy().empty() ? "(unset)" : omp_wait_policy().c_str());
  std::printf(
      "reft       %zu interventions, %lld trainable parameters, batch %lld x %lld (labels on the "
      "second half)\n",
      config.representations.size(), static_cast<long long>(reft.num_trainable_parameters()),
      static_cast<long long>(o.batch_size), static_cast<long long>(o.seq_len));
  std::printf("machine    fp32 GEMM %.1f GFLOP/s\n", r.gemm_gflops);
  std::printf(
      "step       %.2f ms, %.0f tokens/s; %.2f + %.2f GFLOP (forward + backward) = %.1f%% of "
      "GEMM\n",
      1e3 * r.step_s, r.tokens_per_s, r.forward_gflop, r.backward_gflop, 100 * r.mfu);
  return 0;
}

int run_bench_serve(const Args& args) {
  auto model = bench_model(args);
  ServeBenchOptions o;
  o.adapters = args.get_int("adapters");
  o.streams = args.get_int("streams");
  o.requests = args.get_int("requests");
  o.prompt_tokens = args.get_int("prompt-tokens");
  o.new_tokens = args.get_int("new-tokens");
  o.rank = args.get_int("rank");
  const auto r = bench_serve(*model, o);
  if (args.has("json")) {
    nlohmann::ordered_json j = {{"single_tokens_per_s", r.single_tokens_per_s},
                                {"base_tokens_per_s", r.base_tokens_per_s},
                                {"adapters_tokens_per_s", r.adapters_tokens_per_s},
                                {"concurrency_speedup", r.concurrency_speedup},
                                {"adapter_ratio", r.adapter_ratio},
                                {"ttft_p50_s", r.ttft_p50_s},
                                {"ttft_p99_s", r.ttft_p99_s},
                                {"mean_batch", r.mean_batch},
                                {"single_decode_tokens_per_s", r.single_decode_tokens_per_s},
                                {"base_decode_tokens_per_s", r.base_decode_tokens_per_s},
                                {"adapters_decode_tokens_per_s", r.adapters_decode_tokens_per_s},
                                {"decode_speedup", r.decode_speedup},
                                {"decode_adapter_ratio", r.decode_adapter_ratio},
                                {"streams", o.streams},
                                {"adapters", o.adapters},
                                {"requests", o.requests},
                                {"prompt_tokens", o.prompt_tokens},
                                {"new_tokens", o.new_tokens},
                                {"threads", at::get_num_threads()},
                                {"model", model->info().architecture},
                                {"parameters", model->num_parameters()},
                                {"dtype", dtype_name(model->info().dtype)}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  const auto& i = model->info();
  std::printf("model      %s, %lld parameters, %s, %d threads\n", i.architecture.c_str(),
              static_cast<long long>(model->num_parameters()), dtype_name(i.dtype).c_str(),
              at::get_num_threads());
  std::printf("load       %lld requests x (%lld prompt + %lld generated tokens), %lld streams\n",
              static_cast<long long>(o.requests), static_cast<long long>(o.prompt_tokens),
              static_cast<long long>(o.new_tokens), static_cast<long long>(o.streams));
  std::printf("single     %.1f tokens/s (one request at a time)\n", r.single_tokens_per_s);
  std::printf("base       %.1f tokens/s = %.2fx single\n", r.base_tokens_per_s,
              r.concurrency_speedup);
  std::printf(
      "adapters   %.1f tokens/s = %.3fx base (%lld adapters, a different one per request; "
      "mean batch %.1f)\n",
      r.adapters_tokens_per_s, r.adapter_ratio, static_cast<long long>(o.adapters), r.mean_batch);
  std::printf(
      "decode     steps only (prefills excluded): single %.1f, base %.1f = %.2fx single, "
      "adapters %.1f = %.3fx base tokens/s\n",
      r.single_decode_tokens_per_s, r.base_decode_tokens_per_s, r.decode_speedup,
      r.adapters_decode_tokens_per_s, r.decode_adapter_ratio);
  std::printf("ttft       p50 %.1f ms, p99 %.1f ms (adapter run, queueing included)\n",
              1e3 * r.ttft_p50_s, 1e3 * r.ttft_p99_s);
  return 0;
}

}  // namespace

std::vector<Command> bench_commands() {
  auto flags = runtime_flags();
  std::vector<Flag> gen = {
      {"model", "DIR", "",
       "HuggingFace model folder (e.g. one written by reft init-model --preset llama-110m)"},
      {"prefill-batch", "B", "4", "prefill batch size"},
      {"prefill-tokens", "T", "128", "prefill tokens per row"},
      {"decode-prompt", "N", "16", "prompt length before decoding"},
      {"decode-tokens", "N", "64", "decoded tokens (batch 1, greedy)"},
      {"repeats", "N", "3", "timed repetitions (median reported)"},
      {"json", "", "", "print one JSON object"},
  };
  gen.insert(gen.end(), flags.begin(), flags.end());
  std::vector<Flag> train = {
      {"model", "DIR", "", "HuggingFace model folder"},
      {"batch-size", "B", "4", "batch size"},
      {"seq-len", "T", "128", "tokens per row (prompt = first half, labels on the second half)"},
      {"steps", "N", "5", "timed steps (median reported)"},
      {"prefix-cache", "", "",
       "reuse the frozen layers below the lowest intervention across steps"},
      {"json", "", "", "print one JSON object"},
  };
  for (auto& f : intervention_flags()) train.push_back(f);
  train.insert(train.end(), flags.begin(), flags.end());
  std::vector<Flag> serve = {
      {"model", "DIR", "", "HuggingFace decoder folder (e.g. reft init-model --preset llama-110m)"},
      {"adapters", "N", "64", "distinct random LoReFT adapters (middle layer, f1+l1)"},
      {"rank", "R", "4", "adapter rank"},
      {"streams", "N", "16", "concurrent requests (rows decoded together)"},
      {"requests", "N", "64", "requests per concurrent run"},
      {"prompt-tokens", "N", "32", "random prompt tokens per request"},
      {"new-tokens", "N", "64", "generated tokens per request (greedy, no early stop)"},
      {"json", "", "", "print one JSON object"},
  };
  serve.insert(serve.end(), flags.begin(), flags.end());
  return {
      {"bench train",
       "Time ReFT training steps (AdamW) on random data. Reports tokens/s and model-FLOP "
       "utilisation against this machine's fp32 GEMM rate measured in the same run.",
       "--model DIR [--layers L] [--position P] [--rank R] [--type T] [--batch-size B] [--seq-len "
       "T] [--json]",
       train, run_bench_train},
      {"bench generate",
       "Time prefill and decode. Reports them with this machine's fp32 GEMM rate and copy "
       "bandwidth measured in the same run: prefill model-FLOP utilisation and decode "
       "weight-bandwidth utilisation.",
       "--model DIR [--json] [flags]", gen, run_bench_generate},
      {"bench serve",
       "Time the serving engine (continuous batching, no HTTP): generated tokens/s for one stream, "
       "N concurrent streams on the base model, and the same load with a different adapter per "
       "request; time to first token. All measured in the same run.",
       "--model DIR [--streams N] [--adapters N] [--json] [flags]", serve, run_bench_serve},
  };
}

}  // namespace reft::cli
