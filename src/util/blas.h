#pragma once
// The BLAS reft's matrix products run on, resolved once (src/util/blas.cpp). Every call runs on
// the calling thread: parallel products split their output into blocks on libtorch's pool
// (models/kernels_linear.cpp), so BLAS never starts threads of its own.

#include <cstdint>
#include <string>

namespace reft::blas {

struct Resolved {
  std::string library;     // the file serving sgemm_, or OpenBLAS's config string
  bool optimized = false;  // not the reference BLAS
  bool symbol = false;     // sgemm_ is callable (else gemm() goes through at::mm)
};

/// Resolves sgemm_ and sets OpenBLAS's own thread count to 1 (once; thread-safe).
const Resolved& resolve();

/// Row-major C = α·op(A)·op(B) + β·C, op(X) = Xᵀ when trans_x, on the calling thread. A is M×K
/// after op, B K×N, C M×N; ld* are row strides. β = 0 ignores C's contents (NaN included).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace reft::blas
