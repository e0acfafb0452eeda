#include "models/kernels.h"

#include "reft/runtime.h"
#include "util/spin_team.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <strings.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace reft::kernels {
namespace {

// The inner loops are compiled for AVX-512, AVX2 and the baseline, picked at load time by CPU
// features (GCC's "arch=" clones would test the CPU model, which misses AMD processors).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define REFT_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define REFT_MULTIVERSION
#endif

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

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

bool fast_path(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32;
}

// Parallel chunks get at least ~100 µs of work (256K elements, or ~16 MFLOP of attention): waking
// a sleeping (passive) libgomp thread costs tens of microseconds, more than a small chunk saves.
int64_t rows_grain(int64_t elements_per_row) {
  return std::max<int64_t>(
      16, ((1 << 18) + elements_per_row - 1) / std::max<int64_t>(1, elements_per_row));
}
int64_t tasks_grain(double flops_per_task) {
  return std::max<int64_t>(1, static_cast<int64_t>(1.6e7 / std::max(1.0, flops_per_task)));
}

// ---- RMSNorm ----

REFT_MULTIVERSION float rms_row(const float* xr, const float* w, float* yr, int64_t d, float eps) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < d; ++i) sum += xr[i] * xr[i];
  const float s = 1.0f / std::sqrt(sum / static_cast<float>(d) + eps);
  for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * s * w[i];
  return s;
}

void rms_forward(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t d,
                 double eps) {
  at::parallel_for(0, rows, rows_grain(d), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      rstd[r] = rms_row(x + r * d, w, y + r * d, d, static_cast<float>(eps));
  });
}

class RmsNormFn : public torch::autograd::Function<RmsNormFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               double eps) {
    auto xc = x.contiguous();
    const int64_t d = xc.size(-1), rows = xc.numel() / std::max<int64_t>(d, 1);
    auto y = torch::empty_like(xc);
    auto rstd = torch::empty({rows}, xc.options());
    rms_forward(xc.data_ptr<float>(), w.contiguous().data_ptr<float>(), y.data_ptr<float>(),
                rstd.data_ptr<float>(), rows, d, eps);
    if (ctx) ctx->save_for_backward({xc, w, rstd});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], w = saved[1].contiguous(), rstd = saved[2];
    auto dy = grads[0].contiguous();
    const int64_t d = x.size(-1), rows = x.numel() / std::max<int64_t>(d, 1);
    auto dx = torch::empty_like(x);
    const float* xp = x.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const float* sp = rstd.data_ptr<float>();
    const float* gp = dy.data_ptr<float>();
    float* op = dx.data_ptr<float>();
    // y = x·s·w with s = (mean(x²) + eps)^−½:  dx = s·(g∘w) − x·s³·mean(x∘g∘w).
    at::parallel_for(0, rows, rows_grain(d), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float* xr = xp + r * d;
        const float* gr = gp + r * d;
        float* o = op + r * d;
        const float s = sp[r];
        float dot = 0;
        for (int64_t i = 0; i < d; ++i) dot += xr[i] * gr[i] * wp[i];
        const float c = s * s * s * dot / static_cast<float>(d);
        for (int64_t i = 0; i < d; ++i) o[i] = s * gr[i] * wp[i] - xr[i] * c;
      }
    });
    torch::Tensor dw;
    if (ctx->needs_input_grad(1)) dw = (dy * x * rstd.unsqueeze(-1)).reshape({-1, d}).sum(0);
    return {dx, dw, torch::Tensor()};
  }
};

// ---- rotary ----

// y1 = x1·c1 − x2·s1, y2 = x2·c2 + x1·s2 over the two halves of Dh (HF's tables repeat per half,
// but nothing here relies on it). sign < 0 applies the transpose (the backward).
// One (b, t) position: every head, with the position's cos/sin.
REFT_MULTIVERSION void rotary_position(const float* x, int64_t head_stride, int64_t H,
                                       const float* c, const float* s, float* y, int64_t half,
                                       bool transpose) {
  for (int64_t h = 0; h < H; ++h) {
    const float* xi = x + h * head_stride;
    float* yo = y + h * 2 * half;
    if (!transpose) {
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = xi[i], x2 = xi[i + half];
        yo[i] = x1 * c[i] - x2 * s[i];
        yo[i + half] = x2 * c[i + half] + x1 * s[i + half];
      }
    } else {  // dx1 = g1·c1 + g2·s2, dx2 = g2·c2 − g1·s1
      for (int64_t i = 0; i < half; ++i) {
        const float g1 = xi[i], g2 = xi[i + half];
        yo[i] = g1 * c[i] + g2 * s[i + half];
        yo[i + half] = g2 * c[i + half] - g1 * s[i];
      }
    }
  }
}

