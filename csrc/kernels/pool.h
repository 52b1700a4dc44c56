// Max and average pooling over NCHW planes, forward and backward.
//
// Notation: x (N, C, H, W), y (N, C, OH, OW) with OH = (H + 2 * PH - KH) / SH + 1 (likewise OW).
// Padding never wins a max (it counts as -inf) and counts as zero in an average, whose divisor
// is always KH * KW. The caller guarantees PH <= KH / 2 and PW <= KW / 2, so every window
// holds at least one real input element.
#pragma once

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

// y and argmax (N, C, OH, OW); argmax holds the index h * W + w of the winner in its input plane,
// or is null where only the values are wanted (inference).
// The first maximum in a window wins a tie; a NaN in a window wins over every number.
template <typename T>
void max_pool2d_forward(const T* x, T* y, std::int64_t* argmax, const Frame& f, const Window2d& win);

// dx (N, C, H, W) = dy scattered to argmax. Returns -1, or the flat position in argmax of the
// first index outside [0, H * W); dx is then incomplete and must not be used.
template <typename T>
index_t max_pool2d_backward(const T* dy, const std::int64_t* argmax, T* dx, const Frame& f);

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Frame& f, const Window2d& win);

template <typename T>
void avg_pool2d_backward(const T* dy, T* dx, const Frame& f, const Window2d& win);

}  // namespace dlx::DLX_CPU_LEVEL
