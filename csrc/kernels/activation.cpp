#include "activation.h"

namespace dlx::DLX_CPU_LEVEL {
namespace {

constexpr index_t kParallelGrain = index_t(1) << 16;

// The loops below say `if (parallel : ...)`: a bare `if` clause on `parallel for simd` applies
// to the simd construct as well (OpenMP 5.0), and a small array then ran as a scalar loop
// with a branch per element, up to 50x slower on mixed signs.

template <bool Relu, typename T>
void sum_of(const T* a, const T* b, T* y, index_t size) {  // no restrict: y may be a or b
#pragma omp parallel for simd schedule(static) if (parallel : size > kParallelGrain)
  for (index_t i = 0; i < size; ++i) {
    const T v = a[i] + b[i];
    if constexpr (Relu) {
      y[i] = v > T(0) || v != v ? v : T(0);
    } else {
      y[i] = v;
    }
  }
}

}  // namespace

template <typename T>
void relu_forward(const T* x, T* y, index_t size) {  // no restrict: y may be x
#pragma omp parallel for simd schedule(static) if (parallel : size > kParallelGrain)
  for (index_t i = 0; i < size; ++i) {
    const T v = x[i];
    y[i] = v > T(0) || v != v ? v : T(0);
  }
}

template <typename T>
void relu_backward(const T* __restrict dy, const T* __restrict y, T* __restrict dx, index_t size) {
#pragma omp parallel for simd schedule(static) if (parallel : size > kParallelGrain)
  for (index_t i = 0; i < size; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

template <typename T>
void add_forward(const T* a, const T* b, T* y, index_t size, bool relu) {
  if (relu) {
    sum_of<true>(a, b, y, size);
  } else {
    sum_of<false>(a, b, y, size);
  }
}

template void add_forward<float>(const float*, const float*, float*, index_t, bool);
template void add_forward<double>(const double*, const double*, double*, index_t, bool);
template void relu_forward<float>(const float*, float*, index_t);
template void relu_forward<double>(const double*, double*, index_t);
template void relu_backward<float>(const float*, const float*, float*, index_t);
template void relu_backward<double>(const double*, const double*, double*, index_t);

}  // namespace dlx::DLX_CPU_LEVEL