void rotary_apply(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                  torch::Tensor& y, bool transpose) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), Dh = x.size(3), half = Dh / 2;
  const auto xs = x.strides();
  const float* xp = x.data_ptr<float>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, B * T, rows_grain(H * Dh), [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt)  // cos/sin are (B, T, 1, Dh) contiguous
      rotary_position(xp + (bt / T) * xs[0] + (bt % T) * xs[1], xs[2], H, cp + bt * Dh,
                      sp + bt * Dh, yp + bt * H * Dh, half, transpose);
  });
}

class RotaryFn : public torch::autograd::Function<RotaryFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    auto y = torch::empty(x.sizes(), x.options());
    rotary_apply(x, cos, sin, y, /*transpose=*/false);
    if (ctx) ctx->save_for_backward({cos, sin});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto g = grads[0].contiguous();
    auto dx = torch::empty_like(g);
    rotary_apply(g, saved[0], saved[1], dx, /*transpose=*/true);
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

// ---- SwiGLU ----

REFT_MULTIVERSION void swiglu_row(const float* g, const float* u, float* o, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + fast_exp(-g[i])) * u[i];
}

REFT_MULTIVERSION void swiglu_row_backward(const float* g, const float* u, const float* d,
                                           float* dg, float* du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float sig = 1.0f / (1.0f + fast_exp(-g[i]));
    dg[i] = d[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    du[i] = d[i] * g[i] * sig;
  }
}

class SwigluFn : public torch::autograd::Function<SwigluFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate,
                               const torch::Tensor& up) {
    const int64_t I = gate.size(-1), rows = gate.numel() / std::max<int64_t>(I, 1);
    auto shape = gate.sizes().vec();
    auto y = torch::empty(shape, gate.options());
    const float* gp = gate.data_ptr<float>();
    const float* up_ = up.data_ptr<float>();
    const int64_t gs = gate.stride(gate.dim() - 2), us = up.stride(up.dim() - 2);
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, rows, rows_grain(I), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) swiglu_row(gp + r * gs, up_ + r * us, yp + r * I, I);
    });
    if (ctx) ctx->save_for_backward({gate, up});
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto gate = saved[0], up = saved[1];
    auto dy = grads[0].contiguous();
    const int64_t I = gate.size(-1), rows = gate.numel() / std::max<int64_t>(I, 1);
    auto dg = torch::empty(gate.sizes(), gate.options()),
         du = torch::empty(up.sizes(), up.options());
    const float* gp = gate.data_ptr<float>();
    const float* upp = up.data_ptr<float>();
    const int64_t gs = gate.stride(gate.dim() - 2), us = up.stride(up.dim() - 2);
    const float* dp = dy.data_ptr<float>();
    float* dgp = dg.data_ptr<float>();
    float* dup = du.data_ptr<float>();
    at::parallel_for(0, rows, rows_grain(I), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        swiglu_row_backward(gp + r * gs, upp + r * us, dp + r * I, dgp + r * I, dup + r * I, I);
    });
    return {dg, du};
  }
};

// Rows of `t` are at a fixed stride with a contiguous last dim (a slice of a fused projection).
bool rows_with_unit_stride(const torch::Tensor& t) {
  if (t.dim() < 2 || t.stride(-1) != 1) return false;
  // The leading dims must flatten to one row index with a constant stride.
  int64_t expected = t.stride(t.dim() - 2);
  for (int64_t d = t.dim() - 2; d > 0; --d) {
    if (t.stride(d - 1) != t.size(d) * t.stride(d)) return false;
  }
  return expected >= t.size(-1);
}

// ---- attention ----

