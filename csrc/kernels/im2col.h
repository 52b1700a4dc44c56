// im2col / col2im for one channel of one image, the building blocks of GEMM convolution.
//
// Sizes are passed by value so that the loops keep them in registers when called from inside
// an OpenMP region.
//
// A channel's KH*KW column rows hold, for each kernel offset (ki, kj), the input value under
// that offset at every output position p = oh * OW + ow (zero where the window covers padding).
// im2col_channel writes the positions [p0, p1) only, element (row r, position p) going to
// col[r * row_stride + (p - p0) * pos_stride]. One routine thus serves the blocked GEMM layout
// (a row of positions, pos_stride = 1) and the book's layout (one row per position,
// row_stride = 1, pos_stride = C * KH * KW).
#pragma once

#include <algorithm>
#include <cstring>

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

// The output columns [lo, hi) of one row whose input column ow * stride - pad + k lies inside
// [0, size): outside it the window reads padding.
inline void valid_range(index_t out_size, index_t size, index_t stride, index_t pad, index_t k,
                        index_t* lo, index_t* hi) {
  // Smallest ow with ow * stride >= pad - k, and smallest ow with ow * stride >= size + pad - k.
  const auto ceil_div = [](index_t a, index_t b) { return a <= 0 ? index_t(0) : (a + b - 1) / b; };
  *lo = std::min(ceil_div(pad - k, stride), out_size);
  *hi = std::max(std::min(ceil_div(size + pad - k, stride), out_size), *lo);
}

template <typename T>
void im2col_channel(const T* __restrict x, const Frame f, const Window2d win, index_t p0,
                    index_t p1, T* __restrict col, index_t row_stride, index_t pos_stride) {
  for (index_t ki = 0; ki < win.kh; ++ki) {
    for (index_t kj = 0; kj < win.kw; ++kj) {
      T* row = col + (ki * win.kw + kj) * row_stride;
      index_t lo, hi;
      valid_range(f.ow, f.w, win.sw, win.pw, kj, &lo, &hi);
      // Walk the positions one output row (oh) at a time.
      for (index_t p = p0; p < p1;) {
        const index_t oh = p / f.ow;
        const index_t ow_begin = p - oh * f.ow;
        const index_t ow_end = std::min(f.ow, ow_begin + (p1 - p));
        T* out = row + (p - p0) * pos_stride;
        const index_t h = oh * win.sh - win.ph + ki;
        if (h < 0 || h >= f.h) {
          for (index_t ow = ow_begin; ow < ow_end; ++ow) out[(ow - ow_begin) * pos_stride] = T(0);
        } else {
          const T* in = x + h * f.w;
          const index_t shift = kj - win.pw;  // input column of ow is ow * sw + shift
          const index_t a = std::clamp(lo, ow_begin, ow_end);
          const index_t b = std::clamp(hi, a, ow_end);
          for (index_t ow = ow_begin; ow < a; ++ow) out[(ow - ow_begin) * pos_stride] = T(0);
          if (pos_stride == 1 && win.sw == 1) {
            if (b > a) std::memcpy(out + (a - ow_begin), in + a + shift, static_cast<size_t>(b - a) * sizeof(T));
          } else {
            for (index_t ow = a; ow < b; ++ow) {
              out[(ow - ow_begin) * pos_stride] = in[ow * win.sw + shift];
            }
          }
          for (index_t ow = b; ow < ow_end; ++ow) out[(ow - ow_begin) * pos_stride] = T(0);
        }
        p += ow_end - ow_begin;
      }
    }
  }
}

// The adjoint of im2col_channel over all positions: adds every column entry back onto the
// input cell it was read from. x must be zeroed by the caller; overlapping windows accumulate.
template <typename T>
void col2im_channel(const T* __restrict col, const Frame f, const Window2d win, T* __restrict x,
                    index_t row_stride, index_t pos_stride) {
  for (index_t ki = 0; ki < win.kh; ++ki) {
    for (index_t kj = 0; kj < win.kw; ++kj) {
      const T* row = col + (ki * win.kw + kj) * row_stride;
      index_t lo, hi;
      valid_range(f.ow, f.w, win.sw, win.pw, kj, &lo, &hi);
      for (index_t oh = 0; oh < f.oh; ++oh) {
        const index_t h = oh * win.sh - win.ph + ki;
        if (h < 0 || h >= f.h) continue;
        const T* in = row + oh * f.ow * pos_stride;
        T* out = x + h * f.w;
        const index_t shift = kj - win.pw;
        if (win.sw == 1 && pos_stride == 1) {  // the common case, as a loop the compiler vectorises
          for (index_t ow = lo; ow < hi; ++ow) out[ow + shift] += in[ow];
        } else {
          for (index_t ow = lo; ow < hi; ++ow) out[ow * win.sw + shift] += in[ow * pos_stride];
        }
      }
    }
  }
}

}  // namespace dlx::DLX_CPU_LEVEL
