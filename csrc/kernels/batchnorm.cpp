// x is (N, C, S): each channel's values are N runs of S, one per image. The sums walk the array
// in memory order, a run (image, channel) at a time, in parallel over the runs: walking one
// channel's N runs, S * sizeof(T) bytes each and C runs apart, left the prefetchers little
// to follow at small S (the last stage of a ResNet, S = 49) and ran 2.5x slower than the
// same sums in memory order on data not in the cache. Each run's sums are kept, then added
// over the images in order, so the result does not depend on the thread count and repeats
// bit for bit. The sums run in double, and `omp simd` lets each run be summed in vector
// lanes: a single chain of dependent double additions would wait on the adder's latency at
// every element. The lane order is fixed by the build.
#include "batchnorm.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace dlx::DLX_CPU_LEVEL {
namespace {

constexpr index_t kParallelGrain = index_t(1) << 15;

// sums[ch] = the sum over images i of run_sums[i * c + ch], in the order of the images.
inline void add_over_images(const std::vector<double>& run_sums, index_t n, index_t c,
                            double* sums) {
  for (index_t ch = 0; ch < c; ++ch) sums[ch] = 0.0;
  for (index_t i = 0; i < n; ++i) {
    for (index_t ch = 0; ch < c; ++ch) sums[ch] += run_sums[i * c + ch];
  }
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
  const bool parallel = n * c * s > kParallelGrain;
  std::vector<double> run_sums(static_cast<size_t>(n * c)), mu(c), sq(c);
#pragma omp parallel for schedule(static) if (parallel)
  for (index_t r = 0; r < n * c; ++r) {
    const T* run = x + r * s;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (index_t k = 0; k < s; ++k) sum += run[k];
    run_sums[r] = sum;
  }
  add_over_images(run_sums, n, c, mu.data());
  for (index_t ch = 0; ch < c; ++ch) mu[ch] /= count;
#pragma omp parallel for schedule(static) if (parallel)
  for (index_t r = 0; r < n * c; ++r) {
    const T* run = x + r * s;
    const double m = mu[r % c];
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (index_t k = 0; k < s; ++k) {
      const double d = run[k] - m;
      sum += d * d;
    }
    run_sums[r] = sum;
  }
  add_over_images(run_sums, n, c, sq.data());
  for (index_t ch = 0; ch < c; ++ch) {
    mean[ch] = static_cast<T>(mu[ch]);
    var[ch] = static_cast<T>(sq[ch] / count);
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
  const bool parallel = n * c * s > kParallelGrain;
  std::vector<double> dy_sums(static_cast<size_t>(n * c)), dy_xhat_sums(dy_sums.size());
  std::vector<double> sum_dy(c), sum_dy_xhat(c);
#pragma omp parallel if (parallel)
  {
    // The gradient at the BatchNorm's output, a run at a time: dy itself, or through the
    // fused ReLU, dy where its output is positive and 0 elsewhere (as relu_backward), into a
    // buffer that the loops below read as they read dy: their sums then add the same numbers
    // in the same order either way.
    std::vector<T> masked(relu_y ? s : 0);
    const auto grad_run = [&](index_t r) {
      const T* g = dy + r * s;
      if (!relu_y) return g;
      const T* y = relu_y + r * s;
      T* out = masked.data();
#pragma omp simd
      for (index_t k = 0; k < s; ++k) out[k] = through_relu(g[k], y[k]);
      return static_cast<const T*>(out);
    };
#pragma omp for schedule(static)
    for (index_t r = 0; r < n * c; ++r) {
      const T* g = grad_run(r);
      const T* in = x + r * s;
      const double mu = mean[r % c], istd = inv_std[r % c];
      double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
      for (index_t k = 0; k < s; ++k) {
        a += g[k];
        b += g[k] * ((in[k] - mu) * istd);
      }
      dy_sums[r] = a;
      dy_xhat_sums[r] = b;
    }
#pragma omp single
    {
      add_over_images(dy_sums, n, c, sum_dy.data());
      add_over_images(dy_xhat_sums, n, c, sum_dy_xhat.data());
      for (index_t ch = 0; ch < c; ++ch) {
        dbeta[ch] = static_cast<T>(sum_dy[ch]);
        dgamma[ch] = static_cast<T>(sum_dy_xhat[ch]);
      }
    }  // (the barrier at its end: every thread sees the sums below)
    // dx = gamma * inv_std / M * (M dy - sum(dy) - xhat * sum(dy * xhat)), term by term as
    // in the formula, so that special values (inf, NaN) come out as the reference gives them.
#pragma omp for schedule(static)
    for (index_t r = 0; r < n * c; ++r) {
      const index_t ch = r % c;
      const double istd = inv_std[ch];
      const T scale = static_cast<T>(gamma[ch] * istd / count);
      const T m = static_cast<T>(count), sdy = static_cast<T>(sum_dy[ch]);
      const T sdx = static_cast<T>(sum_dy_xhat[ch]);
      const T tmu = mean[ch], tistd = inv_std[ch];
      const T* __restrict g = grad_run(r);
      const T* __restrict in = x + r * s;
      T* __restrict out = dx + r * s;
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
