// The shifted route of the convolution, for stride 1: the forward pass and both gradients by
// shifted slices of the zero-padded image, in the register-blocked kernels of
// shifted_kernel.h, one image an item. Its plan (conv_plan.cpp) chose the tiles and sized the
// workspace these executors carve their buffers from.
//
// At stride 1 the unfolding can be skipped. Zero-pad one image into a (C, Hp*Wp) buffer, Hp
// = H + 2*PH, each row PW zeros and then the W inputs: Wp = W + PW, as the zeros at the start
// of a row are also the right-hand padding of the row before (Wp = OW if that is more, when
// PW >= KW). Compute each output row Wp positions wide (the last Wp - OW of them wrap around
// into the next row and are thrown away). Then the inputs that kernel offset (ki, kj) reads
// at every output position form one contiguous slice of each channel, starting at
// off_k = ki*Wp + kj, and
//   forward      Y_wide (FN, OH*Wp)  = sum over offsets k of W_k (FN, C) * Xpad[:, k slice]
//   grad weight  dW_k (FN, C)       += dY_wide * Xpad[:, k slice]^T
//   grad input   dXpad (C, Hp*Wp)    = sum over offsets k of W_k^T (C, FN) * dY_wide shifted
//                                      right by off_k
// where W_k is the (FN, C) matrix of the weights at offset k and dY_wide is dy with zeros in
// the thrown-away columns. All three run in the register-blocked kernels of shifted_kernel.h,
// and none reads a column matrix: the image is read in place of KH*KW copies of it. The grad
// weight leaves the thrown-away columns out of its sum; the forward pass and the grad input
// compute them unless tiled by positions (see tile_by_positions).
#include <algorithm>
#include <cstring>
#include <vector>

#include "conv_plan.h"
#include "conv_routes.h"
#include "shifted_kernel.h"
#include "transpose.h"

