// The fused CPU kernels against the composite libtorch formulas they replace: values and
// gradients (their backwards are hand-written), on contiguous and strided inputs.

#include "models/kernels.h"

#include <torch/torch.h>

#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "reft/runtime.h"
#include "torch_test_util.h"

namespace reft {
namespace {

using test::tensors_close;

// Returns (output, gradients of Σ w∘output with respect to `inputs`).
template <class F>
std::pair<torch::Tensor, std::vector<torch::Tensor>> run(F f, std::vector<torch::Tensor> inputs,
                                                         const torch::Tensor& w) {
  for (auto& x : inputs) x = x.detach().clone().requires_grad_(true);
  auto y = f(inputs);
  (y * w).sum().backward();
  std::vector<torch::Tensor> grads;
  for (auto& x : inputs) grads.push_back(x.grad().clone());
  return {y.detach(), grads};
}

TEST(Kernels, SplitTheirWorkAcrossThreads) {
  // Built without -fopenmp, at::parallel_for compiles to a serial loop and every kernel runs on
  // one thread (results unchanged, prefill and training far slower).
  EXPECT_TRUE(kernels::built_with_openmp());
}

TEST(Kernels, RmsNormMatchesTheFormula) {
  torch::manual_seed(0);
  auto x = torch::randn({3, 5, 48}), weight = torch::randn({48});
  auto w = torch::randn({3, 5, 48});
  auto fused = run([&](auto& in) { return kernels::rms_norm(in[0], weight, 1e-5); }, {x}, w);
  auto plain =
      run([&](auto& in) { return in[0] * (in[0].square().mean(-1, true) + 1e-5).rsqrt() * weight; },
          {x}, w);
  EXPECT_TRUE(tensors_close("rms_norm", fused.first, plain.first, 1e-5, 1e-5));
  EXPECT_TRUE(tensors_close("d rms_norm", fused.second[0], plain.second[0], 1e-5, 1e-4));
}

TEST(Kernels, LinearMatchesAtLinearForFewAndManyRows) {
  torch::manual_seed(5);
  // Small products run on one BLAS thread, larger ones on all; odd shapes included.
  for (int64_t rows : {1, 2, 3, 4, 5, 9})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{7, 5}, {37, 70}, {64, 768}, {1030, 33}}) {
      auto x = torch::randn({rows, k}), weight = torch::randn({n, k}), bias = torch::randn({n});
      auto w = torch::randn({rows, n});
      const std::string what = "linear " + std::to_string(rows) + "x" + std::to_string(k) + " · " +
                               std::to_string(n) + "x" + std::to_string(k);
      auto fused =
          run([&](auto& in) { return kernels::linear(in[0], in[1], bias); }, {x, weight}, w);
      auto plain = run([&](auto& in) { return at::linear(in[0], in[1], bias); }, {x, weight}, w);
      EXPECT_TRUE(tensors_close(what, fused.first, plain.first, 1e-4, 1e-5));
      EXPECT_TRUE(tensors_close("dx " + what, fused.second[0], plain.second[0], 1e-4, 1e-5));
      EXPECT_TRUE(tensors_close("dw " + what, fused.second[1], plain.second[1], 1e-4, 1e-5));
    }
  // Large products split their output columns across threads (an odd count: uneven blocks).
  {
    torch::NoGradGuard no_grad;
    auto x = torch::randn({2, 260, 256}), weight = torch::randn({301, 256});
    EXPECT_TRUE(tensors_close("linear, column blocks", kernels::linear(x, weight, {}),
                              at::linear(x, weight), 1e-4, 1e-5));
  }
  // A batch of one row in (B, T, D) form.
  auto x = torch::randn({1, 1, 96}), weight = torch::randn({50, 96});
  EXPECT_TRUE(tensors_close("linear (1, 1, D)", kernels::linear(x, weight, {}),
                            at::linear(x, weight), 1e-4, 1e-5));
}

