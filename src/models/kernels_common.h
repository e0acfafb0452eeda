#pragma once
// What the fused CPU kernels (kernels_*.cpp) share: CPU-feature dispatch, a vectorizable exp, the
// parallel grain, and running a kernel through autograd only when a gradient is wanted. These
// files are compiled with OpenMP (at::parallel_for is a header template: without -fopenmp it
// silently runs serially) and as one unity translation unit (CMakeLists.txt).

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// The inner loops are compiled for AVX-512, AVX2 and the baseline, picked at load time by CPU
// features (GCC's "arch=" clones would test the CPU model, which misses AMD processors).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define REFT_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define REFT_MULTIVERSION
#endif

namespace reft::kernels::detail {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// exp for float in plain arithmetic the compiler vectorizes (Cody–Waite range reduction and
// Cephes's expf polynomial; about 1 ulp), where std::exp stays a scalar libm call.
__attribute__((always_inline)) inline float fast_exp(float x) {
  // Branch-free clamps (std::min/max block vectorization here).
  x = x < -87.33654f ? -87.33654f : x;
  x = x > 88.72283f ? 88.72283f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

inline bool fast_path(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32;
}

// Parallel chunks get at least ~100 µs of work (256K elements, or ~16 MFLOP of attention): waking
// a sleeping libgomp thread costs tens of microseconds, more than a small chunk saves.
inline int64_t rows_grain(int64_t elements_per_row) {
  return std::max<int64_t>(
      16, ((1 << 18) + elements_per_row - 1) / std::max<int64_t>(1, elements_per_row));
}
inline int64_t tasks_grain(double flops_per_task) {
  return std::max<int64_t>(1, static_cast<int64_t>(1.6e7 / std::max(1.0, flops_per_task)));
}

// Rows of `t` are at a fixed stride with a contiguous last dim (a slice of a fused projection).
inline bool rows_with_unit_stride(const torch::Tensor& t) {
  if (t.dim() < 2 || t.stride(-1) != 1) return false;
  // The leading dims must flatten to one row index with a constant stride.
  int64_t expected = t.stride(t.dim() - 2);
  for (int64_t d = t.dim() - 2; d > 0; --d) {
    if (t.stride(d - 1) != t.size(d) * t.stride(d)) return false;
  }
  return expected >= t.size(-1);
}

// Runs a kernel through autograd only when some input needs a gradient: Function::apply builds a
// graph node and records every input even under NoGradGuard, several microseconds per call that a
// decode step (dozens of calls, ~1 ms of work in all) would pay for nothing. Fn::forward saves
// nothing when given no context.
inline bool wants_grad(const torch::Tensor& t) { return t.defined() && t.requires_grad(); }
template <class T>
bool wants_grad(const T&) {
  return false;
}

template <class Fn, class... Args>
torch::Tensor run(Args&&... args) {
  if (torch::GradMode::is_enabled() && (wants_grad(args) || ...))
    return Fn::apply(std::forward<Args>(args)...);
  torch::NoGradGuard no_grad;
  return Fn::forward(nullptr, std::forward<Args>(args)...);
}

// y[o] = w[o·ldw : o·ldw + in] · x (+ bias[o]) for o in [begin, end) (kernels_linear.cpp).
void gemv_rows(const float* w, int64_t ldw, const float* x, const float* bias, float* y,
               int64_t begin, int64_t end, int64_t in);

}  // namespace reft::kernels::detail
