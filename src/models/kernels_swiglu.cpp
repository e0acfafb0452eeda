// silu(gate) · up in one pass, with its backward.

#include "models/kernels.h"
#include "models/kernels_common.h"

namespace reft::kernels {
namespace {

using namespace detail;

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

}  // namespace

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  if (!fast_path(gate) || !fast_path(up) || gate.sizes() != up.sizes() ||
      !rows_with_unit_stride(gate) || !rows_with_unit_stride(up))
    return torch::silu(gate) * up;
  return run<SwigluFn>(gate, up);
}

}  // namespace reft::kernels
