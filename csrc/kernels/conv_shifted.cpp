// The shifted route of the convolution, for stride 1 and (by phases, below) stride 2: the
// forward pass and both gradients by shifted slices of the zero-padded image, in the
// register-blocked kernels of shifted_kernel.h, one image an item. Its plan (conv_plan.cpp)
// chose the tiles and sized the workspace these executors carve their buffers from.
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
//
// At stride 2 (or any stride SH x SW) the padded image is first split into its stride phases:
// phase (a, b) holds the inputs at rows a, a + SH, ... and columns b, b + SW, ... Kernel
// offset (ki, kj) reads, for every output position, one phase, (ki % SH, kj % SW), at the
// shift (ki / SH, kj / SW), so each phase is the input of a stride-1 convolution with the
// offsets that fall in it, and the three products are those above with each offset's slice
// taken from its phase. The grad input is computed phase by phase (each from its own
// offsets) and interleaved back into dx.
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

// The run of a phase's rows (or columns) that hold inputs: phase index i holds padded
// coordinate i * stride + phase, input coordinate i * stride + phase - pad, which must lie in
// [0, size); and i < count, as inputs past the last that an output reads are left out.
struct PhaseRun {
  index_t first, end, input;  // phase indices [first, end); `input` is first's input coordinate
};

inline PhaseRun phase_run(index_t phase, index_t stride, index_t pad, index_t size,
                          index_t count) {
  const index_t shift = phase - pad;  // input coordinate of phase index 0
  const index_t first = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
  const index_t end = std::min(count, (size - shift + stride - 1) / stride);
  return PhaseRun{first, std::max(first, end), first * stride + shift};
}

// Image x (C, H, W), zero-padded and split into its stride phases: xp holds phase by phase a
// (C, length) buffer of `rows` rows of wp. Inputs that no output reads are left out.
template <typename T>
void split_phases(const T* x, const Frame& f, const Window2d& win, const Shifted& s, T* xp) {
  std::fill(xp, xp + s.phases * f.c * s.length, T(0));
  for (index_t a = 0; a < win.sh; ++a) {
    const PhaseRun rows = phase_run(a, win.sh, win.ph, f.h, s.rows);
    for (index_t b = 0; b < win.sw; ++b) {
      const PhaseRun cols = phase_run(b, win.sw, win.pw, f.w, s.wp);
      T* phase = xp + (a * win.sw + b) * f.c * s.length;
      for (index_t c = 0; c < f.c; ++c) {
        for (index_t i = rows.first, h = rows.input; i < rows.end; ++i, h += win.sh) {
          const T* src = x + (c * f.h + h) * f.w + cols.input;
          T* dst = phase + c * s.length + i * s.wp;
          for (index_t j = cols.first, k = 0; j < cols.end; ++j, k += win.sw) dst[j] = src[k];
        }
      }
    }
  }
}

// The same, position-major: phase by phase (length, ld), a row of ld elements per position,
// the channels and then zeros. This is the strided grad weight's operand.
template <typename T>
void split_phases_transposed(const T* x, const Frame& f, const Window2d& win, const Shifted& s,
                             index_t ld, T* xt) {
  std::fill(xt, xt + s.phases * s.length * ld, T(0));
  for (index_t a = 0; a < win.sh; ++a) {
    const PhaseRun rows = phase_run(a, win.sh, win.ph, f.h, s.rows);
    for (index_t b = 0; b < win.sw; ++b) {
      const PhaseRun cols = phase_run(b, win.sw, win.pw, f.w, s.wp);
      T* phase = xt + (a * win.sw + b) * s.length * ld;
      // A row of the phase at a time, its positions' rows staying in the L1 cache while every
      // channel is written into them.
      for (index_t i = rows.first, h = rows.input; i < rows.end; ++i, h += win.sh) {
        T* dst = phase + (i * s.wp + cols.first) * ld;
        for (index_t c = 0; c < f.c; ++c) {
          const T* src = x + (c * f.h + h) * f.w + cols.input;
          for (index_t j = 0; j < cols.end - cols.first; ++j) dst[j * ld + c] = src[j * win.sw];
        }
      }
    }
  }
}

