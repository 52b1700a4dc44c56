// The im2col route of the convolution, in the style of PyTorch's ConvolutionMM2d, for every
// geometry: each item (a group of whole images, or a block of positions of one image; see
// conv_plan.h) is unfolded into its thread's column buffer and multiplied by the weights in
// one single-threaded GEMM:
//   forward      Y_item (FN, cols)  = W (FN, CKK) * col (CKK, cols)
//   grad weight  dW_thread         += dY_item * col^T, summed over the threads at the end
//   grad input   dcol = W^T * dy[n], then col2im, by (image, channel group) items so that
//                each item owns the dx planes it writes.
// A pointwise kernel (1x1, stride 1, no padding) skips the unfolding: its column matrix is the
// image itself, (C, H*W). Also here: the book-layout im2col and col2im of dlx.ops.
#include <algorithm>
#include <cstring>
#include <vector>

#include "blas.h"
#include "conv.h"
#include "conv_routes.h"
#include "im2col.h"

namespace dlx::DLX_CPU_LEVEL {

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

// Unfolds positions [p0, p1) of image x (C, H, W) into col rows of length ld, starting at
// column offset 0 of col.
template <typename T>
void unfold_positions(const T* x, const Frame& f, const Window2d& win, index_t p0, index_t p1,
                      T* col, index_t ld) {
  const index_t kk = win.kh * win.kw;
  for (index_t c = 0; c < f.c; ++c) {
    im2col_channel(x + c * f.plane(), f, win, p0, p1, col + c * kk * ld, ld, 1);
  }
}

// Images [n0, n0 + nb) side by side: col (CKK, nb * P), image i in columns [i * P, (i+1) * P).
template <typename T>
void unfold_images(const T* x, const Frame& f, const Window2d& win, index_t n0, index_t nb, T* col) {
  const index_t p = f.out_plane();
  for (index_t i = 0; i < nb; ++i) {
    unfold_positions(x + (n0 + i) * f.c * f.plane(), f, win, 0, p, col + i * p, nb * p);
  }
}

// The columns of one work item: images [n0, n0 + nb) side by side (p0 = 0, len = P), or
// positions [p0, p0 + len) of image n0 (nb = 1). cols is a (CKK, nb * len) matrix with
// leading dimension ld: the unfolded buffer, or the image itself for a pointwise kernel.
template <typename T>
struct Item {
  index_t n0, nb, p0, len;
  const T* cols;
  index_t ld;
  index_t width() const { return nb * len; }
};

template <typename T>
Item<T> unfold_item(const ProductPlan& plan, index_t item, const T* x, const Frame& f,
                    const Window2d& win, bool pointwise, T* col) {
  const index_t p = f.out_plane();
  if (plan.images > 1) {
    const index_t n0 = item * plan.images;
    const index_t nb = std::min(plan.images, f.n - n0);
    unfold_images(x, f, win, n0, nb, col);
    return Item<T>{n0, nb, 0, p, col, nb * p};
  }
  const index_t n = item / plan.blocks;
  const index_t p0 = (item % plan.blocks) * plan.length;
  const index_t len = std::max<index_t>(std::min(p, p0 + plan.length) - p0, 0);
  const T* image = x + n * f.c * f.plane();
  if (pointwise) return Item<T>{n, 1, p0, len, image + p0, p};
  if (len > 0) unfold_positions(image, f, win, p0, p0 + len, col, len);
  return Item<T>{n, 1, p0, len, col, len};
}

}  // namespace

template <typename T>
void unfolded_forward(const ProductPlan& plan, const T* x, const T* w, const T* b, T* y,
                      const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace) {
  const index_t rows = f.c * win.kh * win.kw;
  const index_t p = f.out_plane();
  const bool pointwise = plan.algorithm == ConvAlgorithm::pointwise;
#pragma omp parallel if (plan.parallel)
  {
    T* col = workspace.mine();  // the item's columns
    T* out = col + (pointwise ? 0 : region<T>(rows * plan.images * plan.length));  // a group's output
#pragma omp for schedule(static)
    for (index_t i = 0; i < plan.items; ++i) {
      const Item<T> it = unfold_item(plan, i, x, f, win, pointwise, col);
      if (it.len == 0) continue;
      if (plan.images == 1) {
        // One block of positions of one image: the GEMM writes straight into y.
        T* dst = y + it.n0 * fn * p + it.p0;
        gemm(false, false, fn, it.len, rows, T(1), w, rows, it.cols, it.ld, T(0), dst, p);
        if (b) {
          for (index_t o = 0; o < fn; ++o) {
            for (index_t k = 0; k < it.len; ++k) dst[o * p + k] += b[o];
          }
        }
        continue;
      }
      // A group of whole images: one GEMM into a buffer, then each image's rows into y.
      const index_t width = it.width();
      gemm(false, false, fn, width, rows, T(1), w, rows, it.cols, it.ld, T(0), out, width);
      for (index_t k = 0; k < it.nb; ++k) {
        for (index_t o = 0; o < fn; ++o) {
          T* dst = y + ((it.n0 + k) * fn + o) * p;
          const T* src = out + o * width + k * p;
          const T bias = b ? b[o] : T(0);
          for (index_t q = 0; q < p; ++q) dst[q] = src[q] + bias;
        }
      }
    }
  }
}

