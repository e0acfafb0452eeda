#include "interventions/orthogonal.h"

#include <cmath>

#include "reft/error.h"

namespace reft {
namespace {

// Q·M for the orthogonal Q implied by geqrf reflectors, with the transposed product as gradient
// (Q is a constant basis, so only M needs one).
class ApplyReflectors : public torch::autograd::Function<ApplyReflectors> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& m,
                               const torch::Tensor& reflectors, const torch::Tensor& tau) {
    ctx->saved_data["reflectors"] = reflectors;
    ctx->saved_data["tau"] = tau;
    return at::ormqr(reflectors, tau, m, /*left=*/true, /*transpose=*/false);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto reflectors = ctx->saved_data["reflectors"].toTensor();
    auto tau = ctx->saved_data["tau"].toTensor();
    return {at::ormqr(reflectors, tau, grads[0].contiguous(), /*left=*/true, /*transpose=*/true),
            torch::Tensor(), torch::Tensor()};
  }
};

// PyTorch's _make_orthogonal: the Q factor of A (tall) with diag(R) ≥ 0.
torch::Tensor make_orthogonal(const torch::Tensor& a) {
  auto [x, tau] = torch::geqrf(a);
  auto q = torch::linalg_householder_product(x, tau);
  return q * x.diagonal(0, -2, -1).sgn().unsqueeze(-2);
}

}  // namespace

torch::Tensor init_orthogonal(int64_t rows, int64_t cols) {
  torch::NoGradGuard no_grad;
  auto flat = torch::empty({rows, cols}).normal_(0, 1);
  if (rows < cols) flat = flat.t();
  auto [q, r] = torch::linalg_qr(flat);
  q = q * torch::diag(r, 0).sign();
  if (rows < cols) q = q.t();
  return q.contiguous();
}

torch::nn::Linear make_linear(int64_t in, int64_t out, bool bias, torch::Dtype dtype) {
  // torch::nn::Linear's reset_parameters follows PyTorch's (kaiming_uniform_(a=√5), then the bias).
  torch::nn::Linear linear(torch::nn::LinearOptions(in, out).bias(bias));
  linear->to(dtype);
  return linear;
}

RotateLayerImpl::RotateLayerImpl(int64_t embed_dim, int64_t rank, OrthogonalMode mode,
                                 torch::Dtype dtype)
    : mode_(mode) {
  torch::NoGradGuard no_grad;
  auto r0 = init_orthogonal(embed_dim, rank);  // LowRankRotateLayer's nn.init.orthogonal_
  auto parametrizations =
      register_module("parametrizations", std::make_shared<torch::nn::Module>());
  auto holder = parametrizations->register_module("weight", std::make_shared<torch::nn::Module>());
  auto base_holder = holder->register_module("0", std::make_shared<torch::nn::Module>());
  holder_ = holder.get();
  base_holder_ = base_holder.get();
  auto neg_identity = -torch::eye(embed_dim, rank);
  if (mode == OrthogonalMode::kPyreft) {
    // orthogonal()'s right_inverse with use_trivialization: complete R0 with randn columns.
    auto completion = torch::randn({embed_dim, embed_dim - rank});
    base_ = base_holder->register_buffer(
        "base", make_orthogonal(torch::cat({r0, completion}, -1)).to(dtype));
  } else {
    auto [reflectors, tau] = torch::geqrf(r0);
    reflectors_ = base_holder->register_buffer("reflectors", reflectors.to(dtype));
    tau_ = base_holder->register_buffer("tau", tau.to(dtype));
    // B[:, i] = s_i·R0[:, i] (s = signs of geqrf's R diagonal); X = −diag(s) makes R start at R0.
    neg_identity.diagonal().mul_(reflectors.diagonal().sign());
  }
  original_ = holder->register_parameter("original", neg_identity.to(dtype));
}

torch::Tensor RotateLayerImpl::weight() const {
  auto a = original_.tril(-1);
  auto tau = 2.0 / (1.0 + (a * a).sum(0));
  auto q = torch::linalg_householder_product(a, tau);
  q = q * original_.diagonal().detach().sign().unsqueeze(0);
  last_ = mode_ == OrthogonalMode::kPyreft ? torch::matmul(base_, q)
                                           : ApplyReflectors::apply(q, reflectors_, tau_);
  return last_;
}

void RotateLayerImpl::set_weight(const torch::Tensor& R) {
  torch::NoGradGuard no_grad;
  const int64_t d = original_.size(0), r = original_.size(1);
  if (R.sizes() != original_.sizes())
    fail("[rotate_layer] expected R of shape (", d, ", ", r, "), found ", R.sizes());
  auto Rf = R.to(torch::kFloat64);
  const double err = (Rf.t().mm(Rf) - torch::eye(r, torch::kFloat64)).abs().max().item<double>();
  if (err > 1e-3)
    fail("[rotate_layer] expected R with orthonormal columns, found max |RᵀR − I| = ", err);
  auto x = torch::zeros_like(original_);
  if (mode_ == OrthogonalMode::kPyreft) {
    // make_orthogonal normalises to diag(R) ≥ 0, so base[:, :r] = R exactly and X = −I.
    auto completion = torch::randn({d, d - r}, original_.options());
    base_.copy_(make_orthogonal(torch::cat({R.to(original_.scalar_type()), completion}, -1)));
    x.diagonal().fill_(-1);
  } else {
    // B[:, i] = s_i·R[:, i] with s the signs of geqrf's diagonal; X = −diag(s) undoes them.
    auto [reflectors, tau] = torch::geqrf(R.to(original_.scalar_type()));
    reflectors_.copy_(reflectors);
    tau_.copy_(tau);
    x.diagonal().copy_(-reflectors.diagonal().sign());
  }
  original_.copy_(x);
}

}  // namespace reft
