#include "reft/runtime.h"

#include <ATen/Parallel.h>
#include <malloc.h>
#include <sched.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>

#include "reft/error.h"
#include "util/blas.h"

namespace reft {

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string omp_wait_policy() {
  const char* value = std::getenv("OMP_WAIT_POLICY");
  return value ? value : "";
}

namespace {

struct Runtime {
  std::mutex mutex;
  bool initialized = false;
  RuntimeInfo info;
};

Runtime& the_runtime() {
  static Runtime* r = new Runtime;  // never destroyed: pool threads may outlive static teardown
  return *r;
}

}  // namespace

RuntimeInfo init_runtime(const RuntimeOptions& options) {
  Runtime& r = the_runtime();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!r.initialized) {
    if (options.retain_freed_memory) {
      // Serve big tensors from the heap (no per-allocation mmap/munmap) and never trim it.
      mallopt(M_MMAP_THRESHOLD, 1 << 30);
      mallopt(M_TRIM_THRESHOLD, -1);
      mallopt(M_ARENA_MAX, 4);
    }
    const auto& blas = blas::resolve();
    r.info.blas = blas.library;
    r.info.blas_optimized = blas.optimized;
    r.info.blas_symbol = blas.symbol;
    r.info.omp_wait_policy = omp_wait_policy();
    if (!blas.optimized && options.warn_slow_blas)
      std::cerr << "reft: warning: matrix products run on the reference BLAS (" << blas.library
                << "), about 30x slower than OpenBLAS: install it as root with "
                   "'apt-get install libopenblas0-pthread'\n";
    r.initialized = true;
  }
  const int threads = options.threads > 0 ? options.threads : available_cores();
  if (at::get_num_threads() != threads) at::set_num_threads(threads);
  r.info.threads = at::get_num_threads();
  return r.info;
}

RuntimeInfo runtime() {
  Runtime& r = the_runtime();
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    if (r.initialized) return r.info;
  }
  return init_runtime();
}

torch::Device parse_device(std::string_view name) {
  if (name == "cpu") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      usage_fail("[--device] expected a usable CUDA device, found none (", name,
                 "); this libtorch has no CUDA support or no GPU is visible");
    try {
      return torch::Device(std::string(name));
    } catch (const std::exception&) {
      usage_fail("[--device] expected cpu, cuda or cuda:N, found '", name, "'");
    }
  }
  usage_fail("[--device] expected cpu, cuda or cuda:N, found '", name, "'");
}

torch::Dtype parse_dtype(std::string_view name) {
  if (name == "f32" || name == "float32" || name == "fp32" || name == "float")
    return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "f16" || name == "float16" || name == "fp16" || name == "half")
    return torch::kFloat16;
  if (name == "f64" || name == "float64" || name == "double") return torch::kFloat64;
  usage_fail("[--dtype] expected f32, bf16 or f16, found '", name, "'");
}

std::string dtype_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return "f32";
    case torch::kBFloat16:
      return "bf16";
    case torch::kFloat16:
      return "f16";
    case torch::kFloat64:
      return "f64";
    default:
      return std::string(c10::toString(dtype));
  }
}

}  // namespace reft
