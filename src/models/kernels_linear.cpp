// Matrix products of frozen weights: x Wᵀ (+ b) and its backward as GEMMs split into column
// blocks on libtorch's pool (one single-threaded BLAS call per thread), and the decode step's
// matrix–vector product streaming each thread's own rows of W.

#include "models/kernels.h"
#include "models/kernels_common.h"
#include "util/blas.h"

namespace reft::kernels {

namespace detail {

// One output per row: a dot product of the row with x over four independent 16-lane partial sums,
// so the loads of a row stream at the memory's pace rather than at one add's latency.
using f32x16 = float __attribute__((vector_size(64)));

__attribute__((always_inline)) inline f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

REFT_MULTIVERSION void gemv_rows(const float* w, int64_t ldw, const float* x, const float* bias,
                                 float* y, int64_t begin, int64_t end, int64_t in) {
  for (int64_t o = begin; o < end; ++o) {
    const float* r = w + o * ldw;
    f32x16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    int64_t i = 0;
    for (; i + 64 <= in; i += 64) {
      a0 += load16(r + i) * load16(x + i);
      a1 += load16(r + i + 16) * load16(x + i + 16);
      a2 += load16(r + i + 32) * load16(x + i + 32);
      a3 += load16(r + i + 48) * load16(x + i + 48);
    }
    for (; i + 16 <= in; i += 16) a0 += load16(r + i) * load16(x + i);
    // Tree-sum the lanes (a chain of 16 scalar adds would cost as much as streaming the row).
    using i32x16 = int32_t __attribute__((vector_size(64)));
    f32x16 a = (a0 + a1) + (a2 + a3);
    a += __builtin_shuffle(a, i32x16{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
    a += __builtin_shuffle(a, i32x16{4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3});
    a += __builtin_shuffle(a, i32x16{2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1});
    float sum = a[0] + a[1];
    for (; i < in; ++i) sum += r[i] * x[i];
    y[o] = bias ? sum + bias[o] : sum;
  }
}

// x Wᵀ for a few rows of x (a decode step of a batch) without packing W: BLAS copies all of W into
// its panel layout on every call, as costly as the product itself when x has 16 rows. Here a tile
// of TO rows of W and TM rows of x is multiplied in registers (TO·TM accumulators of 16 lanes), so
// each loaded piece of W serves TM rows of x and each piece of x TO rows of W.
template <int TO, int TM>
__attribute__((always_inline)) inline void small_m_tile(const float* w, const float* x, int64_t K,
                                                        const float* bias, float* y, int64_t N,
                                                        int64_t o0, int64_t m0,
                                                        const float* prefetch) {
  f32x16 acc[TM][TO] = {};
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    if (prefetch)  // one cache line of each of the next tile's rows per step
      for (int o = 0; o < 4; ++o) __builtin_prefetch(prefetch + o * K + k, 0, 3);
    f32x16 wv[TO], xv[TM];
    for (int o = 0; o < TO; ++o) wv[o] = load16(w + (o0 + o) * K + k);
    for (int m = 0; m < TM; ++m) xv[m] = load16(x + (m0 + m) * K + k);
    for (int m = 0; m < TM; ++m)
      for (int o = 0; o < TO; ++o) acc[m][o] += xv[m] * wv[o];
  }
  using i32x16 = int32_t __attribute__((vector_size(64)));
  for (int m = 0; m < TM; ++m)
    for (int o = 0; o < TO; ++o) {
      f32x16 a = acc[m][o];
      a += __builtin_shuffle(a, i32x16{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
      a += __builtin_shuffle(a, i32x16{4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3});
      a += __builtin_shuffle(a, i32x16{2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1});
      float sum = a[0] + a[1];
      const float* wr = w + (o0 + o) * K;
      const float* xr = x + (m0 + m) * K;
      for (int64_t j = k; j < K; ++j) sum += wr[j] * xr[j];
      y[(m0 + m) * N + o0 + o] = bias ? sum + bias[o0 + o] : sum;
    }
}

template <int TO>
__attribute__((always_inline)) inline void small_m_rows(const float* w, const float* x, int64_t K,
                                                        int64_t M, const float* bias, float* y,
                                                        int64_t N, int64_t o0, const float* next) {
  // The next tile of W is fetched during a pass that reads this one from cache (the second group
  // of rows of x when there is one), so memory streams while the products run.
  const int64_t prefetch_at = M > 4 ? 4 : 0;
  int64_t m = 0;
  for (; m + 4 <= M; m += 4)
    small_m_tile<TO, 4>(w, x, K, bias, y, N, o0, m, m == prefetch_at ? next : nullptr);
  const float* pf = m == prefetch_at ? next : nullptr;
  switch (M - m) {
    case 3:
      small_m_tile<TO, 3>(w, x, K, bias, y, N, o0, m, pf);
      break;
    case 2:
      small_m_tile<TO, 2>(w, x, K, bias, y, N, o0, m, pf);
      break;
    case 1:
      small_m_tile<TO, 1>(w, x, K, bias, y, N, o0, m, pf);
      break;
    default:
      break;
  }
}

REFT_MULTIVERSION void gemm_small_m(const float* w, const float* x, int64_t K, int64_t M,
                                    const float* bias, float* y, int64_t N, int64_t begin,
                                    int64_t end) {
  int64_t o = begin;
  for (; o + 4 <= end; o += 4)
    small_m_rows<4>(w, x, K, M, bias, y, N, o, o + 8 <= end ? w + (o + 4) * K : nullptr);
  for (; o < end; ++o) small_m_rows<1>(w, x, K, M, bias, y, N, o, nullptr);
}

}  // namespace detail

namespace {

using namespace detail;

// Products below this many multiply-adds run on the calling thread: splitting a 400×64×344
// product over two threads made it ~10× slower here (the wake-up and the halved blocks cost more
// than the second core gives).
constexpr int64_t kSmallGemm = 32ll << 20;
constexpr int64_t kWideColumns = 256;          // columns per thread that make a product "wide"
constexpr int64_t kSmallWideGemm = 2ll << 20;  // multiply-adds below which even those stay serial

// Row-major C = op(A)·op(B) + β·C (A M×K, B K×N after op): large products are split into blocks
// of output columns, one per thread of the pool, each a single-threaded BLAS call; blocks are
// multiples of 16 columns so no two threads write the same cache line of C.
void parallel_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t threads = at::get_num_threads();
  // Wide products split even when small: a decode step of a batch (M of a few rows, N of hundreds
  // of weight rows) still gives each thread a long run of columns, where the products above
  // (N of 64) gave it too little.
  const bool wide = N >= kWideColumns * threads && M * N * K >= kSmallWideGemm;
  if ((M * N * K < kSmallGemm && !wide) || threads < 2 || at::in_parallel_region() || N < 32) {
    blas::gemm(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int64_t block = ((N + threads - 1) / threads + 15) / 16 * 16;
  const int64_t parts = (N + block - 1) / block;
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t n0 = p * block, n = std::min(N, n0 + block) - n0;
      // Columns n0 … n0 + n − 1 of op(B): rows of B when it is transposed.
      const float* Bp = trans_b ? B + n0 * ldb : B + n0;
      blas::gemm(trans_a, trans_b, M, n, K, 1.0f, A, lda, Bp, ldb, beta, C + n0, ldc);
    }
  });
}

// a (M, K) · b (K, N) for contiguous float32 CPU tensors, or either transposed (a view).
torch::Tensor matmul2d(const torch::Tensor& a, const torch::Tensor& b) {
  const bool ta = !a.is_contiguous(), tb = !b.is_contiguous();
  // A transposed view of a contiguous (K, M) matrix has strides (1, M).
  const torch::Tensor as = ta ? a.t() : a, bs = tb ? b.t() : b;
  if (!as.is_contiguous() || !bs.is_contiguous()) return at::mm(a, b);
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  auto c = torch::empty({M, N}, a.options());
  parallel_gemm(ta, tb, M, N, K, as.data_ptr<float>(), as.size(1), bs.data_ptr<float>(), bs.size(1),
                0.0f, c.data_ptr<float>(), N);
  return c;
}

class LinearFn : public torch::autograd::Function<LinearFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w) {
    auto x2 = x.reshape({-1, x.size(-1)});
    auto y = matmul2d(x2, w.t());  // (N…, out)
    if (ctx) {
      ctx->save_for_backward({x2, w});
      ctx->saved_data["shape"] = x.sizes().vec();
    }
    auto shape = x.sizes().vec();
    shape.back() = w.size(0);
    return y.view(shape);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x2 = saved[0], w = saved[1];
    auto dy = grads[0].reshape({-1, w.size(0)}).contiguous();
    torch::Tensor dx, dw;
    if (ctx->needs_input_grad(0))
      dx = matmul2d(dy, w).view(ctx->saved_data["shape"].toIntVector());  // dY W
    if (ctx->needs_input_grad(1)) dw = matmul2d(dy.t(), x2);              // dYᵀ X
    return {dx, dw};
  }
};

}  // namespace

