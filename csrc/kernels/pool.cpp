// Pooling reads each window in place (no im2col): the work is memory-bound, so the fastest
// version touches every input element once per window and nothing else. Each pass is a
// function over one N*C plane, and OpenMP splits the planes. The per-plane functions take
// their sizes by value: inside an OpenMP region the compiler would otherwise reload them
// through the region's shared-variable block on every iteration (measured 4x slower).
#include "pool.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "im2col.h"

namespace dlx::DLX_CPU_LEVEL {
namespace {

constexpr index_t kParallelGrain = index_t(1) << 14;

// For each kernel column kj, the output columns [lo, hi) whose window reads a real input
// column there (valid_range), computed once per call instead of once per row.
struct ColumnRanges {
  std::vector<index_t> lo, hi;
  ColumnRanges(const Frame& f, const Window2d& g) : lo(g.kw), hi(g.kw) {
    for (index_t kj = 0; kj < g.kw; ++kj) valid_range(f.ow, f.w, g.sw, g.pw, kj, &lo[kj], &hi[kj]);
  }
};

// The max over every window of one plane, visiting the window cells in row-major order (so the
// first of equal values wins), each offset (ki, kj) for a whole output row at once. With
// kIndices the winners' indices go to `at`; inference needs the values alone.
template <bool kIndices, typename T>
void max_pool_plane(const T* __restrict in, T* __restrict y, std::int64_t* __restrict at,
                    const Frame f, const Window2d g, const index_t* lo, const index_t* hi) {
  for (index_t oh = 0; oh < f.oh; ++oh) {
    T* __restrict best = y + oh * f.ow;
    std::int64_t* __restrict best_at = kIndices ? at + oh * f.ow : nullptr;
    // Every window starts at -inf with its index at its first real cell: that cell wins when
    // every real value is -inf too.
    const index_t h_first = std::max<index_t>(oh * g.sh - g.ph, 0);
    for (index_t ow = 0; ow < f.ow; ++ow) {
      best[ow] = -std::numeric_limits<T>::infinity();
      if constexpr (kIndices) best_at[ow] = h_first * f.w + std::max<index_t>(ow * g.sw - g.pw, 0);
    }
    for (index_t ki = 0; ki < g.kh; ++ki) {
      const index_t h = oh * g.sh - g.ph + ki;
      if (h < 0 || h >= f.h) continue;
      const T* __restrict row = in + h * f.w;
      for (index_t kj = 0; kj < g.kw; ++kj) {
        const index_t shift = kj - g.pw;
        for (index_t ow = lo[kj]; ow < hi[kj]; ++ow) {
          // Branch-free on purpose: on real data "v > best" is a coin flip. A candidate wins
          // when it is larger or NaN, and nothing wins once the best is NaN, so the first
          // NaN stays.
          const index_t w = ow * g.sw + shift;
          const T v = row[w];
          const T current = best[ow];
          const bool take = !(v <= current) & (current == current);
          best[ow] = take ? v : current;
          if constexpr (kIndices) best_at[ow] = take ? h * f.w + w : best_at[ow];
        }
      }
    }
  }
}

template <typename T>
void avg_pool_plane(const T* __restrict in, T* __restrict y, const Frame f, const Window2d g,
                    const index_t* lo, const index_t* hi) {
  const T scale = T(1) / static_cast<T>(g.kh * g.kw);
  for (index_t oh = 0; oh < f.oh; ++oh) {
    T* __restrict out = y + oh * f.ow;
    std::fill(out, out + f.ow, T(0));
    for (index_t ki = 0; ki < g.kh; ++ki) {
      const index_t h = oh * g.sh - g.ph + ki;
      if (h < 0 || h >= f.h) continue;
      const T* __restrict row = in + h * f.w;
      for (index_t kj = 0; kj < g.kw; ++kj) {
        const index_t shift = kj - g.pw;
        for (index_t ow = lo[kj]; ow < hi[kj]; ++ow) out[ow] += row[ow * g.sw + shift];
      }
    }
    for (index_t ow = 0; ow < f.ow; ++ow) out[ow] *= scale;
  }
}

template <typename T>
void avg_pool_plane_backward(const T* __restrict dy, T* __restrict dx, const Frame f,
                             const Window2d g, const index_t* lo, const index_t* hi) {
  const T scale = T(1) / static_cast<T>(g.kh * g.kw);
  std::fill(dx, dx + f.h * f.w, T(0));
  for (index_t oh = 0; oh < f.oh; ++oh) {
    const T* __restrict share = dy + oh * f.ow;
    for (index_t ki = 0; ki < g.kh; ++ki) {
      const index_t h = oh * g.sh - g.ph + ki;
      if (h < 0 || h >= f.h) continue;
      T* __restrict row = dx + h * f.w;
      for (index_t kj = 0; kj < g.kw; ++kj) {
        const index_t shift = kj - g.pw;
        for (index_t ow = lo[kj]; ow < hi[kj]; ++ow) row[ow * g.sw + shift] += share[ow] * scale;
      }
    }
  }
}

// Scatters dy to the winners; returns the first bad position in this plane's argmax, or -1.
template <typename T>
index_t max_pool_plane_backward(const T* __restrict dy, const std::int64_t* __restrict at,
                                T* __restrict dx, index_t plane, index_t out_plane) {
  std::fill(dx, dx + plane, T(0));
  for (index_t k = 0; k < out_plane; ++k) {
    const std::int64_t i = at[k];
    if (i < 0 || i >= plane) return k;
    dx[i] += dy[k];
  }
  return -1;
}

}  // namespace

template <typename T>
void max_pool2d_forward(const T* x, T* y, std::int64_t* argmax, const Frame& f,
                        const Window2d& win) {
  const index_t planes = f.n * f.c;
  const ColumnRanges cols(f, win);
#pragma omp parallel for schedule(static) if (planes * f.out_plane() * win.kh * win.kw > kParallelGrain)
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* in = x + pl * f.plane();
    T* out = y + pl * f.out_plane();
    if (argmax != nullptr) {
      max_pool_plane<true>(in, out, argmax + pl * f.out_plane(), f, win, cols.lo.data(),
                           cols.hi.data());
    } else {
      max_pool_plane<false>(in, out, nullptr, f, win, cols.lo.data(), cols.hi.data());
    }
  }
}

