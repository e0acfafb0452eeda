// RMSNorm (HF LlamaRMSNorm) in one pass, with its backward.

#include "models/kernels.h"
#include "models/kernels_common.h"

namespace reft::kernels {
namespace {

using namespace detail;

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

}  // namespace

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (!fast_path(x) || !fast_path(weight)) {
    auto xf = x.to(torch::kFloat32);
    auto y = xf * (xf.square().mean(-1, true) + eps).rsqrt();
    return weight * y.to(x.scalar_type());
  }
  return run<RmsNormFn>(x, weight, eps);
}

}  // namespace reft::kernels
