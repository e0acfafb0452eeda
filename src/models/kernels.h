#pragma once
// Fused CPU kernels for the elementwise parts of a transformer layer. libtorch runs RMSNorm as six
// ops, rotary embedding as seven and SwiGLU as two, each allocating and reading its full input
// again; on a 2-core CPU these memory passes and per-op overheads cost as much as the matmuls
// at decode time. Each kernel is one pass, with a hand-written backward (autograd Function) for
// training. They handle contiguous float32 CPU tensors; anything else falls back to the composite
// libtorch formula, so results never depend on which path ran beyond float rounding.

#include <torch/torch.h>

namespace reft::kernels {

/// Whether the kernels were built with OpenMP: at::parallel_for is a header template, and without
/// -fopenmp it silently runs every kernel on one thread.
bool built_with_openmp();

/// x Wᵀ + b for a frozen W (out, in) with (N, …, in) inputs, as one 2-D GEMM split into column
/// blocks over the pool's threads (small products run on the calling thread). The backward
/// (dX = dY W, and dW = dYᵀ X when W requires a gradient) is split the same way.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias);

/// a (M, K) · b (K, N) without autograd, split like linear(); falls back to at::mm for anything
/// but float32 CPU matrices (or when a gradient is wanted).
torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b);

/// W x + b for one vector x (in) without autograd (decode steps): each thread of the pool streams
/// its own rows of W. → (out). Returns an undefined tensor when the inputs do not suit the kernel
/// (not float32 on the CPU, W not contiguous, or gradients wanted); the caller then uses at::mv.
torch::Tensor gemv(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x);

/// x · rsqrt(mean(x², −1) + eps) · w over the last dim (HF LlamaRMSNorm, computed in float32).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

/// Rotary embedding in HF's rotate_half layout: x·cos + rotate_half(x)·sin.
/// x (B, T, H, Dh) (any strides in the leading dims, unit stride in Dh); cos/sin (B, T, 1, Dh).
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

/// silu(gate) · up (the gated MLP's activation). gate/up (…, I), unit stride in the last dim.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);

/// softmax(scale·q kᵀ + mask) v with grouped key/value heads, one task per (batch row, key/value
/// head) and one single-threaded GEMM per head (libtorch 1.13's CPU bmm runs such strided
/// per-head products ~5× below the GEMM rate). q (B, H, T, Dh), k/v (B, Hkv, S, Dh), any strides
/// with a unit last stride (views of the fused projection or of a KV cache); key_mask (B, S)
/// (1 = real) or undefined; query t sits at key position S − T + t; `causal` hides later keys and
/// `sliding_window` > 0 keys older than the window. A query with no visible key attends uniformly
/// (as HF's finite masking does). → (B, T, H·Dh), differentiable with respect to q, k and v.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& key_mask, double scale, bool causal,
                        int64_t sliding_window);

/// Attention of a few new queries against a KV cache without autograd (decode steps):
/// q (B, H, T, Dh), k/v (B, Hkv, S, Dh) (unit stride in Dh), key_mask (B, S) or undefined,
/// query t at key position S − T + t (causal) → (B, T, H·Dh). Returns an undefined tensor when
/// the inputs do not suit the kernel (the caller then uses the GEMM path).
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& key_mask, double scale,
                               int64_t sliding_window);

}  // namespace reft::kernels