// Without autograd, 2 … 32 rows take the unpacked small-M kernel (a batch's decode step): every
// tile shape and tail of rows, columns and the reduction dimension, with and without a bias.
TEST(Kernels, SmallBatchLinearMatchesAtLinear) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  for (int64_t rows : {2, 3, 4, 5, 7, 16, 17, 32})
    for (int64_t k : {1, 15, 16, 33, 200})
      for (int64_t n : {1, 3, 4, 6, 70, 600}) {
        const auto x = torch::randn({rows, k});
        const auto weight = torch::randn({n, k});
        const auto bias = torch::randn({n});
        const std::string what = "small-M linear " + std::to_string(rows) + "x" +
                                 std::to_string(k) + " · " + std::to_string(n);
        EXPECT_TRUE(tensors_close(what, kernels::linear(x, weight, bias),
                                  at::linear(x, weight, bias), 1e-4, 1e-5));
        EXPECT_TRUE(tensors_close(what + " (no bias, 3-d)",
                                  kernels::linear(x.view({1, rows, k}), weight, {}),
                                  at::linear(x.view({1, rows, k}), weight), 1e-4, 1e-5));
      }
}

TEST(Kernels, GemvMatchesMvOnOneAndSeveralThreads) {
  torch::manual_seed(6);
  torch::NoGradGuard no_grad;
  const int threads = at::get_num_threads();
  // Odd lengths exercise the 64-, 16- and 1-wide tails; 1030 × 770 is large enough to be split.
  for (int n : {1, threads, 3})
    for (auto [out, in] :
         {std::pair<int64_t, int64_t>{7, 5}, {37, 70}, {64, 768}, {1030, 770}, {513, 2048}}) {
      at::set_num_threads(n);
      auto weight = torch::randn({out, in}), bias = torch::randn({out}), x = torch::randn({in});
      const std::string what =
          std::to_string(out) + "x" + std::to_string(in) + " on " + std::to_string(n) + " threads";
      EXPECT_TRUE(tensors_close("gemv " + what, kernels::gemv(weight, {}, x), at::mv(weight, x),
                                1e-4, 1e-5));
      EXPECT_TRUE(tensors_close("gemv + bias " + what, kernels::gemv(weight, bias, x),
                                at::addmv(bias, weight, x), 1e-4, 1e-5));
      // A strided x (a column of a matrix) is accepted.
      auto column = torch::randn({in, 3}).select(1, 1);
      EXPECT_TRUE(tensors_close("gemv strided x " + what, kernels::gemv(weight, {}, column),
                                at::mv(weight, column), 1e-4, 1e-5));
    }
  at::set_num_threads(threads);
  // Not for this kernel: other dtypes, non-contiguous weights, wrong lengths.
  EXPECT_FALSE(
      kernels::gemv(torch::randn({4, 8}, torch::kFloat64), {}, torch::randn({8}, torch::kFloat64))
          .defined());
  EXPECT_FALSE(kernels::gemv(torch::randn({8, 4}).t(), {}, torch::randn({8})).defined());
  EXPECT_FALSE(kernels::gemv(torch::randn({4, 8}), {}, torch::randn({7})).defined());
}

TEST(Kernels, GemvLeavesGradientsToAutograd) {
  auto weight = torch::randn({4, 8}).requires_grad_(true);
  EXPECT_FALSE(kernels::gemv(weight, {}, torch::randn({8})).defined());
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(kernels::gemv(weight, {}, torch::randn({8})).defined());
}

// At least two intra-op threads for one test (a test binary starts with libtorch's default).
struct TwoThreads {
  int before = at::get_num_threads();
  TwoThreads() { at::set_num_threads(std::max(2, before)); }
  ~TwoThreads() { at::set_num_threads(before); }
};

