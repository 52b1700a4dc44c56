// GEMM convolution in the style of Caffe's and PyTorch's ConvolutionMM2d: the batch is cut into
// blocks of images whose columns fit a fixed budget, so the extra memory does not grow with N.
// For a block of B images the column matrix is (C*KH*KW, B*OH*OW), with the images side by side:
//   forward        Y_blk  (FN, B*P)      = W (FN, CKK) * col (CKK, B*P)
//   grad weight    dW    += dY_blk (FN, B*P) * col^T
//   grad input     dcol   = W^T * dY_blk, then col2im per image and channel.
// OpenMP splits the unfolding and copying over (image, channel); the GEMM runs on OpenBLAS's
// threads. The two never run at the same time, so the cores are not oversubscribed.
#include "conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "blas.h"
#include "im2col.h"

namespace dlx {
namespace {

// Elements of one column block; 4M floats is 16 MiB, well inside L3-plus-DRAM comfort while
// leaving each GEMM large enough for the BLAS to reach full speed.
constexpr index_t kColumnBudget = index_t(1) << 22;

// Loops smaller than this stay on one thread: spawning costs more than it saves.
constexpr index_t kParallelGrain = index_t(1) << 14;

index_t images_per_block(const Frame& f, const Window2d& win) {
  const index_t rows = f.c * win.kh * win.kw;
  const index_t per_image = std::max<index_t>(rows * f.out_plane(), 1);
  index_t block = std::clamp<index_t>(kColumnBudget / per_image, 1, std::max<index_t>(f.n, 1));
  // Each GEMM dimension must fit the BLAS's 32-bit integers.
  block = std::min<index_t>(block, std::max<index_t>(kMaxBlasDim / std::max<index_t>(f.out_plane(), 1), 1));
  return block;
}

void check_blas_dims(const Frame& f, const Window2d& win, index_t fn) {
  const index_t rows = f.c * win.kh * win.kw;
  if (rows > kMaxBlasDim || f.out_plane() > kMaxBlasDim || fn > kMaxBlasDim) {
    fail("convolution too large for 32-bit BLAS: C*KH*KW=", rows, ", OH*OW=", f.out_plane(),
         ", FN=", fn);
  }
}

// Unfolds images [n0, n0 + nb) into col (C*KH*KW, nb*P).
template <typename T>
void unfold_block(const T* x, const Frame& f, const Window2d& win, index_t n0, index_t nb, T* col) {
  const index_t kk = win.kh * win.kw;
  const index_t ld = nb * f.out_plane();
#pragma omp parallel for collapse(2) schedule(static) if (nb * f.c * kk * f.out_plane() > kParallelGrain)
  for (index_t i = 0; i < nb; ++i) {
    for (index_t c = 0; c < f.c; ++c) {
      im2col_channel(x + ((n0 + i) * f.c + c) * f.plane(), f, win,
                     col + c * kk * ld + i * f.out_plane(), ld, 1);
    }
  }
}

}  // namespace

template <typename T>
void im2col(const T* x, const Frame& f, const Window2d& win, T* col) {
  const index_t kk = win.kh * win.kw;
  const index_t row_len = f.c * kk;
#pragma omp parallel for collapse(2) schedule(static) if (f.n * row_len * f.out_plane() > kParallelGrain)
  for (index_t n = 0; n < f.n; ++n) {
    for (index_t c = 0; c < f.c; ++c) {
      im2col_channel(x + (n * f.c + c) * f.plane(), f, win,
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

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const Frame& f, index_t fn,
                    const Window2d& win) {
  check_blas_dims(f, win, fn);
  const index_t rows = f.c * win.kh * win.kw;
  const index_t p = f.out_plane();
  const index_t block = images_per_block(f, win);
  std::vector<T> col(static_cast<size_t>(rows * block * p));
  std::vector<T> out(block > 1 ? static_cast<size_t>(fn * block * p) : 0);

  for (index_t n0 = 0; n0 < f.n; n0 += block) {
    const index_t nb = std::min(block, f.n - n0);
    const index_t ld = nb * p;
    unfold_block(x, f, win, n0, nb, col.data());
    // A block of one image is already in NCHW order: write straight into y.
    T* gemm_out = nb == 1 ? y + n0 * fn * p : out.data();
    gemm(false, false, fn, ld, rows, T(1), w, rows, col.data(), ld, T(0), gemm_out, ld);

#pragma omp parallel for collapse(2) schedule(static) if (nb * fn * p > kParallelGrain)
    for (index_t i = 0; i < nb; ++i) {
      for (index_t o = 0; o < fn; ++o) {
        T* dst = y + ((n0 + i) * fn + o) * p;
        const T* src = gemm_out + o * ld + i * p;
        const T bias = b ? b[o] : T(0);
        if (nb == 1) {
          if (b) for (index_t k = 0; k < p; ++k) dst[k] += bias;
        } else {
          for (index_t k = 0; k < p; ++k) dst[k] = src[k] + bias;
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
  const index_t block = images_per_block(f, win);
  std::vector<T> col(static_cast<size_t>(rows * block * p));
  std::vector<T> grad_out(block > 1 ? static_cast<size_t>(fn * block * p) : 0);
  std::fill(dw, dw + fn * rows, T(0));

  // db[o] sums dy over images and positions; one thread owns each o, accumulating in double.
#pragma omp parallel for schedule(static) if (f.n * fn * p > kParallelGrain)
  for (index_t o = 0; o < fn; ++o) {
    double sum = 0.0;
    for (index_t n = 0; n < f.n; ++n) {
      const T* src = dy + (n * fn + o) * p;
      for (index_t k = 0; k < p; ++k) sum += src[k];
    }
    db[o] = static_cast<T>(sum);
  }

  for (index_t n0 = 0; n0 < f.n; n0 += block) {
    const index_t nb = std::min(block, f.n - n0);
    const index_t ld = nb * p;
    unfold_block(x, f, win, n0, nb, col.data());

    // dY of the block as (FN, nb*P); a single image already has that layout.
    const T* dyb = dy + n0 * fn * p;
    if (nb > 1) {
#pragma omp parallel for collapse(2) schedule(static) if (nb * fn * p > kParallelGrain)
      for (index_t i = 0; i < nb; ++i) {
        for (index_t o = 0; o < fn; ++o) {
          std::memcpy(grad_out.data() + o * ld + i * p, dy + ((n0 + i) * fn + o) * p,
                      static_cast<size_t>(p) * sizeof(T));
        }
      }
      dyb = grad_out.data();
    }

    // Blocks are reduced in a fixed order with beta = 1, so dW is the same from run to run.
    gemm(false, true, fn, rows, ld, T(1), dyb, ld, col.data(), ld, T(1), dw, rows);
    // The columns are no longer needed: reuse their buffer for dcol.
    gemm(true, false, rows, ld, fn, T(1), w, rows, dyb, ld, T(0), col.data(), ld);

#pragma omp parallel for collapse(2) schedule(static) if (nb * rows * p > kParallelGrain)
    for (index_t i = 0; i < nb; ++i) {
      for (index_t c = 0; c < f.c; ++c) {
        T* plane = dx + ((n0 + i) * f.c + c) * f.plane();
        std::fill(plane, plane + f.plane(), T(0));
        col2im_channel(col.data() + c * kk * ld + i * p, f, win, plane, ld, 1);
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
