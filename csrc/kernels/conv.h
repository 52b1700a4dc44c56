// im2col / col2im in the book's layout, and convolution forward and backward as GEMMs
// (im2col + GEMM, or shifted slices of the padded image or its stride phases: see conv_plan.h).
//
// Notation: x (N, C, H, W), w (FN, C, KH, KW), b (FN), y (N, FN, OH, OW),
// OH = (H + 2 * PH - KH) / SH + 1 and OW = (W + 2 * PW - KW) / SW + 1. All arrays are
// C-contiguous; the caller has checked the shapes.
#pragma once

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

// col (N * OH * OW, C * KH * KW): one row per output position, one column per window element.
template <typename T>
void im2col(const T* x, const Frame& f, const Window2d& win, T* col);

// x (N, C, H, W) = the sum of every col entry onto the input position it came from.
template <typename T>
void col2im(const T* col, const Frame& f, const Window2d& win, T* x);

// y = conv(x, w) + b; b may be null.
template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const Frame& f, index_t fn,
                    const Window2d& win);

// dx, dw and db from dy; all three outputs are overwritten. dx and db may be null: then that
// gradient is not computed at all.
template <typename T>
void conv2d_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, const Frame& f,
                     index_t fn, const Window2d& win);

// Which algorithm computes each product of conv2d_forward and conv2d_backward for this
// geometry, dtype and the current thread count (see conv.cpp): "im2col", "pointwise" (a 1x1
// kernel, whose column matrix is the image), "shifted" or "shifted by positions".

// What conv2d_forward and conv2d_backward would run for these shapes, at the current thread
// count and workspace budget.
template <typename T>
ConvPlanDescription conv2d_plan(const Frame& f, index_t fn, const Window2d& win);

}  // namespace dlx::DLX_CPU_LEVEL
