#pragma once
/// Measurements for benchmarks: this machine's ceilings and model FLOP/byte counts, so that speed
/// is always reported as a ratio measured in the same run.

#include <cstdint>
#include <string>

#include "reft/model.h"

namespace reft {

/// fp32 (or `dtype`) GEMM rate of a large square torch::matmul, GFLOP/s (median of repeats).
double measure_gemm_gflops(torch::Dtype dtype = torch::kFloat32, int64_t n = 2048, double seconds = 1.0);

/// Copy bandwidth: bytes read + written per second by dst.copy_(src) of `bytes` (≥ 256 MiB) into a
/// preallocated tensor, GB/s (median of repeats).
double measure_copy_gbps(int64_t bytes = 256ll << 20, double seconds = 1.0);

/// FLOPs of one forward over a (B, T) batch of a decoder, counting what the model needs: every
/// linear map (2 per weight per token), causal attention (q·k and p·v over the keys each query
/// may see, with `past` cached keys), and the LM head only on `logits_rows` rows.
double decoder_forward_flops(const ModelInfo& info, int64_t B, int64_t T, int64_t past, int64_t logits_rows);

/// Weight bytes one decode step reads: every layer weight, the final norm and the LM head
/// (the embedding contributes one row).
double decoder_step_weight_bytes(const Model& model);

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
