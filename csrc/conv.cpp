// GEMM convolution in the style of PyTorch's ConvolutionMM2d: OpenMP splits the work into
// independent items, and each thread unfolds its item into a private column buffer and runs a
// single-threaded GEMM on it. The BLAS never starts threads of its own (see blas.h), so the
// cores are never oversubscribed, and every buffer is per thread, so the extra memory is
// bounded by the thread count instead of growing with N.
//
// With P = OH*OW positions and CKK = C*KH*KW column rows, for image n and positions [p0, p1):
//   forward      y[n][:, p0:p1]   = W (FN, CKK) * col (CKK, p1 - p0)          item: (n, block)
//   grad weight  dW_thread       += dy[n][:, p0:p1] * col^T                   item: (n, block)
//   grad input   dcol (gKK, P)    = W[:, group]^T * dy[n]; col2im per channel  item: (n, group)
// Grad-weight partials are summed in thread order, so results repeat bit for bit at a fixed
// thread count.
#include "conv.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "blas.h"
#include "im2col.h"

namespace dlx {
namespace {

// Elements of one thread's column buffer (4 MiB of floats): large enough for an efficient
// GEMM, small enough to stay near the cache.
constexpr index_t kColumnBudget = index_t(1) << 20;

// Loops with less work than this stay on one thread: waking the team costs more.
constexpr index_t kParallelGrain = index_t(1) << 15;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

void check_blas_dims(const Frame& f, const Window2d& win, index_t fn) {
  const index_t rows = f.c * win.kh * win.kw;
  if (rows > kMaxBlasDim || f.out_plane() > kMaxBlasDim || fn > kMaxBlasDim) {
    fail("convolution too large for 32-bit BLAS: C*KH*KW=", rows, ", OH*OW=", f.out_plane(),
         ", FN=", fn);
  }
}

// How the positions of each image are cut: enough blocks for every thread to have work, and
// blocks small enough for the column budget.
struct Blocks {
  index_t per_image;  // blocks per image
  index_t length;     // positions per block (the last may be shorter)
};

Blocks position_blocks(const Frame& f, index_t rows, int threads) {
  const index_t p = std::max<index_t>(f.out_plane(), 1);
  index_t per_image = f.n >= threads ? 1 : ceil_div(threads, std::max<index_t>(f.n, 1));
  per_image = std::max(per_image, ceil_div(rows * p, kColumnBudget));
  per_image = std::min(per_image, p);
  return Blocks{per_image, ceil_div(p, per_image)};
}

}  // namespace

template <typename T>
void im2col(const T* x, const Frame& f, const Window2d& win, T* col) {
  const index_t kk = win.kh * win.kw;
  const index_t row_len = f.c * kk;
#pragma omp parallel for collapse(2) schedule(static) if (f.n * row_len * f.out_plane() > kParallelGrain)
  for (index_t n = 0; n < f.n; ++n) {
    for (index_t c = 0; c < f.c; ++c) {
      im2col_channel(x + (n * f.c + c) * f.plane(), f, win, 0, f.out_plane(),
                     col + n * f.out_plane() * row_len + c * kk, 1, row_len);
    }
  }
}

template <typename T>
void col2im(const T* col, const Frame& f, const Window2d& win, T* x) {
  const index_t kk = win.kh * win.kw;
  const index_t row_len = f.c * kk;
#pragma omp parallel for collapse(2) schedule(static) if (f.n * row_len * f.out_plane() > kParallelGrain)
  for (index_t n = 0; n < f.n; ++n) {
    for (index_t c = 0; c < f.c; ++c) {
      T* plane = x + (n * f.c + c) * f.plane();
      std::fill(plane, plane + f.plane(), T(0));
      col2im_channel(col + n * f.out_plane() * row_len + c * kk, f, win, plane, 1, row_len);
    }
  }
}

namespace {

// Unfolds positions [p0, p1) of image x (C, H, W) into col (CKK, p1 - p0).
template <typename T>
void unfold_positions(const T* x, const Frame& f, const Window2d& win, index_t p0, index_t p1,
                      T* col) {
  const index_t kk = win.kh * win.kw;
  const index_t len = p1 - p0;
  for (index_t c = 0; c < f.c; ++c) {
    im2col_channel(x + c * f.plane(), f, win, p0, p1, col + c * kk * len, len, 1);
  }
}

}  // namespace

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const Frame& f, index_t fn,
                    const Window2d& win) {
  check_blas_dims(f, win, fn);
  const index_t rows = f.c * win.kh * win.kw;
  const index_t p = f.out_plane();
  const int threads = omp_get_max_threads();
  const Blocks blocks = position_blocks(f, rows, threads);
  const index_t items = f.n * blocks.per_image;
  const bool parallel = items > 1 && f.n * fn * p * rows > kParallelGrain;

#pragma omp parallel if (parallel)
  {
    std::vector<T> col(static_cast<size_t>(rows * blocks.length));
#pragma omp for schedule(static)
    for (index_t item = 0; item < items; ++item) {
      const index_t n = item / blocks.per_image;
      const index_t p0 = (item % blocks.per_image) * blocks.length;
      const index_t p1 = std::min(p, p0 + blocks.length);
      if (p0 >= p1) continue;
      const index_t len = p1 - p0;
      T* out = y + n * fn * p + p0;
      unfold_positions(x + n * f.c * f.plane(), f, win, p0, p1, col.data());
      gemm(false, false, fn, len, rows, T(1), w, rows, col.data(), len, T(0), out, p);
      if (b) {
        for (index_t o = 0; o < fn; ++o) {
          T* dst = out + o * p;
          for (index_t k = 0; k < len; ++k) dst[k] += b[o];
        }
      }
    }
  }
}

