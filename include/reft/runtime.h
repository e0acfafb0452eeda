#pragma once
/// The process's compute runtime (threads and BLAS), devices and dtypes.
///
/// One pool runs every parallel kernel: libtorch's intra-op OpenMP pool (libgomp on Linux). BLAS
/// never runs threads of its own: reft's matrix products split their output into per-thread
/// blocks on that pool, each block one single-threaded BLAS call. Two pools on the same cores
/// (libgomp's and OpenBLAS's pthreads) spin-wait against each other between operations; on 2 cores
/// that made a training step up to 17× slower. The runtime is set up once, on first use or by an
/// explicit init_runtime(); no call toggles global state per operation.

#include <torch/types.h>

#include <string>
#include <string_view>

namespace reft {

struct RuntimeOptions {
  /// Intra-op threads of the pool; 0 = every core this process may run on.
  int threads = 0;
  /// Keep freed memory inside the process instead of returning it to the OS. Large tensors are
  /// allocated and freed on every forward; on virtual machines where each fresh page costs a
  /// slow fault (measured here: a 4 MiB temporary cost ~8 ms instead of ~0.1 ms) this matters more
  /// than any kernel. Applied at the first initialization only.
  bool retain_freed_memory = true;
  /// Print one warning line on stderr when the BLAS in use is not an optimized one.
  bool warn_slow_blas = true;
};

/// What the runtime resolved.
struct RuntimeInfo {
  int threads = 0;              ///< intra-op threads of the pool
  std::string blas;             ///< the library serving sgemm_ (its path or OpenBLAS's config)
  bool blas_optimized = false;  ///< false: reference BLAS (about 30× slower matrix products)
  bool blas_symbol = false;     ///< sgemm_ was found (else products go through at::mm)
  std::string omp_wait_policy;  ///< OMP_WAIT_POLICY from the environment; "" = libgomp's default
};

/// Sets up the runtime with `options`: the first call resolves BLAS once (sgemm_, its own
/// threads set to 1, a warning line naming the package to install when it is the slow reference
/// BLAS), applies the memory options and sizes the pool; later calls only resize the pool.
/// Library entry points that compute call runtime(), so calling this is needed only to choose
/// options. Thread-safe. Returns a copy of the resolved state.
RuntimeInfo init_runtime(const RuntimeOptions& options = {});

/// The runtime in use, set up with default options on first use. Thread-safe.
RuntimeInfo runtime();

/// Number of cores this process may run on.
int available_cores();

/// The OpenMP wait policy the runtime started with ("PASSIVE", "ACTIVE" or "" when unset). It can
/// only be chosen through the environment of the process (libgomp reads it when it loads);
/// reft needs none: with one pool, libgomp's default (spin a while, then sleep) serves it well.
std::string omp_wait_policy();

/// "cpu", "cuda", "cuda:1" → torch::Device. Throws UsageError for anything else or when CUDA
/// is requested from a libtorch built without it.
torch::Device parse_device(std::string_view name);

/// "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16" → dtype. Throws UsageError otherwise.
torch::Dtype parse_dtype(std::string_view name);

/// Short name of a floating dtype: "f32", "bf16", "f16", "f64".
std::string dtype_name(torch::Dtype dtype);

}  // namespace reft