TEST(Kernels, GemvInAForkedChild) {
  // The child of a fork has none of the parent's pool threads (libtorch sets it to one thread);
  // its products must still finish, with the same result.
  TwoThreads two;
  torch::manual_seed(8);
  torch::NoGradGuard no_grad;
  auto weight = torch::randn({1024, 512}), x = torch::randn({512});
  const auto expected = kernels::gemv(weight, {}, x);  // the parent's pool now exists
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    alarm(20);  // a hang ends the child with SIGALRM
    // libgomp's pool does not survive fork(): a child computes on one thread.
    at::set_num_threads(1);
    const bool same = torch::equal(kernels::gemv(weight, {}, x), expected);
    _exit(same ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

TEST(Kernels, GemvFromConcurrentCallers) {
  // Several threads of a program compute at once (each its own OpenMP team); every result stays
  // exact and no call changes another's settings.
  TwoThreads two;
  torch::manual_seed(7);
  torch::NoGradGuard no_grad;
  auto weight = torch::randn({1024, 512}), x = torch::randn({512});
  const auto expected = kernels::gemv(weight, {}, x);
  std::vector<std::thread> callers;
  std::atomic<int> mismatches{0};
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      torch::NoGradGuard inner;
      for (int i = 0; i < 200; ++i)
        if (!torch::equal(kernels::gemv(weight, {}, x), expected)) ++mismatches;
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Runtime, ResolvesOneOptimizedBlasRunningNoThreadsOfItsOwn) {
  const auto& info = runtime();
  EXPECT_GE(info.threads, 1);
  EXPECT_FALSE(info.blas.empty());
  // CI installs libopenblas0-pthread (scripts/setup.sh): the reference BLAS would be ~30× slower.
  EXPECT_TRUE(info.blas_optimized) << "BLAS in use: " << info.blas;
  // OpenBLAS's own pool would spin beside libtorch's: the runtime sets it to one thread, once.
  if (auto get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")))
    EXPECT_EQ(get(), 1);
}

TEST(Kernels, LinearBackwardSplitsLikeTheForward) {
  // Products large enough to be split into column blocks (M·N·K ≥ 32 Mi), forward and backward,
  // with W requiring a gradient too, against at::linear on the same inputs.
  TwoThreads two;
  torch::manual_seed(11);
  auto x = torch::randn({2, 150, 512}), weight = torch::randn({389, 512}) * 0.05;
  auto w = torch::randn({2, 150, 389});
  auto fused = run([&](auto& in) { return kernels::linear(in[0], in[1], {}); }, {x, weight}, w);
  auto plain = run([&](auto& in) { return at::linear(in[0], in[1]); }, {x, weight}, w);
  EXPECT_TRUE(tensors_close("linear split", fused.first, plain.first, 1e-4, 1e-5));
  EXPECT_TRUE(tensors_close("dx split", fused.second[0], plain.second[0], 1e-4, 1e-5));
  EXPECT_TRUE(tensors_close("dw split", fused.second[1], plain.second[1], 1e-3, 1e-5));
}

TEST(Kernels, MatmulOfPlainAndTransposedOperands) {
  TwoThreads two;
  torch::manual_seed(12);
  torch::NoGradGuard no_grad;
  auto a = torch::randn({300, 400}), b = torch::randn({400, 350});
  EXPECT_TRUE(tensors_close("a b", kernels::matmul(a, b), at::mm(a, b), 1e-4, 1e-5));
  auto at_ = a.t().contiguous().t(), bt = b.t().contiguous().t();  // transposed views
  EXPECT_TRUE(tensors_close("aᵀ bᵀ views", kernels::matmul(at_, bt), at::mm(a, b), 1e-4, 1e-5));
  EXPECT_TRUE(tensors_close("small", kernels::matmul(a.narrow(0, 0, 3), b.narrow(1, 0, 5)),
                            at::mm(a.narrow(0, 0, 3), b.narrow(1, 0, 5)), 1e-4, 1e-5));
}

TEST(Kernels, RotaryMatchesRotateHalf) {
  torch::manual_seed(1);
  // x as a strided slice of a fused projection: (B, T, H, Dh) inside (B, T, 3·H·Dh).
  auto fused_proj = torch::randn({2, 7, 3 * 4 * 16});
  auto x = fused_proj.narrow(-1, 64, 64).view({2, 7, 4, 16});
  auto cos = torch::randn({2, 7, 1, 16}), sin = torch::randn({2, 7, 1, 16});
  auto w = torch::randn({2, 7, 4, 16});
  auto fused = run(
      [&](auto& in) {
        return kernels::rotary(in[0].narrow(-1, 64, 64).view({2, 7, 4, 16}), cos, sin);
      },
      {fused_proj}, w);
  auto plain = run(
      [&](auto& in) {
        auto xs = in[0].narrow(-1, 64, 64).view({2, 7, 4, 16});
        auto rotated = torch::cat({-xs.narrow(-1, 8, 8), xs.narrow(-1, 0, 8)}, -1);
        return xs * cos + rotated * sin;
      },
      {fused_proj}, w);
  EXPECT_TRUE(tensors_close("rotary", fused.first, plain.first, 1e-6));
  EXPECT_TRUE(tensors_close("d rotary", fused.second[0], plain.second[0], 1e-6));
}

TEST(Kernels, SwigluMatchesSiluTimesUp) {
  torch::manual_seed(2);
  auto gu = torch::randn({3, 4, 2 * 40}) * 3;
  auto w = torch::randn({3, 4, 40});
  auto split = [](const torch::Tensor& t) { return t.split_with_sizes({40, 40}, -1); };
  auto fused = run(
      [&](auto& in) {
        auto p = split(in[0]);
        return kernels::swiglu(p[0], p[1]);
      },
      {gu}, w);
  auto plain = run(
      [&](auto& in) {
        auto p = split(in[0]);
        return torch::silu(p[0]) * p[1];
      },
      {gu}, w);
  EXPECT_TRUE(tensors_close("swiglu", fused.first, plain.first, 1e-6, 1e-6));
  EXPECT_TRUE(tensors_close("d swiglu", fused.second[0], plain.second[0], 1e-5, 1e-5));
}

// Reference attention: explicit scores, finite masking (uniform rows when nothing is visible).
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const torch::Tensor& key_mask,
                                  double scale, int64_t window) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dh = q.size(3), Hkv = k.size(1),
                S = k.size(2);
  auto kk = k.repeat_interleave(H / Hkv, 1), vv = v.repeat_interleave(H / Hkv, 1);
  auto scores = torch::matmul(q, kk.transpose(-1, -2)) * scale;  // (B, H, T, S)
  auto pos = torch::arange(S - T, S).view({T, 1}), key = torch::arange(S).view({1, S});
  auto allowed = key.le(pos);
  if (window > 0) allowed = allowed.logical_and(key.gt(pos - window));
  auto ok = allowed.view({1, 1, T, S}).logical_and(key_mask.to(torch::kBool).view({B, 1, 1, S}));
  scores = scores.masked_fill(ok.logical_not(), std::numeric_limits<float>::lowest());
  return torch::matmul(scores.softmax(-1), vv).transpose(1, 2).reshape({B, T, H * Dh});
}

TEST(Kernels, AttentionForwardAndBackwardWithPaddingGqaAndWindow) {
  torch::manual_seed(3);
  const int64_t B = 2, H = 4, Hkv = 2, T = 5, past = 3, S = past + T, Dh = 8;
  // Views like the model's: q/k/v slices of fused projections, permuted to heads-first.
  auto qkv = torch::randn({B, T, (H + 2 * Hkv) * Dh});
  auto k_cache = torch::randn({B, Hkv, S, Dh});
  auto mask = torch::ones({B, S}, torch::kInt64);
  mask[1].narrow(0, 0, 4).fill_(0);  // row 1 is left-padded: its first query sees nothing
  auto w = torch::randn({B, T, H * Dh});
  for (int64_t window : {0, 3}) {
    const auto f = [&](bool fused) {
      return run(
          [&](auto& in) {
            auto q = in[0].narrow(-1, 0, H * Dh).view({B, T, H, Dh}).permute({0, 2, 1, 3});
            auto k = in[1];
            auto v = in[0].narrow(-1, H * Dh, Hkv * Dh).view({B, T, Hkv, Dh}).permute({0, 2, 1, 3});
            auto vfull = torch::cat({in[1].narrow(2, 0, past), v}, 2);  // cached values + new ones
            return fused ? kernels::attention(q, k, vfull, mask, 0.3, true, window)
                         : reference_attention(q, k, vfull, mask, 0.3, window);
          },
          {qkv, k_cache}, w);
    };
    auto a = f(true), b = f(false);
    // Rows with no visible key are uniform in both; compare everything.
    EXPECT_TRUE(tensors_close("attention w" + std::to_string(window), a.first, b.first, 1e-5));
    EXPECT_TRUE(
        tensors_close("d qkv w" + std::to_string(window), a.second[0], b.second[0], 1e-5, 1e-4));
    EXPECT_TRUE(
        tensors_close("d k w" + std::to_string(window), a.second[1], b.second[1], 1e-5, 1e-4));
  }
}

TEST(Kernels, CausalAttentionInQueryBlocksMatchesReference) {
  // T ≥ 64 queries run in blocks of 32 rows whose products skip the keys the causal mask hides
  // entirely; values and gradients must equal the full products', with a past, padding and GQA.
  TwoThreads two;
  torch::manual_seed(13);
  for (int64_t past : {0, 5}) {
    const int64_t B = 2, H = 4, Hkv = 2, T = 70, S = past + T, Dh = 16;
    auto q = torch::randn({B, H, T, Dh}), k = torch::randn({B, Hkv, S, Dh}),
         v = torch::randn({B, Hkv, S, Dh});
    auto mask = torch::ones({B, S}, torch::kInt64);
    mask[1].narrow(0, 0, 9).fill_(0);
    auto w = torch::randn({B, T, H * Dh});
    const std::string what = "block attention, past " + std::to_string(past);
    auto a =
        run([&](auto& in) { return kernels::attention(in[0], in[1], in[2], mask, 0.25, true, 0); },
            {q, k, v}, w);
    auto b = run([&](auto& in) { return reference_attention(in[0], in[1], in[2], mask, 0.25, 0); },
                 {q, k, v}, w);
    EXPECT_TRUE(tensors_close(what, a.first, b.first, 1e-5, 1e-5));
    for (int i = 0; i < 3; ++i)
      EXPECT_TRUE(tensors_close("d" + std::string(1, "qkv"[i]) + " " + what, a.second[i],
                                b.second[i], 1e-5, 1e-4));
  }
}

TEST(Kernels, DecodeAttentionMatchesReference) {
  torch::manual_seed(4);
  torch::NoGradGuard g;
  // Head sizes below, at and above the 16- and 64-wide vector steps; one or two new queries;
  // keys in a larger cache buffer (strided views); a left-padded row; a sliding window.
  for (int64_t Dh : {8, 16, 64, 72})
    for (int64_t T : {1, 2})
      for (int64_t window : {0, 4}) {
        const int64_t S = 11;
        auto q = torch::randn({2, 6, T, Dh});
        auto k = torch::randn({2, 3, S + 5, Dh}).narrow(2, 0, S);
        auto v = torch::randn({2, 3, S + 5, Dh}).narrow(2, 0, S);
        auto mask = torch::ones({2, S}, torch::kInt64);
        mask[0].narrow(0, 0, 2).fill_(0);
        const std::string what = "decode Dh " + std::to_string(Dh) + " T " + std::to_string(T) +
                                 " window " + std::to_string(window);
        auto a = kernels::decode_attention(q, k, v, mask, 0.25, window);
        ASSERT_TRUE(a.defined()) << what;
        EXPECT_TRUE(
            tensors_close(what, a, reference_attention(q, k, v, mask, 0.25, window), 1e-5, 1e-5));
      }
  // A query that sees no key (its row is all padding) attends uniformly over every key, as HF's
  // finite masking does.
  auto q = torch::randn({1, 2, 1, 16}), k = torch::randn({1, 2, 5, 16}),
       v = torch::randn({1, 2, 5, 16});
  auto none = torch::zeros({1, 5}, torch::kInt64);
  EXPECT_TRUE(tensors_close("decode, no visible key",
                            kernels::decode_attention(q, k, v, none, 0.25, 0),
                            v.mean(2).reshape({1, 1, 32}), 1e-5, 1e-5));
}

}  // namespace
}  // namespace reft
