// One channel at a time, so OpenMP splits the channels and every sum has a single owner
// (deterministic). Within a channel the N planes of S values are contiguous runs.
// The sums run in double, and `omp simd` lets each run be summed in vector lanes: a single
// chain of dependent double additions would wait on the adder's latency at every element
// (it made the statistics pass slower than the convolution beside it). The lane order is
// fixed by the build, so results still repeat bit for bit.
#include "batchnorm.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace dlx::DLX_CPU_LEVEL {
namespace {

constexpr index_t kParallelGrain = index_t(1) << 15;

template <typename T>
double channel_sum(const T* x, index_t n, index_t c, index_t s, index_t ch) {
  double sum = 0.0;
  for (index_t i = 0; i < n; ++i) {
    const T* run = x + (i * c + ch) * s;
#pragma omp simd reduction(+ : sum)
    for (index_t k = 0; k < s; ++k) sum += run[k];
  }
  return sum;
}

// y = x * scale + shift per channel, then max(0, y) with Relu (NaN stays NaN, as in
// relu_forward); no restrict, as y may be x.
template <bool Relu, typename T>
void scale_and_shift(const T* x, const T* scale, const T* shift, T* y, index_t n, index_t c,
                     index_t s) {
#pragma omp parallel for collapse(2) schedule(static) if (n * c * s > kParallelGrain)
  for (index_t i = 0; i < n; ++i) {
    for (index_t ch = 0; ch < c; ++ch) {
      const T a = scale[ch], b = shift[ch];
      const T* in = x + (i * c + ch) * s;
      T* out = y + (i * c + ch) * s;
#pragma omp simd
      for (index_t k = 0; k < s; ++k) {
        const T v = in[k] * a + b;
        if constexpr (Relu) {
          out[k] = v > T(0) || v != v ? v : T(0);
        } else {
          out[k] = v;
        }
      }
    }
  }
}

// relu_backward's choice, dy where the ReLU's output y is positive and +0 elsewhere, as a mask
// on dy's bits: written as a conditional, GCC kept the baseline (SSE2) loop scalar, with a
// branch per element mispredicted on half of them.
template <typename T>
inline T through_relu(T dy, T y) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  Bits bits;
  std::memcpy(&bits, &dy, sizeof bits);
  bits &= Bits(0) - static_cast<Bits>(y > T(0));
  T kept;
  std::memcpy(&kept, &bits, sizeof kept);
  return kept;
}

}  // namespace

template <typename T>
void batch_norm_stats(const T* x, index_t n, index_t c, index_t s, T* mean, T* var) {
  const double count = static_cast<double>(n * s);
#pragma omp parallel for schedule(static) if (n * c * s > kParallelGrain)
  for (index_t ch = 0; ch < c; ++ch) {
    const double mu = channel_sum(x, n, c, s, ch) / count;
    double sq = 0.0;
    for (index_t i = 0; i < n; ++i) {
      const T* run = x + (i * c + ch) * s;
#pragma omp simd reduction(+ : sq)
      for (index_t k = 0; k < s; ++k) {
        const double d = run[k] - mu;
        sq += d * d;
      }
    }
    mean[ch] = static_cast<T>(mu);
    var[ch] = static_cast<T>(sq / count);
  }
}

template <typename T>
void batch_norm_apply(const T* x, const T* mean, const T* inv_std, const T* gamma, const T* beta,
                      T* y, index_t n, index_t c, index_t s, bool relu) {
  std::vector<T> scale(c), shift(c);
  for (index_t ch = 0; ch < c; ++ch) {
    scale[ch] = gamma[ch] * inv_std[ch];
    shift[ch] = beta[ch] - mean[ch] * scale[ch];
  }
  if (relu) {
    scale_and_shift<true>(x, scale.data(), shift.data(), y, n, c, s);
  } else {
    scale_and_shift<false>(x, scale.data(), shift.data(), y, n, c, s);
  }
}

