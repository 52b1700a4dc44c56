// Optimizer updates, fused into one pass over the parameters. The NumPy form of an update
// makes one pass (and often a temporary array) per operation: for Adam about ten, which on
// SimpleConvNet's 440K weights took longer than its convolution layer's backward pass.
#pragma once

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

// Adam, in place, element by element, in the order and the precision of the NumPy reference
// (dlx.ops.reference.adam_step), so the two agree bit for bit (this file is compiled without
// fused multiply-adds):
//   m = beta1 * m, flushed to 0 below the smallest normal float;  m += (1 - beta1) * g
//   v = beta2 * v, flushed likewise;                              v += ((1 - beta2) * g) * g
//   p -= (lr_t * m) / (sqrt(v * v_scale) + eps)
// lr_t is the learning rate times the first moment's bias correction, v_scale the second's.
template <typename T>
void adam_step(T* param, const T* grad, T* m, T* v, index_t size, T beta1, T beta2, T lr_t,
               T v_scale, T eps);

}  // namespace dlx::DLX_CPU_LEVEL
