// Elementwise kernels that sit between every convolution and pooling of a CNN, the
// activations and the residual sum: cheap per element, but over millions of elements, so
// they are worth a parallel loop.
#pragma once

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

// y = max(x, 0); NaN stays NaN. y may be x (in place).
template <typename T>
void relu_forward(const T* x, T* y, index_t size);

// dx = dy where y > 0, else 0 (y is the forward output).
template <typename T>
void relu_backward(const T* dy, const T* y, T* dx, index_t size);

// y = a + b, then max(y, 0) with relu (NaN stays NaN, as relu_forward). y may be a or b.
template <typename T>
void add_forward(const T* a, const T* b, T* y, index_t size, bool relu);

}  // namespace dlx::DLX_CPU_LEVEL