// OpenBLAS keeps its own thread pool; inside a parallel region each call must run on the calling
// thread, or the two pools fight over the cores.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
    static auto set =
        reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    static auto get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    set_ = set;
    if (set_ && get) {
      previous_ = get();
      set_(1);
    }
  }
  ~SingleThreadedBlas() {
    if (set_ && previous_ > 0) set_(previous_);
  }

 private:
  void (*set_)(int) = nullptr;
  int previous_ = 0;
};

struct MaskSpec {
  const int64_t* key_mask = nullptr;  // (B, S) or null
  int64_t S = 0, T = 0, window = 0;
  bool causal = true;
  bool visible(int64_t b, int64_t t, int64_t s) const {
    const int64_t pos = S - T + t;
    if (causal && s > pos) return false;
    if (window > 0 && s <= pos - window) return false;
    return !key_mask || key_mask[b * S + s];
  }
};

// In place: row-wise softmax of scale·scores over the visible keys; invisible keys get 0. The
// causal limit and the window are ranges; only a padding mask needs a per-key test.
REFT_MULTIVERSION void softmax_range(float* row, int64_t lo, int64_t hi, const int64_t* keep,
                                     float scale) {
  if (!keep) {  // the common case, vectorized
    float peak = -std::numeric_limits<float>::infinity(), total = 0;
#pragma omp simd reduction(max : peak)
    for (int64_t s = lo; s <= hi; ++s) peak = std::max(peak, row[s] * scale);
#pragma omp simd reduction(+ : total)
    for (int64_t s = lo; s <= hi; ++s) {
      row[s] = fast_exp(row[s] * scale - peak);
      total += row[s];
    }
    const float inv = 1.0f / total;
#pragma omp simd
    for (int64_t s = lo; s <= hi; ++s) row[s] *= inv;
    return;
  }
  float peak = -std::numeric_limits<float>::infinity();
  for (int64_t s = lo; s <= hi; ++s)
    if (!keep || keep[s]) peak = std::max(peak, row[s] * scale);
  float total = 0;
  for (int64_t s = lo; s <= hi; ++s) {
    const float e = (!keep || keep[s]) ? fast_exp(row[s] * scale - peak) : 0.0f;
    row[s] = e;
    total += e;
  }
  const float inv = 1.0f / total;
  for (int64_t s = lo; s <= hi; ++s) row[s] *= inv;
}

// One row of S scores in place: softmax of scale·row over the keys lo … hi that `keep` (or null:
// all) marks real, 0 elsewhere. A row with no such key is spread uniformly over all S keys, as
// HF's finite masking does; returns true then (its products need every key).
bool softmax_row(float* row, int64_t lo, int64_t hi, int64_t S, const int64_t* keep, float scale) {
  int64_t kept = hi - lo + 1;
  if (keep)
    for (int64_t s = lo; s <= hi; ++s) kept -= keep[s] ? 0 : 1;
  if (kept <= 0) {
    std::fill(row, row + S, 1.0f / S);
    return true;
  }
  std::fill(row, row + lo, 0.0f);
  std::fill(row + hi + 1, row + S, 0.0f);
  // Rows whose keys are all real take the vectorized path.
  softmax_range(row, lo, hi, kept == hi - lo + 1 ? nullptr : keep, scale);
  return false;
}

// Rows t_begin … t_end − 1 of p (row t at p + t·S). Returns whether some row saw no key.
bool masked_softmax(float* p, int64_t t_begin, int64_t t_end, int64_t T, int64_t S, int64_t b,
                    const MaskSpec& m, float scale) {
  const int64_t* keep = m.key_mask ? m.key_mask + b * S : nullptr;
  bool uniform = false;
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int64_t pos = S - T + t;
    const int64_t hi = m.causal ? std::min(pos, S - 1) : S - 1;
    const int64_t lo = m.window > 0 ? std::max<int64_t>(0, pos - m.window + 1) : 0;
    uniform = softmax_row(p + t * S, lo, hi, S, keep, scale) || uniform;
  }
  return uniform;
}

