// Concurrent callers: the runtime and the fused kernels used from several threads at once (as a
// server's request threads will) give the same results as one caller, and share no unsynchronised
// state. This binary also runs under ThreadSanitizer (scripts/tsan.sh; see docs/design.md for
// why the OpenMP pool itself cannot be checked that way): there each worker thread runs its
// kernels on one OpenMP thread (OMP_NUM_THREADS=1), so only reft's own synchronisation is seen.

#include <torch/torch.h>

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include "models/kernels.h"
#include "reft/runtime.h"

namespace reft {
namespace {

// Runs fn(i) on `n` threads started together and joins them.
template <class Fn>
void on_threads(int n, Fn&& fn) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < n) std::this_thread::yield();
      fn(i);
    });
  for (auto& t : threads) t.join();
}

TEST(Threads, RuntimeInitialisesOnceUnderConcurrentCallers) {
  std::vector<RuntimeInfo> seen(8);
  on_threads(8, [&](int i) {
    if (i % 2)
      seen[i] = init_runtime();
    else
      seen[i] = runtime();
  });
  for (const auto& info : seen) {
    EXPECT_EQ(info.blas, seen[0].blas);
    EXPECT_EQ(info.blas_optimized, seen[0].blas_optimized);
    EXPECT_GE(info.threads, 1);
  }
}

// One layer's worth of kernels on fixed inputs, reduced to a few tensors to compare.
std::vector<torch::Tensor> layer_outputs(int64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t B = 2, T = 70, H = 4, Dh = 16, D = H * Dh;
  const auto x = torch::randn({B, T, D}, gen);
  const auto w = torch::randn({3 * D, D}, gen) / 8;
  const auto bias = torch::randn({3 * D}, gen);
  const auto norm_w = torch::rand({D}, gen) + 0.5;
  std::vector<torch::Tensor> out;
  const auto h = kernels::rms_norm(x, norm_w, 1e-6);
  const auto qkv = kernels::linear(h, w, bias);  // (B, T, 3D)
  const auto q = qkv.narrow(2, 0, D).view({B, T, H, Dh}).transpose(1, 2);
  const auto k = qkv.narrow(2, D, D).view({B, T, H, Dh}).transpose(1, 2);
  const auto v = qkv.narrow(2, 2 * D, D).view({B, T, H, Dh}).transpose(1, 2);
  out.push_back(kernels::attention(q, k, v, {}, 0.25, true, 0));
  out.push_back(kernels::swiglu(qkv.narrow(2, 0, D), qkv.narrow(2, D, D)));
  out.push_back(kernels::matmul(h.reshape({B * T, D}), w.t().contiguous()));
  auto y = kernels::gemv(w, bias, h[0][0].contiguous());
  out.push_back(y.defined() ? y : torch::mv(w, h[0][0]) + bias);
  return out;
}

TEST(Threads, ConcurrentKernelsEqualOneCaller) {
  std::vector<torch::Tensor> reference;
  on_threads(1, [&](int) { reference = layer_outputs(7); });
  std::vector<std::vector<torch::Tensor>> got(4);
  on_threads(4, [&](int i) {
    for (int rep = 0; rep < 3; ++rep) got[i] = layer_outputs(7);
  });
  for (const auto& outputs : got) {
    ASSERT_EQ(outputs.size(), reference.size());
    for (size_t j = 0; j < outputs.size(); ++j)
      EXPECT_TRUE(torch::equal(outputs[j], reference[j])) << "output " << j;
  }
}

// Training from several threads: each thread's backward through the split GEMM gives the
// single-caller gradients.
TEST(Threads, ConcurrentBackwardEqualsOneCaller) {
  const auto grads = [] {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    auto x = torch::randn({40, 48}, gen).requires_grad_(true);
    auto w = torch::randn({96, 48}, gen).requires_grad_(true);
    kernels::linear(x, w, {}).square().sum().backward();
    return std::vector<torch::Tensor>{x.grad(), w.grad()};
  };
  std::vector<torch::Tensor> reference;
  on_threads(1, [&](int) { reference = grads(); });
  std::vector<std::vector<torch::Tensor>> got(4);
  on_threads(4, [&](int i) { got[i] = grads(); });
  for (const auto& g : got) {
    EXPECT_TRUE(torch::equal(g[0], reference[0]));
    EXPECT_TRUE(torch::equal(g[1], reference[1]));
  }
}

}  // namespace
}  // namespace reft
