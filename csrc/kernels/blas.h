// Row-major GEMM through OpenBLAS (the scipy-openblas32 wheel, whose symbols carry a prefix).
#pragma once

#include <cblas.h>

#include <limits>

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

// The kernels call the BLAS from inside their own OpenMP loops, one GEMM per thread, so the
// BLAS itself must stay single-threaded: the extension sets that when it loads
// (scipy_openblas_set_num_threads(1)); the library is private to dlx's wheel dependency.

// OpenBLAS from scipy-openblas32 takes 32-bit sizes; the callers block their work to stay below this.
constexpr index_t kMaxBlasDim = std::numeric_limits<blasint>::max();

// C = alpha * op(A) * op(B) + beta * C with row-major operands.
inline void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha,
                 const float* a, index_t lda, const float* b, index_t ldb, float beta, float* c,
                 index_t ldc) {
  scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
                    static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
                    static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
                    static_cast<blasint>(ldc));
}

inline void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, double alpha,
                 const double* a, index_t lda, const double* b, index_t ldb, double beta,
                 double* c, index_t ldc) {
  scipy_cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
                    static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
                    static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
                    static_cast<blasint>(ldc));
}

// y = op(A) x (beta = 0) with a row-major A (m, n); x has stride incx, y is contiguous. The
// callers zero y first, so the result never depends on whether the BLAS sets y to zero for
// beta = 0 (as the reference BLAS does) or scales it (which would keep a NaN found there).
inline void gemv(bool trans, index_t m, index_t n, const float* a, index_t lda, const float* x,
                 index_t incx, float* y) {
  scipy_cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
                    static_cast<blasint>(n), 1.0f, a, static_cast<blasint>(lda), x,
                    static_cast<blasint>(incx), 0.0f, y, 1);
}

inline void gemv(bool trans, index_t m, index_t n, const double* a, index_t lda, const double* x,
                 index_t incx, double* y) {
  scipy_cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
                    static_cast<blasint>(n), 1.0, a, static_cast<blasint>(lda), x,
                    static_cast<blasint>(incx), 0.0, y, 1);
}

}  // namespace dlx::DLX_CPU_LEVEL