namespace dlx::DLX_CPU_LEVEL {
namespace {

// Image x (C, H, W) into the zero-padded (C, length) buffer xp.
template <typename T>
void pad_image(const T* x, const Frame& f, const Window2d& win, const Shifted& s, T* xp) {
  for (index_t c = 0; c < f.c; ++c) {
    T* dst = xp + c * s.length;
    std::fill(dst, dst + s.length, T(0));
    for (index_t h = 0; h < f.h; ++h) {
      std::memcpy(dst + (h + win.ph) * s.wp + win.pw, x + (c * f.h + h) * f.w,
                  static_cast<size_t>(f.w) * sizeof(T));
    }
  }
}

// dy (FN, OH, OW) of one image into rows of dlength: `reach` zeros, then the wide layout
// (OH*Wp, zeros in the extra columns), then zeros.
template <typename T>
void widen(const T* dy, const Frame& f, index_t fn, const Shifted& s, T* padded) {
  for (index_t o = 0; o < fn; ++o) {
    T* row = padded + o * s.dlength;
    std::fill(row, row + s.reach, T(0));
    for (index_t oh = 0; oh < f.oh; ++oh) {
      T* dst = row + s.reach + oh * s.wp;
      std::memcpy(dst, dy + (o * f.oh + oh) * f.ow, static_cast<size_t>(f.ow) * sizeof(T));
      std::fill(dst + f.ow, dst + s.wp, T(0));
    }
    std::fill(row + s.reach + s.wide, row + s.dlength, T(0));
  }
}

// Image x (C, H, W), zero-padded, position-major: (length, ld), a row of ld elements per
// position, the channels and then zeros. This is the grad weight's operand.
template <typename T>
void pad_image_transposed(const T* x, const Frame& f, const Window2d& win, const Shifted& s,
                          index_t ld, T* xt) {
  std::fill(xt, xt + s.length * ld, T(0));
  // A row of the image at a time, so that its rows of xt stay in the L1 cache while every
  // channel is written into them: the (C, W) matrix of row h into (W, C).
  for (index_t h = 0; h < f.h; ++h) {
    transpose(x + h * f.w, f.plane(), f.c, f.w, xt + ((h + win.ph) * s.wp + win.pw) * ld, ld);
  }
}

}  // namespace

template <typename T>
void shifted_forward(const ProductPlan& plan, const T* x, const T* w, const T* b, T* y,
                     const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace) {
  const Shifted s = shifted_geometry<T>(f, win);
  const bool by_positions = plan.algorithm == ConvAlgorithm::shifted_by_positions;
  std::vector<index_t> offsets(static_cast<size_t>(s.offsets));
  for (index_t k = 0; k < s.offsets; ++k) offsets[k] = s.offset(k, win);
  // A_k = W_k (FN, C).
  const auto weight = [&](index_t k, index_t o, index_t c) { return w[(o * f.c + c) * s.offsets + k]; };
  const std::vector<T> packed = by_positions ? shifted::pack_by_positions<T>(s.offsets, fn, f.c, weight)
                                             : shifted::pack<T>(s.offsets, fn, f.c, weight);
  const index_t p = f.out_plane();
  const index_t ld = shifted::padded_width<T>(fn);
#pragma omp parallel if (plan.parallel)
  {
    T* xp = workspace.mine();  // the padded image
    T* out = xp + region<T>(f.c * s.length);                      // the product, wide or by positions
#pragma omp for schedule(static)
    for (index_t n = 0; n < f.n; ++n) {
      pad_image(x + n * f.c * f.plane(), f, win, s, xp);
      if (by_positions) {
        shifted::product_by_positions(packed.data(), fn, f.c, xp, s.length, offsets.data(),
                                      s.offsets, f.oh, f.ow, s.wp, out, ld);
        transpose(out, ld, p, fn, y + n * fn * p, p, b);
        continue;
      }
      shifted::product(packed.data(), fn, f.c, xp, s.length, offsets.data(), s.offsets, s.wide,
                       out, s.span);
      for (index_t o = 0; o < fn; ++o) {
        const T bias = b ? b[o] : T(0);
        for (index_t oh = 0; oh < f.oh; ++oh) {
          const T* src = out + o * s.span + oh * s.wp;
          T* dst = y + (n * fn + o) * p + oh * f.ow;
          for (index_t ow = 0; ow < f.ow; ++ow) dst[ow] = src[ow] + bias;
        }
      }
    }
  }
}

// dx (unless null) and dw; db is done by the caller. Both gradients run in the kernel of
// shifted_kernel.h: dx as the forward pass does, and dW_k (FN, C) += dY_wide * Xslice^T with
// the image position-major, so that the filters are the kernel's rows and the channels its
// vectors. Each image's dY_wide serves both. dW partials are per thread and summed in thread
// order.
template <typename T>
void shifted_backward(const ConvPlan& plan, const T* dy, const T* x, const T* w, T* dx, T* dw,
                      const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace) {
  const Shifted s = shifted_geometry<T>(f, win);
  const bool by_positions = plan.grad_input.algorithm == ConvAlgorithm::shifted_by_positions;
  // dXpad[:, q] takes dY_wide[:, q - off_k] from offset k: that is column q + reach - off_k
  // of dY_wide with `reach` zeros on its left.
  std::vector<index_t> offsets(static_cast<size_t>(s.offsets));
  std::vector<index_t> forward_offsets(static_cast<size_t>(s.offsets));
  for (index_t k = 0; k < s.offsets; ++k) {
    forward_offsets[k] = s.offset(k, win);
    offsets[k] = s.reach - forward_offsets[k];
  }
  // A_k = W_k^T (C, FN).
  const auto weight = [&](index_t k, index_t c, index_t o) { return w[(o * f.c + c) * s.offsets + k]; };
  const std::vector<T> packed =
      !dx ? std::vector<T>()
          : by_positions ? shifted::pack_by_positions<T>(s.offsets, f.c, fn, weight)
                         : shifted::pack<T>(s.offsets, f.c, fn, weight);
  const index_t ld = shifted::padded_width<T>(f.c);
  const index_t filters = shifted::padded_rows<T>(fn);
  const index_t channels = shifted::padded_columns<T>(f.c);
  const index_t weights = s.offsets * filters * channels;
  std::vector<T> partial(static_cast<size_t>(plan.threads) * weights, T(0));
  int team = 1;
#pragma omp parallel if (plan.grad_weight.parallel)
  {
#pragma omp single
    team = omp_get_num_threads();
    T* mine = partial.data() + static_cast<index_t>(omp_get_thread_num()) * weights;
    T* xt = workspace.mine();  // the image, position-major
    T* padded = xt + region<T>(s.length * channels);               // dy, widened
    T* dxp = padded + region<T>(filters * s.dlength);              // the grad input, wide or by positions
    // The kernel's rows past the last filter read zeros.
    std::fill(padded + fn * s.dlength, padded + filters * s.dlength, T(0));
#pragma omp for schedule(static)
    for (index_t n = 0; n < f.n; ++n) {
      const T* grad = dy + n * fn * f.out_plane();
      pad_image_transposed(x + n * f.c * f.plane(), f, win, s, channels, xt);
      widen(grad, f, fn, s, padded);
      shifted::add_shifted_products(padded + s.reach, s.dlength, xt, channels,
                                    forward_offsets.data(), s.offsets, f.oh, f.ow, s.wp, filters,
                                    channels, mine);
      if (!dx) continue;
      // Only the positions of dXpad inside the padding: the padding's gradient is thrown away.
      if (by_positions) {
        shifted::product_by_positions(packed.data(), f.c, fn, padded + s.inner + win.pw,
                                      s.dlength, offsets.data(), s.offsets, f.h, f.w, s.wp, dxp,
                                      ld);
        transpose(dxp, ld, f.plane(), f.c, dx + n * f.c * f.plane(), f.plane());
        continue;
      }
      shifted::product(packed.data(), f.c, fn, padded + s.inner, s.dlength, offsets.data(),
                       s.offsets, f.h * s.wp, dxp, s.dspan);
      for (index_t c = 0; c < f.c; ++c) {
        for (index_t h = 0; h < f.h; ++h) {
          std::memcpy(dx + ((n * f.c + c) * f.h + h) * f.w, dxp + c * s.dspan + h * s.wp + win.pw,
                      static_cast<size_t>(f.w) * sizeof(T));
        }
      }
    }
  }
  sum_partials(partial, team, weights);
  for (index_t o = 0; o < fn; ++o) {
    for (index_t c = 0; c < f.c; ++c) {
      for (index_t k = 0; k < s.offsets; ++k) {
        dw[(o * f.c + c) * s.offsets + k] = partial[(k * filters + o) * channels + c];
      }
    }
  }
}

#define DLX_INSTANTIATE_SHIFTED(T)                                                             \
  template void shifted_forward<T>(const ProductPlan&, const T*, const T*, const T*, T*,         \
                                   const Frame&, index_t, const Window2d&, const ThreadParts<T>&);                  \
  template void shifted_backward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*,       \
                                    const Frame&, index_t, const Window2d&, const ThreadParts<T>&);
DLX_INSTANTIATE_SHIFTED(float)
DLX_INSTANTIATE_SHIFTED(double)
#undef DLX_INSTANTIATE_SHIFTED

}  // namespace dlx::DLX_CPU_LEVEL