// Row-major C = α·op(A)·op(B) + β·C through the Fortran BLAS symbol libtorch already links,
// without ATen's per-call dispatch and view creation (hundreds of small per-head products per
// layer). Column-major BLAS sees a row-major matrix as its transpose, hence the swapped operands.
using SgemmFn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                         const float*, const int*, const float*, const int*, const float*, float*,
                         const int*);

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  static const auto sgemm = reinterpret_cast<SgemmFn>(dlsym(RTLD_DEFAULT, "sgemm_"));
  if (sgemm) {
    const int m = static_cast<int>(M), n = static_cast<int>(N), k = static_cast<int>(K);
    const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
    sgemm(trans_b ? "T" : "N", trans_a ? "T" : "N", &n, &m, &k, &alpha, B, &lb, A, &la, &beta, C,
          &lc);
    return;
  }
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0;
      for (int64_t l = 0; l < K; ++l)
        acc += (trans_a ? A[l * lda + i] : A[i * lda + l]) *
               (trans_b ? B[j * ldb + l] : B[l * ldb + j]);
      C[i * ldc + j] = alpha * acc + (beta == 0 ? 0.0f : beta * C[i * ldc + j]);
    }
}

// Strided views of q (B, H, T, Dh), k/v (B, Hkv, S, Dh) as raw pointers.
struct HeadLayout {
  const float* q;
  const float* k;
  const float* v;
  int64_t qs[3], ks[3], vs[3];  // strides of dims 0..2 (dim 3 has stride 1)
  const float* q_head(int64_t b, int64_t h) const { return q + b * qs[0] + h * qs[1]; }
  const float* k_head(int64_t b, int64_t j) const { return k + b * ks[0] + j * ks[1]; }
  const float* v_head(int64_t b, int64_t j) const { return v + b * vs[0] + j * vs[1]; }
};

HeadLayout layout_of(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  HeadLayout l{q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), {}, {}, {}};
  for (int d = 0; d < 3; ++d) {
    l.qs[d] = q.stride(d);
    l.ks[d] = k.stride(d);
    l.vs[d] = v.stride(d);
  }
  return l;
}

// Whether query row t of batch row b sees at least one key.
bool any_visible(const MaskSpec& m, int64_t b, int64_t t) {
  for (int64_t s = 0; s < m.S; ++s)
    if (m.visible(b, t, s)) return true;
  return false;
}

