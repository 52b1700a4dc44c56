// The executors of the convolution's routes, each carrying out its part of a ConvPlan
// (conv_plan.h) in the workspace conv.cpp leased for it, a part for each thread.
#pragma once

#include <vector>

#include "conv_plan.h"

namespace dlx::DLX_CPU_LEVEL {

// im2col and pointwise (conv_im2col.cpp).
template <typename T>
void unfolded_forward(const ProductPlan& plan, const T* x, const T* w, const T* b, T* y,
                      const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace);
template <typename T>
void unfolded_grad_weight(const ProductPlan& plan, const T* dy, const T* x, T* dw,
                          const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace);
template <typename T>
void unfolded_grad_input(const ProductPlan& plan, const T* dy, const T* w, T* dx,
                         const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace);

// Shifted slices (conv_shifted.cpp), at stride 1 and through stride phases at stride 2. The
// backward pass computes dw and, unless dx is null, dx in one pass over the images: both
// gradients read each image's widened dy.
template <typename T>
void shifted_forward(const ProductPlan& plan, const T* x, const T* w, const T* b, T* y,
                     const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace);
template <typename T>
void shifted_backward(const ConvPlan& plan, const T* dy, const T* x, const T* w, T* dx, T* dw,
                      const Frame& f, index_t fn, const Window2d& win, const ThreadParts<T>& workspace);

// F(4x4, 3x3) Winograd (conv_winograd.cpp): 3x3 kernels, stride 1, padding 1.
template <typename T>
void winograd_forward(const ProductPlan& plan, const T* x, const T* w, const T* b, T* y,
                      const Frame& f, index_t fn, const ThreadParts<T>& workspace);
template <typename T>
void winograd_grad_input(const ProductPlan& plan, const T* dy, const T* w, T* dx,
                         const Frame& f, index_t fn, const ThreadParts<T>& workspace);
template <typename T>
void winograd_grad_weight(const ProductPlan& plan, const T* dy, const T* x, T* dw,
                          const Frame& f, index_t fn, const ThreadParts<T>& workspace);

// Per-thread partial sums of `size` elements, side by side: adds those of threads 1..team-1
// into thread 0's, in thread order, so the total repeats bit for bit at a fixed thread count.
template <typename T>
inline void sum_partials(std::vector<T>& partial, int team, index_t size) {
  for (int t = 1; t < team; ++t) {
    const T* src = partial.data() + static_cast<index_t>(t) * size;
    for (index_t i = 0; i < size; ++i) partial[i] += src[i];
  }
}

}  // namespace dlx::DLX_CPU_LEVEL
