// The fully connected layer's three products, each one GEMM (see linear.h). A GEMM is split
// among the threads by blocks of its output: by rows where the output is taller than wide (a
// batch of samples), else by columns (batch 1, or the weight gradient of a narrow input), so
// every thread writes its own block and reads the shared operands; no sum is divided. An
// output of one row or one column (batch 1) is a matrix-vector product, which the BLAS's
// GEMM runs several times slower than its GEMV.
#include "linear.h"

#include <algorithm>

#include "blas.h"

namespace dlx::DLX_CPU_LEVEL {
namespace {

// Products with fewer multiply-adds stay on the calling thread: waking the team costs more.
constexpr index_t kParallelGrain = index_t(1) << 16;
// Blocks of rows are a multiple of 4 rows and blocks of columns a multiple of 16 columns (a
// 64-byte line of floats), so that each block keeps whole register tiles of the BLAS and two
// threads share at most the lines at a block's edges.
constexpr index_t kRowGranule = 4, kColumnGranule = 16;

index_t block_of(index_t extent, index_t parts, index_t granule) {
  const index_t per = (extent + parts - 1) / parts;
  return (per + granule - 1) / granule * granule;
}

// C (m, n) = op(A) op(B), row-major, op(A) (m, k) and op(B) (k, n), C of leading size n.
template <typename T>
void parallel_gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, const T* a,
                   index_t lda, const T* b, index_t ldb, T* c) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum, which a BLAS may leave unwritten for k = 0
    std::fill(c, c + m * n, T(0));
    return;
  }
  // Split the dimension with more granules; a product of one granule stays on one thread.
  const bool by_rows = m / kRowGranule >= n / kColumnGranule;
  const bool parallel =
      m * n * k > kParallelGrain && (by_rows ? m > kRowGranule : n > kColumnGranule);
#pragma omp parallel if (parallel)
  {
    const index_t parts = omp_get_num_threads(), part = omp_get_thread_num();
    const index_t extent = by_rows ? m : n;
    const index_t per = block_of(extent, parts, by_rows ? kRowGranule : kColumnGranule);
    const index_t lo = std::min(extent, part * per), hi = std::min(extent, lo + per);
    if (lo < hi && by_rows) {
      const T* a_rows = trans_a ? a + lo : a + lo * lda;
      if (n == 1) {  // C's rows [lo, hi) = op(A) rows times the column op(B)
        std::fill(c + lo, c + hi, T(0));  // see gemv in blas.h
        gemv(trans_a, trans_a ? k : hi - lo, trans_a ? hi - lo : k, a_rows, lda, b,
             trans_b ? 1 : ldb, c + lo);
      } else {
        gemm(trans_a, trans_b, hi - lo, n, k, T(1), a_rows, lda, b, ldb, T(0), c + lo * n, n);
      }
    } else if (lo < hi) {
      const T* b_columns = trans_b ? b + lo * ldb : b + lo;
      if (m == 1) {  // C's columns [lo, hi) = the row op(A) times op(B)'s columns
        std::fill(c + lo, c + hi, T(0));  // see gemv in blas.h
        gemv(!trans_b, trans_b ? hi - lo : k, trans_b ? k : hi - lo, b_columns, ldb, a,
             trans_a ? lda : 1, c + lo);
      } else {
        gemm(trans_a, trans_b, m, hi - lo, k, T(1), a, lda, b_columns, ldb, T(0), c + lo, n);
      }
    }
  }
}

}  // namespace

template <typename T>
void linear_forward(const T* x, const T* w, const T* b, T* y, index_t n, index_t in,
                    index_t out) {
  parallel_gemm(false, false, n, out, in, x, in, w, out, y);
  if (b == nullptr) return;
  // The bias is added after the product, as NumPy's x @ W + b does.
  for (index_t i = 0; i < n; ++i) {
    T* row = y + i * out;
    for (index_t j = 0; j < out; ++j) row[j] += b[j];
  }
}

template <typename T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, index_t n,
                     index_t in, index_t out) {
  if (dx != nullptr) parallel_gemm(false, true, n, in, out, dy, out, w, out, dx);
  parallel_gemm(true, false, in, out, n, x, in, dy, out, dw);
  if (db == nullptr) return;
  std::fill(db, db + out, T(0));
  for (index_t i = 0; i < n; ++i) {
    const T* row = dy + i * out;
    for (index_t j = 0; j < out; ++j) db[j] += row[j];
  }
}

template void linear_forward<float>(const float*, const float*, const float*, float*, index_t,
                                    index_t, index_t);
template void linear_forward<double>(const double*, const double*, const double*, double*,
                                     index_t, index_t, index_t);
template void linear_backward<float>(const float*, const float*, const float*, float*, float*,
                                     float*, index_t, index_t, index_t);
template void linear_backward<double>(const double*, const double*, const double*, double*,
                                      double*, double*, index_t, index_t, index_t);

}  // namespace dlx::DLX_CPU_LEVEL
