// The fully connected layer: y = x W + b, with x (N, IN), W (IN, OUT), b (OUT,), y (N, OUT).
//
// Each product is one GEMM on dlx's single-threaded BLAS, split among the OpenMP threads in
// blocks of rows or columns of its output, so that no second thread pool (such as NumPy's
// BLAS) ever runs beside the kernels' own.
#pragma once

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

// y = x W + b (b may be null: no bias).
template <typename T>
void linear_forward(const T* x, const T* w, const T* b, T* y, index_t n, index_t in, index_t out);

// dx = dy W^T (skipped when dx is null), dW = x^T dy, db = sum over N of dy (skipped when db
// is null). dy is (N, OUT).
template <typename T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, index_t n,
                     index_t in, index_t out);

}  // namespace dlx::DLX_CPU_LEVEL
