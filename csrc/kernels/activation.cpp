#include "activation.h"

namespace dlx::DLX_CPU_LEVEL {
namespace {

constexpr index_t kParallelGrain = index_t(1) << 16;

}  // namespace

template <typename T>
void relu_forward(const T* __restrict x, T* __restrict y, index_t size) {
#pragma omp parallel for simd schedule(static) if (size > kParallelGrain)
  for (index_t i = 0; i < size; ++i) {
    const T v = x[i];
    y[i] = v > T(0) || v != v ? v : T(0);
  }
}

template <typename T>
void relu_backward(const T* __restrict dy, const T* __restrict y, T* __restrict dx, index_t size) {
#pragma omp parallel for simd schedule(static) if (size > kParallelGrain)
  for (index_t i = 0; i < size; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

template void relu_forward<float>(const float*, float*, index_t);
template void relu_forward<double>(const double*, double*, index_t);
template void relu_backward<float>(const float*, const float*, float*, index_t);
template void relu_backward<double>(const double*, const double*, double*, index_t);

}  // namespace dlx::DLX_CPU_LEVEL
