// Convolution by two routes. Both split the work into independent items with OpenMP, and
// each thread fills private buffers: the BLAS never starts threads of its own (see blas.h), so
// the cores are never oversubscribed, and the extra memory is bounded by the thread count
// instead of growing with N.
//
// im2col route (any geometry), in the style of PyTorch's ConvolutionMM2d. With P = OH*OW
// positions and CKK = C*KH*KW column rows, an item is either a group of whole images side by
// side (small images: col is (CKK, nb*P)) or a block of positions [p0, p1) of one image (large
// images, or fewer images than threads):
//   forward      Y_item (FN, cols)  = W (FN, CKK) * col (CKK, cols)
//   grad weight  dW_thread         += dY_item * col^T
//   grad input   dcol = W^T * dy[n], then col2im, by (image, channel group) items so that
//                each item owns the dx planes it writes.
//
// Shifted route (stride 1; C >= 4 for the backward pass): one image per item, no column
// matrix, and a register-blocked kernel in place of GEMMs for the forward pass and both
// gradients; see "Stride-1 convolution by shifted slices" below.
//
// Grad-weight partials are summed in thread order, so results repeat bit for bit at a fixed
// thread count.
#include "conv.h"

#include "openmp.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "blas.h"
#include "im2col.h"
#include "shifted_kernel.h"
#include "transpose.h"

