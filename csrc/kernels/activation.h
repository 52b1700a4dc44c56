// Elementwise activations that sit between every convolution and pooling of a CNN: cheap per
// element, but over millions of elements, so they are worth a parallel loop.
#pragma once

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

// y = max(x, 0); NaN stays NaN. y may be x (in place).
template <typename T>
void relu_forward(const T* x, T* y, index_t size);

// dx = dy where y > 0, else 0 (y is the forward output).
template <typename T>
void relu_backward(const T* dy, const T* y, T* dx, index_t size);

}  // namespace dlx::DLX_CPU_LEVEL