class AttentionFn : public torch::autograd::Function<AttentionFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& key_mask, double scale,
                               bool causal, int64_t window) {
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dh = q.size(3);
    const int64_t Hkv = k.size(1), S = k.size(2), G = H / Hkv;
    auto out = torch::empty({B, T, H, Dh}, q.options());
    auto probs = torch::empty({B, H, T, S}, q.options());
    torch::Tensor mask =
        key_mask.defined() ? key_mask.to(torch::kCPU, torch::kInt64).contiguous() : torch::Tensor();
    const MaskSpec m{mask.defined() ? mask.data_ptr<int64_t>() : nullptr, S, T, window, causal};
    const HeadLayout l = layout_of(q, k, v);
    float* op = out.data_ptr<float>();
    float* pp = probs.data_ptr<float>();
    // Causal prefill runs in blocks of query rows so that the products skip the key blocks the
    // mask hides entirely (37% of the work at T = S = 128). The FLOP counts in bench/ still count
    // every key, as the usual model-FLOP convention does.
    const int64_t block = causal && T >= 64 ? 32 : T;
    {
      SingleThreadedBlas single;
      at::parallel_for(
          0, B * Hkv, tasks_grain(4.0 * G * T * S * Dh), [&](int64_t begin, int64_t end) {
            for (int64_t task = begin; task < end; ++task) {
              const int64_t b = task / Hkv, j = task % Hkv;
              for (int64_t g = 0; g < G; ++g) {
                const int64_t h = j * G + g;
                float* p = pp + (b * H + h) * T * S;
                for (int64_t t0 = 0; t0 < T; t0 += block) {
                  const int64_t rows = std::min(block, T - t0);
                  // A causal block sees keys only up to its last row's position.
                  const int64_t keys = causal ? std::min(S, S - T + t0 + rows) : S;
                  gemm(false, true, rows, keys, Dh, 1.0f, l.q_head(b, h) + t0 * l.qs[2], l.qs[2],
                       l.k_head(b, j), l.ks[2], 0.0f, p + t0 * S, S);
                  const bool uniform =
                      masked_softmax(p, t0, t0 + rows, T, S, b, m, static_cast<float>(scale));
                  gemm(false, false, rows, Dh, uniform ? S : keys, 1.0f, p + t0 * S, S,
                       l.v_head(b, j), l.vs[2], 0.0f, op + ((b * T + t0) * H + h) * Dh, H * Dh);
                }
              }
            }
          });
    }
    if (!ctx) return out.view({B, T, H * Dh});
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["window"] = window;
    ctx->saved_data["mask"] = mask;
    return out.view({B, T, H * Dh});
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto q = saved[0], k = saved[1], v = saved[2], probs = saved[3];
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dh = q.size(3);
    const int64_t Hkv = k.size(1), S = k.size(2), G = H / Hkv;
    const auto mask = ctx->saved_data["mask"].toTensor();
    const MaskSpec m{mask.defined() ? mask.data_ptr<int64_t>() : nullptr, S, T,
                     ctx->saved_data["window"].toInt(), ctx->saved_data["causal"].toBool()};
    auto dout = grads[0].contiguous();  // (B, T, H·Dh)
    auto dq = torch::empty({B, H, T, Dh}, q.options());
    auto dk = torch::zeros({B, Hkv, S, Dh}, q.options());
    auto dv = torch::zeros({B, Hkv, S, Dh}, q.options());
    const HeadLayout l = layout_of(q, k, v);
    const float* dop = dout.data_ptr<float>();
    const float* pp = probs.data_ptr<float>();
    float* dqp = dq.data_ptr<float>();
    float* dkp = dk.data_ptr<float>();
    float* dvp = dv.data_ptr<float>();
    SingleThreadedBlas single;
    at::parallel_for(
        0, B * Hkv, tasks_grain(8.0 * G * T * S * Dh), [&](int64_t begin, int64_t end) {
          std::vector<float> ds(T * S);
          for (int64_t task = begin; task < end; ++task) {
            const int64_t b = task / Hkv, j = task % Hkv;
            float* dkj = dkp + (b * Hkv + j) * S * Dh;
            float* dvj = dvp + (b * Hkv + j) * S * Dh;
            for (int64_t g = 0; g < G; ++g) {
              const int64_t h = j * G + g;
              const float* p = pp + (b * H + h) * T * S;
              const float* dO = dop + (b * T * H + h) * Dh;  // (T, Dh), row stride H·Dh
              gemm(true, false, S, Dh, T, 1.0f, p, S, dO, H * Dh, 1.0f, dvj, Dh);  // dV += Pᵀ dO
              gemm(false, true, T, S, Dh, 1.0f, dO, H * Dh, l.v_head(b, j), l.vs[2], 0.0f,
                   ds.data(), S);  // dP
              // dS = scale · P ∘ (dP − Σ_s dP∘P); rows that saw no key get none.
              for (int64_t t = 0; t < T; ++t) {
                float* row = ds.data() + t * S;
                const float* pr = p + t * S;
                if (!any_visible(m, b, t)) {
                  std::fill(row, row + S, 0.0f);
                  continue;
                }
                float dot = 0;
                for (int64_t s = 0; s < S; ++s) dot += row[s] * pr[s];
                for (int64_t s = 0; s < S; ++s) row[s] = scale * pr[s] * (row[s] - dot);
              }
              gemm(false, false, T, Dh, S, 1.0f, ds.data(), S, l.k_head(b, j), l.ks[2], 0.0f,
                   dqp + (b * H + h) * T * Dh, Dh);  // dQ = dS K
              gemm(true, false, S, Dh, T, 1.0f, ds.data(), S, l.q_head(b, h), l.qs[2], 1.0f, dkj,
                   Dh);  // dK += dSᵀ Q
            }
          }
        });
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Products below this many multiply-adds run on one BLAS thread (see linear()).
constexpr int64_t kSmallGemm = 32ll << 20;

torch::Tensor mm_policy(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.size(0) * a.size(1) * b.size(1) < kSmallGemm) {
    SingleThreadedBlas single;
    return at::mm(a, b);
  }
  return at::mm(a, b);
}