template <typename T>
void batch_norm_inference(const T* x, const T* mean, const T* var, const T* gamma, const T* beta,
                          T eps, T* y, index_t n, index_t c, index_t s) {
  std::vector<T> inv_std(c);
  for (index_t ch = 0; ch < c; ++ch) inv_std[ch] = T(1) / std::sqrt(var[ch] + eps);
  batch_norm_apply(x, mean, inv_std.data(), gamma, beta, y, n, c, s, false);
}

template <typename T>
void batch_norm_backward(const T* dy, const T* x, const T* mean, const T* inv_std, const T* gamma,
                         const T* relu_y, T* dx, T* dgamma, T* dbeta, index_t n, index_t c,
                         index_t s) {
  const double count = static_cast<double>(n * s);
#pragma omp parallel for schedule(static) if (n * c * s > kParallelGrain)
  for (index_t ch = 0; ch < c; ++ch) {
    // The gradient at the BatchNorm's output, a run (image) at a time: dy itself, or through
    // the fused ReLU, dy where its output is positive and 0 elsewhere (as relu_backward),
    // into a buffer that the loops below read as they read dy: their sums then add the same
    // numbers in the same order either way.
    std::vector<T> masked(relu_y ? s : 0);
    const auto grad_run = [&](index_t i) {
      const T* g = dy + (i * c + ch) * s;
      if (!relu_y) return g;
      const T* y = relu_y + (i * c + ch) * s;
      T* out = masked.data();
#pragma omp simd
      for (index_t k = 0; k < s; ++k) out[k] = through_relu(g[k], y[k]);
      return static_cast<const T*>(out);
    };
    const double mu = mean[ch], istd = inv_std[ch];
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (index_t i = 0; i < n; ++i) {
      const T* g = grad_run(i);
      const T* in = x + (i * c + ch) * s;
#pragma omp simd reduction(+ : sum_dy, sum_dy_xhat)
      for (index_t k = 0; k < s; ++k) {
        sum_dy += g[k];
        sum_dy_xhat += g[k] * ((in[k] - mu) * istd);
      }
    }
    dbeta[ch] = static_cast<T>(sum_dy);
    dgamma[ch] = static_cast<T>(sum_dy_xhat);
    // dx = gamma * inv_std / M * (M dy - sum(dy) - xhat * sum(dy * xhat)), term by term as
    // in the formula, so that special values (inf, NaN) come out as the reference gives them.
    const T scale = static_cast<T>(gamma[ch] * istd / count);
    const T m = static_cast<T>(count), sdy = static_cast<T>(sum_dy), sdx = static_cast<T>(sum_dy_xhat);
    const T tmu = static_cast<T>(mu), tistd = static_cast<T>(istd);
    for (index_t i = 0; i < n; ++i) {
      const T* __restrict g = grad_run(i);
      const T* __restrict in = x + (i * c + ch) * s;
      T* __restrict out = dx + (i * c + ch) * s;
      for (index_t k = 0; k < s; ++k) {
        const T xhat = (in[k] - tmu) * tistd;
        out[k] = scale * (m * g[k] - sdy - xhat * sdx);
      }
    }
  }
}

#define DLX_INSTANTIATE_BN(T)                                                                   \
  template void batch_norm_stats<T>(const T*, index_t, index_t, index_t, T*, T*);              \
  template void batch_norm_apply<T>(const T*, const T*, const T*, const T*, const T*, T*,      \
                                    index_t, index_t, index_t, bool);                          \
  template void batch_norm_inference<T>(const T*, const T*, const T*, const T*, const T*, T, T*, \
                                        index_t, index_t, index_t);                            \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*,       \
                                       const T*, T*, T*, T*, index_t, index_t, index_t);
DLX_INSTANTIATE_BN(float)
DLX_INSTANTIATE_BN(double)
#undef DLX_INSTANTIATE_BN

}  // namespace dlx::DLX_CPU_LEVEL