// The kernel offsets that read phase p, and their weights packed for the grad input's product
// (A_k = W_k^T, (C, FN)); its offsets read dY_wide with `reach` zeros on its left.
template <typename T>
struct PhaseOffsets {
  std::vector<index_t> offsets;
  std::vector<T> packed;
};

template <typename T>
std::vector<PhaseOffsets<T>> grad_input_phases(const T* w, const Frame& f, index_t fn,
                                               const Shifted& s) {
  std::vector<PhaseOffsets<T>> phases(static_cast<size_t>(s.phases));
  std::vector<std::vector<index_t>> taps(static_cast<size_t>(s.phases));
  for (index_t k = 0; k < s.offsets; ++k) {
    taps[s.phase(k)].push_back(k);
    phases[s.phase(k)].offsets.push_back(s.reach - s.shift(k));
  }
  for (index_t p = 0; p < s.phases; ++p) {
    const std::vector<index_t>& mine = taps[p];
    const auto weight = [&](index_t k, index_t c, index_t o) {
      return w[(o * f.c + c) * s.offsets + mine[k]];
    };
    phases[p].packed = shifted::pack<T>(static_cast<index_t>(mine.size()), f.c, fn, weight);
  }
  return phases;
}

// Phase p of dXpad (C, rows*wp, ldd apart) into the image's dx, whose other positions it
// leaves alone.
template <typename T>
void merge_phase(const T* dxp, index_t ldd, index_t p, const Frame& f, const Window2d& win,
                 const Shifted& s, T* dx) {
  const PhaseRun rows = phase_run(p / win.sw, win.sh, win.ph, f.h, s.rows);
  const PhaseRun cols = phase_run(p % win.sw, win.sw, win.pw, f.w, s.wp);
  for (index_t c = 0; c < f.c; ++c) {
    for (index_t i = rows.first, h = rows.input; i < rows.end; ++i, h += win.sh) {
      const T* src = dxp + c * ldd + i * s.wp;
      T* dst = dx + (c * f.h + h) * f.w + cols.input;
      for (index_t j = cols.first, k = 0; j < cols.end; ++j, k += win.sw) dst[k] = src[j];
    }
  }
}

}  // namespace

