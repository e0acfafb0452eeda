// reft bench generate: speed as ratios of this machine's ceilings measured in the same run.

#include <torch/torch.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "reft/bench.h"
#include "reft/error.h"
#include "reft/model.h"
#include "reft/runtime.h"

namespace reft::cli {
namespace {

int run_bench_generate(const Args& args) {
  apply_runtime_flags(args);
  LoadOptions lo;
  lo.device = parse_device(args.get("device"));
  lo.dtype = parse_dtype(args.get("dtype"));
  auto model = load_model(args.get("model"), lo);
  GenerateBenchOptions opt;
  opt.prefill_batch = args.get_int("prefill-batch");
  opt.prefill_tokens = args.get_int("prefill-tokens");
  opt.decode_prompt = args.get_int("decode-prompt");
  opt.decode_tokens = args.get_int("decode-tokens");
  opt.repeats = static_cast<int>(args.get_int("repeats"));
  if (opt.prefill_batch < 1 || opt.prefill_tokens < 1 || opt.decode_prompt < 1 || opt.decode_tokens < 2 ||
      opt.repeats < 1)
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
  std::printf("model      %s, %lld parameters, %s, %d threads, OMP_WAIT_POLICY=%s\n", i.architecture.c_str(),
              static_cast<long long>(model->num_parameters()), dtype_name(i.dtype).c_str(), at::get_num_threads(),
              omp_wait_policy().empty() ? "(unset)" : omp_wait_policy().c_str());
  std::printf("machine    fp32 GEMM %.1f GFLOP/s, copy %.1f GB/s (read + written)\n", r.gemm_gflops, r.copy_gbps);
  std::printf("prefill    %lld x %lld tokens: %.1f tokens/s, %.1f GFLOP/s = %.1f%% of GEMM\n",
              static_cast<long long>(opt.prefill_batch), static_cast<long long>(opt.prefill_tokens),
              r.prefill_tokens_per_s, r.prefill_gflops, 100 * r.prefill_mfu);
  std::printf("decode     batch 1: %.1f tokens/s, weights %.2f GB/s = %.1f%% of copy bandwidth\n",
              r.decode_tokens_per_s, r.decode_gbps, 100 * r.decode_bandwidth_utilisation);
  return 0;
}

}  // namespace

std::vector<Command> bench_commands() {
  auto flags = runtime_flags();
  std::vector<Flag> gen = {
      {"model", "DIR", "", "HuggingFace model folder (e.g. one written by reft init-model --preset llama-110m)"},
      {"prefill-batch", "B", "4", "prefill batch size"},
      {"prefill-tokens", "T", "128", "prefill tokens per row"},
      {"decode-prompt", "N", "16", "prompt length before decoding"},
      {"decode-tokens", "N", "64", "decoded tokens (batch 1, greedy)"},
      {"repeats", "N", "3", "timed repetitions (median reported)"},
      {"json", "", "", "print one JSON object"},
  };
  gen.insert(gen.end(), flags.begin(), flags.end());
  return {
      {"bench generate",
       "Prefill and decode speed, with this machine's fp32 GEMM rate and copy bandwidth measured in the same "
       "run: prefill model-FLOP utilisation and decode weight-bandwidth utilisation.",
       "--model DIR [--json] [flags]", gen, run_bench_generate},
  };
}

}  // namespace reft::cli