template <typename T>
void conv2d_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, const Frame& f,
                     index_t fn, const Window2d& win) {
  check_blas_dims(f, win, fn);
  const index_t kk = win.kh * win.kw;
  const index_t rows = f.c * kk;
  const index_t p = f.out_plane();
  const int threads = omp_get_max_threads();
  const bool parallel = f.n * fn * p * rows > kParallelGrain;

  // db[o] sums dy over images and positions; one thread owns each o, accumulating in double.
#pragma omp parallel for schedule(static) if (parallel && fn > 1)
  for (index_t o = 0; o < fn; ++o) {
    double sum = 0.0;
    for (index_t n = 0; n < f.n; ++n) {
      const T* src = dy + (n * fn + o) * p;
      for (index_t k = 0; k < p; ++k) sum += src[k];
    }
    db[o] = static_cast<T>(sum);
  }

  // dW: each thread accumulates its items into its own partial sum (BLAS beta = 1).
  const Blocks blocks = position_blocks(f, rows, threads);
  const index_t items = f.n * blocks.per_image;
  std::vector<T> partial(static_cast<size_t>(threads) * fn * rows, T(0));
  int team = 1;
#pragma omp parallel if (parallel && items > 1)
  {
    const int t = omp_get_thread_num();
#pragma omp single
    team = omp_get_num_threads();
    T* mine = partial.data() + static_cast<index_t>(t) * fn * rows;
    std::vector<T> col(static_cast<size_t>(rows * blocks.length));
#pragma omp for schedule(static)
    for (index_t item = 0; item < items; ++item) {
      const index_t n = item / blocks.per_image;
      const index_t p0 = (item % blocks.per_image) * blocks.length;
      const index_t p1 = std::min(p, p0 + blocks.length);
      if (p0 >= p1) continue;
      const index_t len = p1 - p0;
      unfold_positions(x + n * f.c * f.plane(), f, win, p0, p1, col.data());
      gemm(false, true, fn, rows, len, T(1), dy + n * fn * p + p0, p, col.data(), len, T(1),
           mine, rows);
    }
  }
  std::copy(partial.begin(), partial.begin() + fn * rows, dw);
  for (int t = 1; t < team; ++t) {
    const T* src = partial.data() + static_cast<index_t>(t) * fn * rows;
    for (index_t k = 0; k < fn * rows; ++k) dw[k] += src[k];
  }

  // dx: items are (image, group of channels), so each item owns the dx planes it writes.
  index_t groups = f.n >= threads ? 1 : ceil_div(threads, std::max<index_t>(f.n, 1));
  groups = std::max(groups, ceil_div(rows * std::max<index_t>(p, 1), kColumnBudget));
  groups = std::clamp<index_t>(groups, 1, std::max<index_t>(f.c, 1));
  const index_t per_group = ceil_div(std::max<index_t>(f.c, 1), groups);
  const index_t dx_items = f.n * groups;
#pragma omp parallel if (parallel && dx_items > 1)
  {
    std::vector<T> dcol(static_cast<size_t>(per_group * kk * p));
#pragma omp for schedule(static)
    for (index_t item = 0; item < dx_items; ++item) {
      const index_t n = item / groups;
      const index_t c0 = (item % groups) * per_group;
      const index_t c1 = std::min(f.c, c0 + per_group);
      if (c0 >= c1) continue;
      // dcol rows of channels [c0, c1) = (W columns of those channels)^T * dy[n].
      gemm(true, false, (c1 - c0) * kk, p, fn, T(1), w + c0 * kk, rows, dy + n * fn * p, p, T(0),
           dcol.data(), p);
      for (index_t c = c0; c < c1; ++c) {
        T* plane = dx + (n * f.c + c) * f.plane();
        std::fill(plane, plane + f.plane(), T(0));
        col2im_channel(dcol.data() + (c - c0) * kk * p, f, win, plane, p, 1);
      }
    }
  }
}

#define DLX_INSTANTIATE_CONV(T)                                                                  \
  template void im2col<T>(const T*, const Frame&, const Window2d&, T*);                          \
  template void col2im<T>(const T*, const Frame&, const Window2d&, T*);                          \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const Frame&, index_t,       \
                                  const Window2d&);                                              \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*, const Frame&,       \
                                   index_t, const Window2d&);
DLX_INSTANTIATE_CONV(float)
DLX_INSTANTIATE_CONV(double)
#undef DLX_INSTANTIATE_CONV

}  // namespace dlx