template <typename T>
void shifted_forward(const ProductPlan& plan, const T* x, const T* w, const T* b, T* y,
                     const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace) {
  const Shifted s = shifted_geometry<T>(f, win);
  const bool by_positions = plan.algorithm == ConvAlgorithm::shifted_by_positions;
  // Offset k's slice of channel c starts at offsets[k] + c * length.
  std::vector<index_t> offsets(static_cast<size_t>(s.offsets));
  for (index_t k = 0; k < s.offsets; ++k) offsets[k] = s.phase(k) * f.c * s.length + s.shift(k);
  // A_k = W_k (FN, C).
  const auto weight = [&](index_t k, index_t o, index_t c) { return w[(o * f.c + c) * s.offsets + k]; };
  const std::vector<T> packed = by_positions ? shifted::pack_by_positions<T>(s.offsets, fn, f.c, weight)
                                             : shifted::pack<T>(s.offsets, fn, f.c, weight);
  const index_t p = f.out_plane();
  const index_t ld = shifted::padded_width<T>(fn);
#pragma omp parallel if (plan.parallel)
  {
    T* xp = workspace.mine();                         // the padded image, or its phases
    T* out = xp + region<T>(s.phases * f.c * s.length);  // the product, wide or by positions
#pragma omp for schedule(static)
    for (index_t n = 0; n < f.n; ++n) {
      if (s.phases == 1) {
        pad_image(x + n * f.c * f.plane(), f, win, s, xp);
      } else {
        split_phases(x + n * f.c * f.plane(), f, win, s, xp);
      }
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
  // The grad weight's offsets, rows of the position-major image (phases one after the
  // other), in increasing order: offsets that follow each other share a tile (see
  // add_shifted_products). order[j] is the kernel offset of the j-th. Within a phase the
  // shift grows with k, so taking the phases in turn sorts them. (No std::stable_sort: its
  // helpers, such as std::rotate on index_t iterators, are instantiated alike in every level,
  // and the linker could keep an AVX-512 copy for the baseline kernels.)
  const auto row_of = [&](index_t k) { return s.phase(k) * s.length + s.shift(k); };
  std::vector<index_t> order;
  order.reserve(static_cast<size_t>(s.offsets));
  for (index_t p = 0; p < s.phases; ++p) {
    for (index_t k = 0; k < s.offsets; ++k) {
      if (s.phase(k) == p) order.push_back(k);
    }
  }
  std::vector<index_t> forward_offsets(static_cast<size_t>(s.offsets));
  for (index_t j = 0; j < s.offsets; ++j) forward_offsets[j] = row_of(order[j]);
  // dXpad[:, q] takes dY_wide[:, q - off_k] from offset k: that is column q + reach - off_k
  // of dY_wide with `reach` zeros on its left. Strided, each phase from its own offsets.
  std::vector<index_t> offsets(static_cast<size_t>(s.offsets));
  for (index_t k = 0; k < s.offsets; ++k) offsets[k] = s.reach - s.shift(k);
  // A_k = W_k^T (C, FN).
  const auto weight = [&](index_t k, index_t c, index_t o) { return w[(o * f.c + c) * s.offsets + k]; };
  const std::vector<T> packed =
      !dx || s.phases > 1 ? std::vector<T>()
      : by_positions      ? shifted::pack_by_positions<T>(s.offsets, f.c, fn, weight)
                          : shifted::pack<T>(s.offsets, f.c, fn, weight);
  const std::vector<PhaseOffsets<T>> phases =
      dx && s.phases > 1 ? grad_input_phases(w, f, fn, s) : std::vector<PhaseOffsets<T>>();
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
    T* xt = workspace.mine();                                  // the image, position-major
    T* padded = xt + region<T>(s.phases * s.length * channels);  // dy, widened
    T* dxp = padded + region<T>(filters * s.dlength);              // the grad input, wide or by positions
    // The kernel's rows past the last filter read zeros.
    std::fill(padded + fn * s.dlength, padded + filters * s.dlength, T(0));
#pragma omp for schedule(static)
    for (index_t n = 0; n < f.n; ++n) {
      const T* grad = dy + n * fn * f.out_plane();
      if (s.phases == 1) {
        pad_image_transposed(x + n * f.c * f.plane(), f, win, s, channels, xt);
      } else {
        split_phases_transposed(x + n * f.c * f.plane(), f, win, s, channels, xt);
      }
      widen(grad, f, fn, s, padded);
      shifted::add_shifted_products(padded + s.reach, s.dlength, xt, channels,
                                    forward_offsets.data(), s.offsets, f.oh, f.ow, s.wp, filters,
                                    channels, mine);
      if (!dx) continue;
      if (s.phases > 1) {
        // Every position of dx lies in one phase; those of no phase's rows (a last row or
        // column no output reads) have gradient 0.
        T* image = dx + n * f.c * f.plane();
        std::fill(image, image + f.c * f.plane(), T(0));
        for (index_t p = 0; p < s.phases; ++p) {
          const PhaseOffsets<T>& phase = phases[p];
          if (phase.offsets.empty()) continue;
          shifted::product(phase.packed.data(), f.c, fn, padded, s.dlength,
                           phase.offsets.data(), static_cast<index_t>(phase.offsets.size()),
                           s.rows * s.wp, dxp, s.dspan);
          merge_phase(dxp, s.dspan, p, f, win, s, image);
        }
        continue;
      }
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
      for (index_t j = 0; j < s.offsets; ++j) {
        dw[(o * f.c + c) * s.offsets + order[j]] = partial[(j * filters + o) * channels + c];
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
