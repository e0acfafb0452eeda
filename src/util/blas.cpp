#include "util/blas.h"

#include <ATen/ATen.h>
#include <dlfcn.h>

#include <cstdlib>
#include <iostream>

namespace reft::blas {
namespace {

// The Fortran symbol libtorch itself links (Debian: libblas.so.3, served by OpenBLAS when
// libopenblas0-pthread is installed, else by the reference BLAS).
using SgemmFn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                         const float*, const int*, const float*, const int*, const float*, float*,
                         const int*);

struct State {
  Resolved info;
  SgemmFn sgemm = nullptr;
};

State resolve_state() {
  State s;
  s.sgemm = reinterpret_cast<SgemmFn>(dlsym(RTLD_DEFAULT, "sgemm_"));
  s.info.symbol = s.sgemm != nullptr;
  if (auto set_threads =
          reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_threads(1);  // its pool would spin beside libtorch's; reft splits products itself
  if (auto config = reinterpret_cast<char* (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    s.info.library = std::string("OpenBLAS ") + config();
    s.info.optimized = true;
    return s;
  }
  if (!s.sgemm) {
    // A libtorch without an exported sgemm_ (e.g. PyTorch's own builds, with MKL inside): its
    // at::mm is the optimized product.
    s.info.library = "libtorch's at::mm";
    s.info.optimized = true;
    return s;
  }
  Dl_info where{};
  if (dladdr(reinterpret_cast<void*>(s.sgemm), &where) && where.dli_fname) {
    char* real = realpath(where.dli_fname, nullptr);
    s.info.library = real ? real : where.dli_fname;
    std::free(real);
  }
  for (const char* fast : {"openblas", "mkl", "blis", "atlas", "accelerate"})
    if (s.info.library.find(fast) != std::string::npos) s.info.optimized = true;
  return s;
}

const State& state() {
  static const State s = resolve_state();
  return s;
}

}  // namespace

const Resolved& resolve() { return state().info; }

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const State& s = state();
  if (s.sgemm) {
    // Column-major BLAS sees a row-major matrix as its transpose, hence the swapped operands.
    const int m = static_cast<int>(M), n = static_cast<int>(N), k = static_cast<int>(K);
    const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
    s.sgemm(trans_b ? "T" : "N", trans_a ? "T" : "N", &n, &m, &k, &alpha, B, &lb, A, &la, &beta, C,
            &lc);
    return;
  }
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  auto view = [&](const float* p, int64_t rows, int64_t cols, int64_t ld, bool trans) {
    auto t = at::from_blob(const_cast<float*>(p), {trans ? cols : rows, trans ? rows : cols},
                           {ld, 1}, opts);
    return trans ? t.t() : t;
  };
  auto c = at::from_blob(C, {M, N}, {ldc, 1}, opts);
  c.addmm_(view(A, M, K, lda, trans_a), view(B, K, N, ldb, trans_b), beta, alpha);
}

}  // namespace reft::blas