// x Wᵀ for a large product: each thread computes its own block of output columns with a
// single-threaded GEMM. OpenBLAS's own threads would otherwise be a third pool beside libgomp's
// (which runs the other kernels), each waking and yielding to the other between operations.
torch::Tensor linear_columns(const torch::Tensor& x2, const torch::Tensor& w) {
  const int64_t M = x2.size(0), K = x2.size(1), N = w.size(0);
  if (M * K * N < kSmallGemm || !x2.is_contiguous() || !w.is_contiguous() ||
      at::get_num_threads() < 2 || at::in_parallel_region())
    return mm_policy(x2, w.t());
  auto y = torch::empty({M, N}, x2.options());
  const float* xp = x2.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t threads = at::get_num_threads();
  const int64_t block = (N + threads - 1) / threads;
  SingleThreadedBlas single;
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n0 = t * block, n = std::min(N, n0 + block) - n0;
      if (n > 0) gemm(false, true, M, n, K, 1.0f, xp, K, wp + n0 * K, K, 0.0f, yp + n0, N);
    }
  });
  return y;
}

class LinearFn : public torch::autograd::Function<LinearFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w) {
    auto x2 = x.reshape({-1, x.size(-1)});
    auto y = linear_columns(x2, w);
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
    auto dy = grads[0].reshape({-1, w.size(0)});
    torch::Tensor dx, dw;
    if (ctx->needs_input_grad(0))
      dx = mm_policy(dy, w).view(ctx->saved_data["shape"].toIntVector());
    if (ctx->needs_input_grad(1)) dw = mm_policy(dy.t().contiguous(), x2);
    return {dx, dw};
  }
};

// ---- matrix–vector product (decode steps) ----

// One output per row: a dot product of the row with x over four independent 16-lane partial sums,
// so the loads of a row stream at the memory's pace rather than at one add's latency.
using f32x16 = float __attribute__((vector_size(64)));

__attribute__((always_inline)) inline f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// y[o] = w[o·ldw : o·ldw + in] · x (+ bias[o]) for o in [begin, end).
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

struct GemvJob {
  const float *w, *x, *bias;
  float* y;
  int64_t out, in;
};

void gemv_part(void* context, int part, int parts) {
  const auto& j = *static_cast<const GemvJob*>(context);
  // Equal row ranges, rounded to whole cache lines of y.
  const int64_t step = (j.out + parts - 1) / parts;
  const int64_t chunk = (step + 15) / 16 * 16;
  const int64_t begin = std::min(j.out, part * chunk), end = std::min(j.out, begin + chunk);
  gemv_rows(j.w, j.in, j.x, j.bias, j.y, begin, end, j.in);
}

// o = Σ_{s = lo … hi} p[s] · v[s·ldv : s·ldv + n] (keys a softmax zeroed are skipped).
REFT_MULTIVERSION void weighted_rows(const float* p, const float* v, int64_t ldv, int64_t lo,
                                     int64_t hi, float* o, int64_t n) {
  std::fill(o, o + n, 0.0f);
  for (int64_t s = lo; s <= hi; ++s) {
    const float w = p[s];
    if (w == 0) continue;
    const float* vr = v + s * ldv;
    for (int64_t i = 0; i < n; ++i) o[i] += w * vr[i];
  }
}

// Runs a kernel through autograd only when some input needs a gradient: Function::apply builds a
// graph node and records every input even under NoGradGuard, several microseconds per call that a
// decode step (dozens of calls, ~1 ms of work in all) would pay for nothing. Fn::forward saves
// nothing when given no context.
bool wants_grad(const torch::Tensor& t) { return t.defined() && t.requires_grad(); }
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

}  // namespace

bool built_with_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  if (!fast_path(x) || !fast_path(weight) || (bias.defined() && !fast_path(bias)))
    return at::linear(x, weight,
                      bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt);
  auto y = run<LinearFn>(x, weight);
  return bias.defined() ? y + bias : y;
}

