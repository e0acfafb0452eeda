#pragma once
/// Measurements for benchmarks: this machine's ceilings and model FLOP/byte counts, so that speed
/// is always reported as a ratio measured in the same run.

#include <cstdint>
#include <string>

#include "reft/model.h"

namespace reft {

/// fp32 (or `dtype`) GEMM rate of a large square torch::matmul, GFLOP/s (median of repeats).
double measure_gemm_gflops(torch::Dtype dtype = torch::kFloat32, int64_t n = 2048,
                           double seconds = 1.0);

/// Copy bandwidth: bytes read + written per second by dst.copy_(src) of `bytes` (≥ 256 MiB) into a
/// preallocated tensor, GB/s (median of repeats).
double measure_copy_gbps(int64_t bytes = 256ll << 20, double seconds = 1.0);

// FLOP and byte counts come from the architecture: Model::forward_cost() (reft/model.h).

struct GenerateBenchOptions {
  int64_t prefill_batch = 4, prefill_tokens = 128;
  int64_t decode_prompt = 16, decode_tokens = 64;
  int repeats = 3;
  uint64_t seed = 0;
};

struct GenerateBenchResult {
  double prefill_tokens_per_s = 0, decode_tokens_per_s = 0;
  double gemm_gflops = 0, copy_gbps = 0;
  double prefill_gflops = 0, decode_gbps = 0;
  double prefill_mfu = 0, decode_bandwidth_utilisation = 0;
};

/// Prefill (B×T tokens, logits at the last position, as generation does) and batch-1 greedy
/// decode, timed on random ids, with this machine's GEMM and copy ceilings measured in the same
/// run.
GenerateBenchResult bench_generate(Model& model, const GenerateBenchOptions& options);

}  // namespace reft

namespace reft {

class ReftModel;

struct TrainBenchOptions {
  int64_t batch_size = 4, seq_len = 128;
  int steps = 5;  // timed steps (after one warm-up step)
  uint64_t seed = 0;
  bool cache_frozen_prefix = false;  // reuse the frozen layers' output across steps (same batch)
};

struct TrainBenchResult {
  double step_s = 0, tokens_per_s = 0;
  double gemm_gflops = 0;  // the higher of the ceilings measured before and after the steps
  double mfu = 0;
  double forward_gflop = 0, backward_gflop = 0;  // per step, as counted (see train_step_flops)
  double loss = 0;
};

/// FLOPs of one ReFT training step on a (B, T) batch whose second half is labelled: the forward
/// from `start_layer` (all layers unless the frozen prefix is cached), the LM head on the labelled
/// rows only, and the backward of what autograd must differentiate — input gradients (dX, never
/// dW: weights are frozen) of every layer from the lowest intervention up, the attention backward
/// (2× its forward), and the head at the labelled rows. Intervention FLOPs are included.
std::pair<double, double> train_step_flops(const ReftModel& reft, int64_t B, int64_t T,
                                           int64_t labelled_rows, int64_t start_layer);

/// Times AdamW steps of `reft` on a random batch (prompt = first half, labels on the second).
TrainBenchResult bench_train(ReftModel& reft, const TrainBenchOptions& options);

}  // namespace reft

namespace reft {

struct ServeBenchOptions {
  int64_t adapters = 64;       // distinct LoReFT adapters, one per request in the adapter run
  int64_t streams = 16;        // concurrent requests (the engine's max_seqs)
  int64_t requests = 64;       // requests per concurrent run
  int64_t prompt_tokens = 32;  // random prompt ids
  int64_t new_tokens = 64;     // generated per request (greedy, no early stop)
  int64_t rank = 4;            // adapters: LoReFT rank at the middle layer, positions f1+l1
  uint64_t seed = 0;
};

struct ServeBenchResult {
  double single_tokens_per_s = 0;         // one request at a time
  double base_tokens_per_s = 0;           // `streams` concurrent, every request on the base model
  double adapters_tokens_per_s = 0;       // the same load, every request on a different adapter
  double concurrency_speedup = 0;         // base_tokens_per_s / single_tokens_per_s
  double adapter_ratio = 0;               // adapters_tokens_per_s / base_tokens_per_s
  double ttft_p50_s = 0, ttft_p99_s = 0;  // time to first token in the adapter run
  double mean_batch = 0;                  // rows per decode step in the adapter run
  /// Decode phase only: tokens of decode steps per second of decode steps (prefills excluded).
  double single_decode_tokens_per_s = 0, base_decode_tokens_per_s = 0,
         adapters_decode_tokens_per_s = 0;
  double decode_speedup = 0;        // base_decode / single_decode
  double decode_adapter_ratio = 0;  // adapters_decode / base_decode
};

/// Serving throughput through reft::Engine (continuous batching, no HTTP): generated tokens per
/// second of wall time, prefill included, for a single stream, `streams` concurrent streams on
/// the base model and the same load with a different adapter per request, measured in one run.
ServeBenchResult bench_serve(Model& model, const ServeBenchOptions& options);

}  // namespace reft
