// Rotary position embedding (HF rotate_half layout) in one pass, with its backward.

#include "models/kernels.h"
#include "models/kernels_common.h"

namespace reft::kernels {
namespace {

using namespace detail;

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

}  // namespace

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

}  // namespace reft::kernels