torch::Tensor gemv(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x) {
  if (!fast_path(weight) || !fast_path(x) || (bias.defined() && !fast_path(bias)) ||
      !weight.is_contiguous() || (bias.defined() && !bias.is_contiguous()) || x.dim() != 1 ||
      x.size(0) != weight.size(1) ||
      (torch::GradMode::is_enabled() && (wants_grad(x) || wants_grad(weight) || wants_grad(bias))))
    return {};
  const auto xc = x.contiguous();
  auto y = torch::empty({weight.size(0)}, weight.options());
  GemvJob job{weight.data_ptr<float>(),
              xc.data_ptr<float>(),
              bias.defined() ? bias.data_ptr<float>() : nullptr,
              y.data_ptr<float>(),
              weight.size(0),
              weight.size(1)};
  // Split only products worth a helper's time (≥ 1 MiB of weights; a stories260K layer is less).
  const int parts = weight.numel() >= (1 << 18) ? spin_team_size() : 1;
  // With OMP_WAIT_POLICY=ACTIVE libgomp's idle threads spin anyway: a polling team beside them
  // would only take their cores, so the products use them instead.
  static const bool omp_spins = strcasecmp(omp_wait_policy().c_str(), "active") == 0;
  if (parts > 1 && omp_spins)
    at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
      for (int64_t part = begin; part < end; ++part) gemv_part(&job, part, parts);
    });
  else if (parts > 1)
    spin_team_run(parts, gemv_part, &job);
  else
    gemv_part(&job, 0, 1);
  return y;
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& key_mask, double scale, bool causal,
                        int64_t sliding_window) {
  if (!fast_path(q) || !fast_path(k) || !fast_path(v) || q.stride(3) != 1 || k.stride(3) != 1 ||
      v.stride(3) != 1)
    return {};
  return run<AttentionFn>(q, k, v, key_mask.defined() ? key_mask : torch::Tensor(), scale, causal,
                          sliding_window);
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (!fast_path(x) || !fast_path(weight)) {
    auto xf = x.to(torch::kFloat32);
    auto y = xf * (xf.square().mean(-1, true) + eps).rsqrt();
    return weight * y.to(x.scalar_type());
  }
  return run<RmsNormFn>(x, weight, eps);
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  if (!fast_path(x) || !fast_path(cos) || x.dim() != 4 || x.stride(3) != 1 ||
      !cos.is_contiguous() || !sin.is_contiguous() || cos.size(0) != x.size(0) ||
      cos.size(1) != x.size(1)) {
    const int64_t half = x.size(-1) / 2;
    auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
    return x * cos + rotated * sin;
  }
  return run<RotaryFn>(x, cos, sin);
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  if (!fast_path(gate) || !fast_path(up) || gate.sizes() != up.sizes() ||
      !rows_with_unit_stride(gate) || !rows_with_unit_stride(up))
    return torch::silu(gate) * up;
  return run<SwigluFn>(gate, up);
}

torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& key_mask, double scale,
                               int64_t sliding_window) {
  if (torch::GradMode::is_enabled() || !fast_path(q) || !fast_path(k) || !fast_path(v) ||
      q.stride(3) != 1 || k.stride(3) != 1 || v.stride(3) != 1)
    return {};
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dh = q.size(3);
  const int64_t Hkv = k.size(1), S = k.size(2), G = H / Hkv;
  if (T > 4) return {};  // prefill: the GEMM path is faster
  auto out = torch::empty({B, T, H * Dh}, q.options());
  torch::Tensor mask =
      key_mask.defined() ? key_mask.to(torch::kCPU, torch::kInt64).contiguous() : torch::Tensor();
  const int64_t* mp = mask.defined() ? mask.data_ptr<int64_t>() : nullptr;
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const auto qs = q.strides(), ks = k.strides(), vs = v.strides();
  at::parallel_for(0, B * H, tasks_grain(4.0 * T * S * Dh), [&](int64_t begin, int64_t end) {
    std::vector<float> p(S);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H, j = h / G;
      const float* kb = kp + b * ks[0] + j * ks[1];
      const float* vb = vp + b * vs[0] + j * vs[1];
      const int64_t* keep = mp ? mp + b * S : nullptr;
      for (int64_t t = 0; t < T; ++t) {
        const float* qi = qp + b * qs[0] + h * qs[1] + t * qs[2];
        float* o = op + (b * T + t) * H * Dh + h * Dh;
        // This query sits at key position `pos` and sees keys lo … pos (and the key mask).
        const int64_t pos = S - T + t;
        const int64_t lo = sliding_window > 0 ? std::max<int64_t>(0, pos - sliding_window + 1) : 0;
        gemv_rows(kb, ks[2], qi, nullptr, p.data(), lo, pos + 1, Dh);  // raw scores q·k
        const bool uniform = softmax_row(p.data(), lo, pos, S, keep, static_cast<float>(scale));
        weighted_rows(p.data(), vb, vs[2], uniform ? 0 : lo, uniform ? S - 1 : pos, o, Dh);
      }
    }
  });
  return out;
}

}  // namespace reft::kernels
