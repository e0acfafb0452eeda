#pragma once
// Orthonormal R (D, r) for the LoReFT family and DII.
//
// Both modes compute R = B · Q(X) where X (D, r) is the trainable tensor and Q the Householder map
// of PyTorch's orthogonal(): A = tril(X, −1), τ = 2 / (1 + ‖A_i‖²), Q = H(A, τ) · sign(diag X).
// X starts at −I, so Q = I(D, r) and R starts at B[:, :r]. They differ in how B is held:
//   kPyreft: an explicit D×D buffer, exactly as pyreft's parametrization (needed to reproduce
//            pyreft trajectories; 64 MiB per intervention at D = 4096);
//   kLean:   r Householder reflectors (D, r) + τ (r), applied with ormqr: O(D·r) memory and time.
// pyreft multiplies by int(diag X) instead of sign(diag X). While the diagonal is ±1 the two agree;
// once weight decay pulls it inside (−1, 1), int() gives 0 and silently turns R into 0. sign()
// keeps the intervention alive (and reft also exempts X from weight decay).

#include <torch/torch.h>

#include "reft/intervention.h"

namespace reft {

class RotateLayerImpl : public torch::nn::Module {
 public:
  /// A fresh random R, drawn as pyreft draws it (nn.init.orthogonal_, then the completion of the
  /// trivialization base in kPyreft mode).
  RotateLayerImpl(int64_t embed_dim, int64_t rank, OrthogonalMode mode, torch::Dtype dtype);

  /// The effective R (D, r), differentiable with respect to X.
  torch::Tensor weight() const;

  /// Re-bases the parametrization so that weight() == R (orthonormal columns), with X = ±I.
  /// Used to load checkpoints that store only the effective R (pyreft's LoReFT state dict).
  void set_weight(const torch::Tensor& R);

  torch::Tensor& original() { return original_; }
  /// The R computed by the most recent weight() call (tests read dL/dR through it).
  const torch::Tensor& last_weight() const { return last_; }
  OrthogonalMode mode() const { return mode_; }

 private:
  OrthogonalMode mode_;
  torch::Tensor original_;          // X (D, r): "parametrizations.weight.original"
  torch::Tensor base_;              // kPyreft: (D, D) "parametrizations.weight.0.base"
  torch::Tensor reflectors_, tau_;  // kLean: (D, r), (r) "parametrizations.weight.0.reflectors/tau"
  torch::nn::Module* holder_ = nullptr;       // "parametrizations.weight"
  torch::nn::Module* base_holder_ = nullptr;  // "parametrizations.weight.0"
  mutable torch::Tensor last_;
};
TORCH_MODULE(RotateLayer);

/// nn.init.orthogonal_ on a (rows, cols) matrix, consuming the RNG exactly as PyTorch does.
torch::Tensor init_orthogonal(int64_t rows, int64_t cols);

/// nn.Linear(in, out) with PyTorch's default initialisation (kaiming_uniform_(a=√5), bias
/// U(±1/√in)), consuming the RNG in PyTorch's order.
torch::nn::Linear make_linear(int64_t in, int64_t out, bool bias, torch::Dtype dtype);

}  // namespace reft
