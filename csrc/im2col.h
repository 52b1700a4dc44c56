// im2col / col2im for one channel of one image, the building blocks of GEMM convolution.
//
// A channel's KH*KW column rows hold, for each kernel offset (ki, kj), the input value under
// that offset for every output position p = oh * OW + ow (zero where the window covers padding).
// Element (row r, position p) lives at col[r * row_stride + p * pos_stride], so one routine
// serves the blocked GEMM layout (rows of positions, pos_stride = 1) and the book's layout
// (one row per position, row_stride = 1, pos_stride = C * KH * KW).
#pragma once

#include "common.h"

namespace dlx {

template <typename T>
void im2col_channel(const T* x, const Frame& f, const Window2d& win, T* col, index_t row_stride,
                    index_t pos_stride) {
  for (index_t ki = 0; ki < win.kh; ++ki) {
    for (index_t kj = 0; kj < win.kw; ++kj) {
      T* row = col + (ki * win.kw + kj) * row_stride;
      for (index_t oh = 0; oh < f.oh; ++oh) {
        const index_t h = oh * win.sh - win.ph + ki;
        T* out = row + oh * f.ow * pos_stride;
        if (h < 0 || h >= f.h) {
          for (index_t ow = 0; ow < f.ow; ++ow) out[ow * pos_stride] = T(0);
          continue;
        }
        const T* in = x + h * f.w;
        for (index_t ow = 0; ow < f.ow; ++ow) {
          const index_t w = ow * win.sw - win.pw + kj;
          out[ow * pos_stride] = (w >= 0 && w < f.w) ? in[w] : T(0);
        }
      }
    }
  }
}

// The adjoint of im2col_channel: adds every column entry back onto the input position it was
// read from. x must be zeroed by the caller; overlapping windows accumulate.
template <typename T>
void col2im_channel(const T* col, const Frame& f, const Window2d& win, T* x, index_t row_stride,
                    index_t pos_stride) {
  for (index_t ki = 0; ki < win.kh; ++ki) {
    for (index_t kj = 0; kj < win.kw; ++kj) {
      const T* row = col + (ki * win.kw + kj) * row_stride;
      for (index_t oh = 0; oh < f.oh; ++oh) {
        const index_t h = oh * win.sh - win.ph + ki;
        if (h < 0 || h >= f.h) continue;
        const T* in = row + oh * f.ow * pos_stride;
        T* out = x + h * f.w;
        for (index_t ow = 0; ow < f.ow; ++ow) {
          const index_t w = ow * win.sw - win.pw + kj;
          if (w >= 0 && w < f.w) out[w] += in[ow * pos_stride];
        }
      }
    }
  }
}

}  // namespace dlx
