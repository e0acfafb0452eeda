#pragma once
/// Process-wide runtime settings: threads, allocator behaviour, devices and dtypes.

#include <torch/types.h>

#include <string>
#include <string_view>

namespace reft {

struct RuntimeOptions {
  /// Intra-op threads for libtorch and OpenBLAS; 0 = all cores.
  int threads = 0;
  /// Keep freed memory inside the process instead of returning it to the OS. Large tensors are
  /// allocated and freed on every forward; on virtual machines where each fresh page costs a
  /// slow fault (measured here: a 4 MiB temporary cost ~8 ms instead of ~0.1 ms) this matters more
  /// than any kernel.
  bool retain_freed_memory = true;
};

/// Applies `options` (idempotent; call before heavy work). Returns the thread count in use.
int init_runtime(const RuntimeOptions& options = {});

/// libtorch's OpenMP pool (libgomp) and OpenBLAS's threads both spin-wait while idle; on a machine
/// with few cores they starve each other (measured here: a stories260K training step takes 296 ms
/// with the default ACTIVE policy, 17 ms with PASSIVE). libgomp reads OMP_WAIT_POLICY once, before
/// main() runs, so a program can only choose it by re-executing itself. When OMP_WAIT_POLICY is
/// unset, this sets it to PASSIVE and execv()s /proc/self/exe with the same arguments (it returns
/// only when the policy was already set or the exec failed). Call it first in main().
void reexec_with_passive_wait_policy(char** argv);

/// Number of cores this process may run on.
int available_cores();

/// The OpenMP wait policy the runtime started with ("PASSIVE", "ACTIVE" or "" when unset). It can
/// only be chosen before the OpenMP runtime starts, i.e. through the environment of the process.
std::string omp_wait_policy();

/// "cpu", "cuda", "cuda:1" → torch::Device. Throws UsageError for anything else or when CUDA
/// is requested from a libtorch built without it.
torch::Device parse_device(std::string_view name);

/// "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16" → dtype. Throws UsageError otherwise.
torch::Dtype parse_dtype(std::string_view name);

/// Short name of a floating dtype: "f32", "bf16", "f16", "f64".
std::string dtype_name(torch::Dtype dtype);

}  // namespace reft