// dW = sum over items of dY_item * col_item^T. Each thread accumulates into its own partial
// sum (BLAS beta = 1); the partials are added in thread order at the end.
template <typename T>
void unfolded_grad_weight(const ProductPlan& plan, const T* dy, const T* x, T* dw,
                          const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace) {
  const index_t rows = f.c * win.kh * win.kw;
  const index_t p = f.out_plane();
  const bool pointwise = plan.algorithm == ConvAlgorithm::pointwise;
  std::vector<T> partial(static_cast<size_t>(omp_get_max_threads()) * fn * rows, T(0));
  int team = 1;
#pragma omp parallel if (plan.parallel)
  {
#pragma omp single
    team = omp_get_num_threads();
    T* mine = partial.data() + static_cast<index_t>(omp_get_thread_num()) * fn * rows;
    T* col = workspace.mine();                      // the item's columns
    T* grad_out = col + (pointwise ? 0 : region<T>(rows * plan.images * plan.length));  // a group's dy
#pragma omp for schedule(static)
    for (index_t i = 0; i < plan.items; ++i) {
      const Item<T> it = unfold_item(plan, i, x, f, win, pointwise, col);
      if (it.len == 0) continue;
      // dY of the item as (FN, width): a block of one image is a slice of dy already; a group
      // of images is gathered side by side, as its columns are.
      const T* grad = dy + it.n0 * fn * p + it.p0;
      index_t grad_ld = p;
      if (plan.images > 1) {
        grad_ld = it.width();
        for (index_t k = 0; k < it.nb; ++k) {
          for (index_t o = 0; o < fn; ++o) {
            std::memcpy(grad_out + o * grad_ld + k * p, dy + ((it.n0 + k) * fn + o) * p,
                        static_cast<size_t>(p) * sizeof(T));
          }
        }
        grad = grad_out;
      }
      gemm(false, true, fn, rows, it.width(), T(1), grad, grad_ld, it.cols, it.ld, T(1), mine, rows);
    }
  }
  sum_partials(partial, team, fn * rows);
  std::copy(partial.begin(), partial.begin() + fn * rows, dw);
}

// dx: dcol = W^T * dY, folded back with col2im, an item a group of channels of one image.
template <typename T>
void unfolded_grad_input(const ProductPlan& plan, const T* dy, const T* w, T* dx,
                         const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace) {
  const index_t kk = win.kh * win.kw;
  const index_t rows = f.c * kk;
  const index_t p = f.out_plane();
  const index_t groups = plan.blocks, per_group = plan.length;
#pragma omp parallel if (plan.parallel)
  {
    T* dcol = workspace.mine();  // the group's column gradients
#pragma omp for schedule(static)
    for (index_t i = 0; i < plan.items; ++i) {
      const index_t n = i / groups;
      const index_t c0 = (i % groups) * per_group;
      const index_t c1 = std::min(f.c, c0 + per_group);
      if (c0 >= c1) continue;
      // The dcol rows of channels [c0, c1) = (W's columns of those channels)^T * dy[n].
      gemm(true, false, (c1 - c0) * kk, p, fn, T(1), w + c0 * kk, rows, dy + n * fn * p, p,
           T(0), dcol, p);
      for (index_t c = c0; c < c1; ++c) {
        T* plane = dx + (n * f.c + c) * f.plane();
        std::fill(plane, plane + f.plane(), T(0));
        col2im_channel(dcol + (c - c0) * kk * p, f, win, plane, p, 1);
      }
    }
  }
}

#define DLX_INSTANTIATE_UNFOLDED(T)                                                             \
  template void im2col<T>(const T*, const Frame&, const Window2d&, T*);                         \
  template void col2im<T>(const T*, const Frame&, const Window2d&, T*);                         \
  template void unfolded_forward<T>(const ProductPlan&, const T*, const T*, const T*, T*,       \
                                    const Frame&, index_t, const Window2d&, const ThreadParts<T>&);                \
  template void unfolded_grad_weight<T>(const ProductPlan&, const T*, const T*, T*,             \
                                        const Frame&, index_t, const Window2d&, const ThreadParts<T>&);            \
  template void unfolded_grad_input<T>(const ProductPlan&, const T*, const T*, T*,              \
                                       const Frame&, index_t, const Window2d&, const ThreadParts<T>&);
DLX_INSTANTIATE_UNFOLDED(float)
DLX_INSTANTIATE_UNFOLDED(double)
#undef DLX_INSTANTIATE_UNFOLDED

}  // namespace dlx::DLX_CPU_LEVEL