namespace dlx::DLX_CPU_LEVEL {
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

// A per-thread buffer of at least `size` elements, kept between calls: OpenMP's threads live
// on, so the next convolution reuses the memory instead of faulting fresh pages in (and no
// time goes into zeroing it). Each thread holds up to four, a few column budgets in all.
template <typename T>
T* scratch(int slot, index_t size) {
  thread_local std::vector<T> buffers[4];
  std::vector<T>& buffer = buffers[slot];
  if (buffer.size() < static_cast<size_t>(size)) {
    buffer = std::vector<T>();  // free first: never hold old and new at once
    buffer.resize(static_cast<size_t>(size));
  }
  return buffer.data();
}

// A 1x1 kernel at stride 1 without padding reads each input once: its column matrix is the
// image itself, (C, H*W), so it needs no unfolding at all.
bool is_pointwise(const Window2d& win) {
  return win.kh == 1 && win.kw == 1 && win.sh == 1 && win.sw == 1 && win.ph == 0 && win.pw == 0;
}

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

// How the work is cut into items. Small images go in groups of whole images, so each GEMM is
// large enough to run near the BLAS's peak; large images go one block of positions at a time.
struct Plan {
  index_t images;     // images per item (1 when positions are blocked)
  index_t blocks;     // position blocks per image (1 when images are grouped)
  index_t length;     // positions per block
  index_t items;
};

Plan plan_items(const Frame& f, const Window2d& win, index_t rows, int threads) {
  const index_t p = std::max<index_t>(f.out_plane(), 1);
  const index_t n = std::max<index_t>(f.n, 1);
  const index_t per_image = rows * p;
  if (per_image * 2 <= kColumnBudget && f.n >= threads && !is_pointwise(win)) {
    index_t images = std::min(kColumnBudget / per_image, ceil_div(n, threads));
    images = std::max<index_t>(images, 1);
    return Plan{images, 1, p, ceil_div(f.n, images)};
  }
  const Blocks b = position_blocks(f, rows, threads);
  return Plan{1, b.per_image, b.length, f.n * b.per_image};
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
Item<T> unfold_item(const Plan& plan, index_t item, const T* x, const Frame& f,
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

// Per-thread partial sums of `size` elements, side by side: adds those of threads 1..team-1
// into thread 0's, in thread order, so the total repeats bit for bit at a fixed thread count.
template <typename T>
void sum_partials(std::vector<T>& partial, int team, index_t size) {
  for (int t = 1; t < team; ++t) {
    const T* src = partial.data() + static_cast<index_t>(t) * size;
    for (index_t i = 0; i < size; ++i) partial[i] += src[i];
  }
}

// -- Stride-1 convolution by shifted slices ------------------------------------------------
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

// Input channels from which this route's backward pass beats im2col's (measured with AVX-512:
// 1.4-2x at C = 4 and 6, 1.2-3.5x slower at C = 1..3). Its forward pass won from C = 1 (2-4x
// at C = 1..4); but the grad weight computes the channels in whole vectors (16 floats) and
// the grad input in whole tiles of rows (8), so with few channels most of that is padding.
constexpr index_t kShiftedBackwardMinChannels = 4;

struct Shifted {
  index_t wp;       // padded row length
  index_t offsets;  // KH * KW
  index_t reach;    // the largest offset, (KH-1)*Wp + KW-1
  index_t wide;     // OH * Wp: positions of the wide output
  index_t span;     // the wide output's columns as the kernel computes them (whole vectors)
  index_t length;   // elements per padded channel: every slice the kernel reads
  index_t inner;    // first position of dXpad inside the padding, PH*Wp
  index_t dspan;    // H*Wp positions of dXpad from `inner`, as the kernel computes them
  index_t dlength;  // elements per row of dY_wide with `reach` zeros on its left
  index_t offset(index_t k, const Window2d& win) const { return (k / win.kw) * wp + k % win.kw; }
};

template <typename T>
Shifted shifted_geometry(const Frame& f, const Window2d& win) {
  const index_t wp = std::max(f.w + win.pw, f.ow);
  const index_t reach = (win.kh - 1) * wp + win.kw - 1;
  const index_t wide = f.oh * wp;
  const index_t span = shifted::padded_columns<T>(wide);
  const index_t inner = win.ph * wp;
  const index_t dspan = shifted::padded_columns<T>(f.h * wp);
  return Shifted{wp, win.kh * win.kw, reach, wide, span, reach + span, inner, dspan,
                 reach + std::max(wide, inner + dspan)};
}

template <typename T>
bool fits_shifted(const Frame& f, const Window2d& win, index_t fn) {
  const Shifted s = shifted_geometry<T>(f, win);
  // Each thread holds a padded image and a wide dy (backward: their gradients too): keep one
  // pair within the column budget, and the rows within the BLAS's 32-bit sizes; larger
  // images go the im2col route, in blocks of positions.
  return f.c * s.length + fn * s.dlength <= kColumnBudget && s.dlength <= kMaxBlasDim &&
         s.length <= kMaxBlasDim;
}

// Whether the product of m rows over positions in `lines` runs of `run`, each position a sum
// of `steps` products (product() computing the positions as `columns` whole vectors), is
// faster tile by positions than tile by rows: when it takes at least 5% fewer multiply-adds
// (a tile by positions ran 5-8% slower for as many of them, on resnet-block), and there are
// enough of them per position to pay for the transposed output (with C = 1 and a 5x5 kernel
// it ran 25% slower for 14% fewer). See shifted::product_by_positions.
template <typename T>
bool tile_by_positions(index_t m, index_t steps, index_t lines, index_t run, index_t columns) {
  if (lines < 1 || run < 1) return false;  // an empty image, whose output is all padding
  constexpr index_t R = shifted::PositionTile<T>::rows;
  const index_t pieces = ceil_div(run, R);
  const index_t positions = lines * pieces * ceil_div(run, pieces);
  const index_t by_positions = shifted::round_up(m, shifted::PositionTile<T>::lanes) * positions;
  const index_t by_rows = shifted::padded_rows<T>(m) * columns;
  return m > shifted::PositionTile<T>::lanes && steps >= 64 && 20 * by_positions < 19 * by_rows;
}

// The algorithms for one convolution: the shifted route at stride 1 for images of at least one
// per thread that fit its buffers, its backward from kShiftedBackwardMinChannels, and each of
// its products tiled by positions where that is faster.
struct ShiftedPlan {
  bool forward, backward;
  bool forward_by_positions, grad_input_by_positions;
};

template <typename T>
ShiftedPlan shifted_plan(const Frame& f, index_t fn, const Window2d& win, int threads) {
  ShiftedPlan plan{false, false, false, false};
  if (is_pointwise(win) || win.sh != 1 || win.sw != 1 || f.c < 1 || f.n < threads ||
      !fits_shifted<T>(f, win, fn)) {
    return plan;
  }
  const Shifted s = shifted_geometry<T>(f, win);
  plan.forward = true;
  plan.backward = f.c >= kShiftedBackwardMinChannels;
  plan.forward_by_positions = tile_by_positions<T>(fn, f.c * s.offsets, f.oh, f.ow, s.span);
  plan.grad_input_by_positions = tile_by_positions<T>(f.c, fn * s.offsets, f.h, f.w, s.dspan);
  return plan;
}

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

template <typename T>
void shifted_forward(const T* x, const T* w, const T* b, T* y, const Frame& f, index_t fn,
                     const Window2d& win, bool by_positions, bool parallel) {
  const Shifted s = shifted_geometry<T>(f, win);
  std::vector<index_t> offsets(static_cast<size_t>(s.offsets));
  for (index_t k = 0; k < s.offsets; ++k) offsets[k] = s.offset(k, win);
  // A_k = W_k (FN, C).
  const auto weight = [&](index_t k, index_t o, index_t c) { return w[(o * f.c + c) * s.offsets + k]; };
  const std::vector<T> packed = by_positions ? shifted::pack_by_positions<T>(s.offsets, fn, f.c, weight)
                                             : shifted::pack<T>(s.offsets, fn, f.c, weight);
  const index_t p = f.out_plane();
  const index_t ld = shifted::padded_width<T>(fn);
#pragma omp parallel if (parallel)
  {
    T* xp = scratch<T>(0, f.c * s.length);
    T* out = scratch<T>(1, by_positions ? p * ld : shifted::padded_rows<T>(fn) * s.span);
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
void shifted_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, const Frame& f,
                      index_t fn, const Window2d& win, bool by_positions, bool parallel) {
  const Shifted s = shifted_geometry<T>(f, win);
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
  std::vector<T> partial(static_cast<size_t>(omp_get_max_threads()) * weights, T(0));
  int team = 1;
#pragma omp parallel if (parallel)
  {
#pragma omp single
    team = omp_get_num_threads();
    T* mine = partial.data() + static_cast<index_t>(omp_get_thread_num()) * weights;
    T* xt = scratch<T>(0, s.length * channels);
    T* padded = scratch<T>(1, filters * s.dlength);
    T* dxp = scratch<T>(2, !dx ? 0 : by_positions ? f.plane() * ld : shifted::padded_rows<T>(f.c) * s.dspan);
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

}  // namespace

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const Frame& f, index_t fn,
                    const Window2d& win) {
  check_blas_dims(f, win, fn);
  const index_t rows = f.c * win.kh * win.kw;
  const index_t p = f.out_plane();
  if (f.n == 0 || p == 0 || fn == 0) return;
  if (rows == 0) {  // no input channels: every output is its bias
    for (index_t i = 0; i < f.n * fn; ++i) std::fill(y + i * p, y + (i + 1) * p, b ? b[i % fn] : T(0));
    return;
  }
  const bool pointwise = is_pointwise(win);
  const int threads = omp_get_max_threads();
  const ShiftedPlan shifted = shifted_plan<T>(f, fn, win, threads);
  if (shifted.forward) {
    shifted_forward(x, w, b, y, f, fn, win, shifted.forward_by_positions,
                    f.n > 1 && f.n * fn * p * rows > kParallelGrain);
    return;
  }
  const Plan plan = plan_items(f, win, rows, threads);
  const bool parallel = plan.items > 1 && f.n * fn * p * rows > kParallelGrain;

#pragma omp parallel if (parallel)
  {
    T* col = scratch<T>(0, pointwise ? 0 : rows * plan.images * plan.length);
    T* out = scratch<T>(1, plan.images > 1 ? fn * plan.images * p : 0);
#pragma omp for schedule(static)
    for (index_t item = 0; item < plan.items; ++item) {
      const Item<T> it = unfold_item(plan, item, x, f, win, pointwise, col);
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
      for (index_t i = 0; i < it.nb; ++i) {
        for (index_t o = 0; o < fn; ++o) {
          T* dst = y + ((it.n0 + i) * fn + o) * p;
          const T* src = out + o * width + i * p;
          const T bias = b ? b[o] : T(0);
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
  const int threads = omp_get_max_threads();
  const bool parallel = f.n * fn * p * rows > kParallelGrain;
  const bool pointwise = is_pointwise(win);

  // db[o] sums dy over images and positions; one thread owns each o, accumulating in double
  // in vector lanes (a single chain of double additions would be latency-bound).
#pragma omp parallel for schedule(static) if (parallel && fn > 1)
  for (index_t o = 0; o < fn; ++o) {
    double sum = 0.0;
    for (index_t n = 0; n < f.n; ++n) {
      const T* src = dy + (n * fn + o) * p;
#pragma omp simd reduction(+ : sum)
      for (index_t k = 0; k < p; ++k) sum += src[k];
    }
    db[o] = static_cast<T>(sum);
  }
  // With no images, positions, filters or input channels, dx and dW are all zeros (or empty).
  if (f.n == 0 || p == 0 || fn == 0 || rows == 0) {
    std::fill(dw, dw + fn * rows, T(0));
    if (dx) std::fill(dx, dx + f.n * f.c * f.plane(), T(0));
    return;
  }

  const ShiftedPlan shifted = shifted_plan<T>(f, fn, win, threads);
  if (shifted.backward) {
    shifted_backward(dy, x, w, dx, dw, f, fn, win, shifted.grad_input_by_positions,
                     parallel && f.n > 1);
    return;
  }

  // dW = sum over items of dY_item * col_item^T. Each thread accumulates into its own partial
  // sum (BLAS beta = 1); the partials are added in thread order at the end.
  std::vector<T> partial(static_cast<size_t>(threads) * fn * rows, T(0));
  int team = 1;
  const Plan plan = plan_items(f, win, rows, threads);
#pragma omp parallel if (parallel && plan.items > 1)
  {
#pragma omp single
    team = omp_get_num_threads();
    T* mine = partial.data() + static_cast<index_t>(omp_get_thread_num()) * fn * rows;
    T* col = scratch<T>(0, pointwise ? 0 : rows * plan.images * plan.length);
    T* grad_out = scratch<T>(1, plan.images > 1 ? fn * plan.images * p : 0);
#pragma omp for schedule(static)
    for (index_t item = 0; item < plan.items; ++item) {
      const Item<T> it = unfold_item(plan, item, x, f, win, pointwise, col);
      if (it.len == 0) continue;
      // dY of the item as (FN, width): a block of one image is a slice of dy already; a group
      // of images is gathered side by side, as its columns are.
      const T* grad = dy + it.n0 * fn * p + it.p0;
      index_t grad_ld = p;
      if (plan.images > 1) {
        grad_ld = it.width();
        for (index_t i = 0; i < it.nb; ++i) {
          for (index_t o = 0; o < fn; ++o) {
            std::memcpy(grad_out + o * grad_ld + i * p, dy + ((it.n0 + i) * fn + o) * p,
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

  if (!dx) return;
  // dx: dcol = W^T * dY, folded back with col2im. Items are (image, group of channels),
  // so each item owns the dx planes it writes.
  index_t groups = f.n >= threads ? 1 : ceil_div(threads, std::max<index_t>(f.n, 1));
  groups = std::max(groups, ceil_div(rows * std::max<index_t>(p, 1), kColumnBudget));
  groups = std::clamp<index_t>(groups, 1, std::max<index_t>(f.c, 1));
  const index_t per_group = ceil_div(std::max<index_t>(f.c, 1), groups);
  const index_t dx_items = f.n * groups;
#pragma omp parallel if (parallel && dx_items > 1)
  {
    T* dcol = scratch<T>(1, per_group * kk * p);
#pragma omp for schedule(static)
    for (index_t item = 0; item < dx_items; ++item) {
      const index_t n = item / groups;
      const index_t c0 = (item % groups) * per_group;
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

template <typename T>
ConvAlgorithms conv2d_algorithms(const Frame& f, index_t fn, const Window2d& win) {
  const char* unfolded = is_pointwise(win) ? "pointwise" : "im2col";
  const ShiftedPlan plan = shifted_plan<T>(f, fn, win, omp_get_max_threads());
  const char* input = plan.grad_input_by_positions ? "shifted by positions" : "shifted";
  return ConvAlgorithms{
      plan.forward ? (plan.forward_by_positions ? "shifted by positions" : "shifted") : unfolded,
      plan.backward ? "shifted" : unfolded, plan.backward ? input : unfolded};
}

#define DLX_INSTANTIATE_CONV(T)                                                                  \
  template void im2col<T>(const T*, const Frame&, const Window2d&, T*);                          \
  template void col2im<T>(const T*, const Frame&, const Window2d&, T*);                          \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const Frame&, index_t,       \
                                  const Window2d&);                                              \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*, const Frame&,       \
                                   index_t, const Window2d&);                                    \
  template ConvAlgorithms conv2d_algorithms<T>(const Frame&, index_t, const Window2d&);
DLX_INSTANTIATE_CONV(float)
DLX_INSTANTIATE_CONV(double)
#undef DLX_INSTANTIATE_CONV

}  // namespace dlx::DLX_CPU_LEVEL
