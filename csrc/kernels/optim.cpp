#include "optim.h"

#include <cmath>
#include <limits>

namespace dlx::DLX_CPU_LEVEL {
namespace {

constexpr index_t kParallelGrain = index_t(1) << 16;

// state * rate, or 0 where that falls below the smallest normal number: a decaying moment
// would otherwise turn subnormal, and every operation on a subnormal takes a slow microcode
// assist (see dlx.optim.Optimizer._decay).
template <typename T>
inline T decay(T state, T rate) {
  const T decayed = state * rate;
  return std::abs(decayed) < std::numeric_limits<T>::min() ? T(0) : decayed;
}

}  // namespace

template <typename T>
void adam_step(T* __restrict param, const T* __restrict grad, T* __restrict m, T* __restrict v,
               index_t size, T beta1, T beta2, T lr_t, T v_scale, T eps) {
  const T keep1 = T(1) - beta1, keep2 = T(1) - beta2;
#pragma omp parallel for simd schedule(static) if (parallel : size > kParallelGrain)
  for (index_t i = 0; i < size; ++i) {
    const T g = grad[i];
    const T mi = decay(m[i], beta1) + keep1 * g;
    const T vi = decay(v[i], beta2) + keep2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= lr_t * mi / (std::sqrt(vi * v_scale) + eps);
  }
}

template void adam_step<float>(float*, const float*, float*, float*, index_t, float, float, float,
                               float, float);
template void adam_step<double>(double*, const double*, double*, double*, index_t, double, double,
                                double, double, double);

}  // namespace dlx::DLX_CPU_LEVEL