template <typename T>
index_t max_pool2d_backward(const T* dy, const std::int64_t* argmax, T* dx, const Frame& f) {
  const index_t planes = f.n * f.c;
  index_t first_bad = -1;
#pragma omp parallel for schedule(static) if (planes * f.out_plane() > kParallelGrain)
  for (index_t pl = 0; pl < planes; ++pl) {
    const index_t bad = max_pool_plane_backward(dy + pl * f.out_plane(), argmax + pl * f.out_plane(),
                                                dx + pl * f.plane(), f.plane(), f.out_plane());
    if (bad >= 0) {
      const index_t flat = pl * f.out_plane() + bad;
#pragma omp critical(dlx_bad_argmax)
      if (first_bad < 0 || flat < first_bad) first_bad = flat;
    }
  }
  return first_bad;
}

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Frame& f, const Window2d& win) {
  const index_t planes = f.n * f.c;
  const ColumnRanges cols(f, win);
#pragma omp parallel for schedule(static) if (planes * f.out_plane() * win.kh * win.kw > kParallelGrain)
  for (index_t pl = 0; pl < planes; ++pl) {
    avg_pool_plane(x + pl * f.plane(), y + pl * f.out_plane(), f, win, cols.lo.data(), cols.hi.data());
  }
}

template <typename T>
void avg_pool2d_backward(const T* dy, T* dx, const Frame& f, const Window2d& win) {
  const index_t planes = f.n * f.c;
  const ColumnRanges cols(f, win);
#pragma omp parallel for schedule(static) if (planes * f.out_plane() * win.kh * win.kw > kParallelGrain)
  for (index_t pl = 0; pl < planes; ++pl) {
    avg_pool_plane_backward(dy + pl * f.out_plane(), dx + pl * f.plane(), f, win, cols.lo.data(),
                            cols.hi.data());
  }
}

#define DLX_INSTANTIATE_POOL(T)                                                                  \
  template void max_pool2d_forward<T>(const T*, T*, std::int64_t*, const Frame&, const Window2d&); \
  template index_t max_pool2d_backward<T>(const T*, const std::int64_t*, T*, const Frame&);     \
  template void avg_pool2d_forward<T>(const T*, T*, const Frame&, const Window2d&);             \
  template void avg_pool2d_backward<T>(const T*, T*, const Frame&, const Window2d&);
DLX_INSTANTIATE_POOL(float)
DLX_INSTANTIATE_POOL(double)
#undef DLX_INSTANTIATE_POOL

}  // namespace dlx::DLX_CPU_LEVEL
