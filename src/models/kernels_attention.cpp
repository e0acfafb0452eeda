// Attention: softmax(scale·q kᵀ + mask) v per (batch row, key/value head) with single-threaded
// GEMMs on the pool's threads, its backward, and the decode-step variant against a KV cache.

#include "models/kernels.h"
#include "models/kernels_common.h"
#include "util/blas.h"

#include <limits>
#include <vector>

namespace reft::kernels {
namespace {

using namespace detail;
using blas::gemm;

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

}  // namespace

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& key_mask, double scale, bool causal,
                        int64_t sliding_window) {
  if (!fast_path(q) || !fast_path(k) || !fast_path(v) || q.stride(3) != 1 || k.stride(3) != 1 ||
      v.stride(3) != 1)
    return {};
  return run<AttentionFn>(q, k, v, key_mask.defined() ? key_mask : torch::Tensor(), scale, causal,
                          sliding_window);
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
