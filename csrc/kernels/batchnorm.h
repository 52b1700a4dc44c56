// Batch normalisation per channel of x viewed as (N, C, S): S = H*W for images, 1 for (N, D).
// Each channel's statistics run over its N*S values.
#pragma once

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

// mean and biased variance of every channel (two passes, accumulated in double; see
// batchnorm.cpp for the order of the sums).
template <typename T>
void batch_norm_stats(const T* x, index_t n, index_t c, index_t s, T* mean, T* var);

// y = gamma * (x - mean) * inv_std + beta, per channel; with `relu`, max(0, that) in the same
// pass (a ReLU that alone reads the BatchNorm's output, fused by the network).
template <typename T>
void batch_norm_apply(const T* x, const T* mean, const T* inv_std, const T* gamma, const T* beta,
                      T* y, index_t n, index_t c, index_t s, bool relu);

// Inference with running statistics folded into one scale and shift per channel:
// y = x * scale + shift, scale = gamma / sqrt(var + eps), shift = beta - mean * scale, exactly
// as batch_norm_apply with inv_std = 1 / sqrt(var + eps). y may be x (in place).
template <typename T>
void batch_norm_inference(const T* x, const T* mean, const T* var, const T* gamma, const T* beta,
                          T eps, T* y, index_t n, index_t c, index_t s);

// Gradients of batch_norm_apply with batch statistics (M = N*S, xhat = (x - mean) * inv_std):
// dbeta = sum dy, dgamma = sum dy * xhat, dx = gamma * inv_std / M * (M dy - dbeta - xhat dgamma).
// Unless relu_y is null, it is the output of batch_norm_apply with relu and dy the gradient
// at that output: dy passes where relu_y > 0 and is 0 elsewhere (relu_backward), in the same
// passes.
template <typename T>
void batch_norm_backward(const T* dy, const T* x, const T* mean, const T* inv_std, const T* gamma,
                         const T* relu_y, T* dx, T* dgamma, T* dbeta, index_t n, index_t c,
                         index_t s);

}  // namespace dlx::DLX_CPU_LEVEL