bool built_with_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// x Wᵀ + b for 2 … kSmallM rows of x without autograd (a batch's decode step): gemm_small_m on
// equal ranges of W's rows per thread. Undefined when it does not apply.
constexpr int64_t kSmallM = 32;

torch::Tensor small_m_linear(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& bias) {
  const int64_t K = weight.size(1), N = weight.size(0);
  const int64_t M = K > 0 ? x.numel() / K : 0;
  if (M < 2 || M > kSmallM || (bias.defined() && !bias.is_contiguous()) ||
      (torch::GradMode::is_enabled() && (wants_grad(x) || wants_grad(weight) || wants_grad(bias))))
    return {};
  const auto x2 = x.reshape({M, K}).contiguous();
  auto y = torch::empty({M, N}, weight.options());
  const float* w = weight.data_ptr<float>();
  const float* xp = x2.data_ptr<float>();
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const int64_t parts = weight.numel() >= (1 << 18) && !at::in_parallel_region()
                            ? std::max(1, at::get_num_threads())
                            : 1;
  const int64_t chunk = ((N + parts - 1) / parts + 15) / 16 * 16;
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t part = begin; part < end; ++part) {
      const int64_t lo = std::min(N, part * chunk), hi = std::min(N, lo + chunk);
      gemm_small_m(w, xp, K, M, b, yp, N, lo, hi);
    }
  });
  auto shape = x.sizes().vec();
  shape.back() = N;
  return y.view(shape);
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  if (!fast_path(x) || !fast_path(weight) || (bias.defined() && !fast_path(bias)) ||
      !weight.is_contiguous() || x.size(-1) != weight.size(1))
    return at::linear(x, weight,
                      bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt);
  if (auto y = small_m_linear(x, weight, bias); y.defined()) return y;
  auto y = run<LinearFn>(x.is_contiguous() ? x : x.contiguous(), weight);
  return bias.defined() ? y + bias : y;
}

torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b) {
  if (!fast_path(a) || !fast_path(b) || a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(0) ||
      (torch::GradMode::is_enabled() && (wants_grad(a) || wants_grad(b))))
    return at::mm(a, b);
  return matmul2d(a, b);
}

torch::Tensor gemv(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x) {
  if (!fast_path(weight) || !fast_path(x) || (bias.defined() && !fast_path(bias)) ||
      !weight.is_contiguous() || (bias.defined() && !bias.is_contiguous()) || x.dim() != 1 ||
      x.size(0) != weight.size(1) ||
      (torch::GradMode::is_enabled() && (wants_grad(x) || wants_grad(weight) || wants_grad(bias))))
    return {};
  const auto xc = x.contiguous();
  auto y = torch::empty({weight.size(0)}, weight.options());
  const float* w = weight.data_ptr<float>();
  const float* xp = xc.data_ptr<float>();
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const int64_t out = weight.size(0), in = weight.size(1);
  // Split only products worth a thread's wake-up (≥ 1 MiB of weights; a stories260K layer is
  // less): equal row ranges, rounded to whole cache lines of y.
  const int64_t parts = weight.numel() >= (1 << 18) && !at::in_parallel_region()
                            ? std::max(1, at::get_num_threads())
                            : 1;
  const int64_t chunk = ((out + parts - 1) / parts + 15) / 16 * 16;
  if (parts == 1) {
    gemv_rows(w, in, xp, b, yp, 0, out, in);
    return y;
  }
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t part = begin; part < end; ++part) {
      const int64_t lo = std::min(out, part * chunk), hi = std::min(out, lo + chunk);
      gemv_rows(w, in, xp, b, yp, lo, hi, in);
    }
  });
  return y;
}

}  // namespace reft::kernels
