// Pooling reads each window in place (no im2col): the work is memory-bound, so the fastest
// version is the one that touches every input element once per window and nothing else.
// OpenMP splits the N*C planes, which are independent in both passes.
#include "pool.h"

#include <algorithm>
#include <cmath>

namespace dlx {
namespace {

constexpr index_t kParallelGrain = index_t(1) << 14;

// The rows [h0, h1) and columns [w0, w1) of the input that window (oh, ow) covers.
struct Span {
  index_t h0, h1, w0, w1;
};

inline Span window_span(index_t oh, index_t ow, const Frame& f, const Window2d& win) {
  const index_t hs = oh * win.sh - win.ph;
  const index_t ws = ow * win.sw - win.pw;
  return Span{std::max<index_t>(hs, 0), std::min<index_t>(hs + win.kh, f.h),
              std::max<index_t>(ws, 0), std::min<index_t>(ws + win.kw, f.w)};
}

}  // namespace

template <typename T>
void max_pool2d_forward(const T* x, T* y, std::int64_t* argmax, const Frame& f,
                        const Window2d& win) {
  const index_t planes = f.n * f.c;
#pragma omp parallel for schedule(static) if (planes * f.out_plane() * win.kh * win.kw > kParallelGrain)
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* in = x + pl * f.plane();
    T* out = y + pl * f.out_plane();
    std::int64_t* idx = argmax + pl * f.out_plane();
    for (index_t oh = 0; oh < f.oh; ++oh) {
      for (index_t ow = 0; ow < f.ow; ++ow) {
        const Span s = window_span(oh, ow, f, win);
        index_t best_at = s.h0 * f.w + s.w0;
        T best = in[best_at];
        for (index_t h = s.h0; h < s.h1 && !std::isnan(best); ++h) {
          for (index_t w = s.w0; w < s.w1; ++w) {
            const T v = in[h * f.w + w];
            if (v > best || std::isnan(v)) {
              best = v;
              best_at = h * f.w + w;
              if (std::isnan(v)) break;
            }
          }
        }
        out[oh * f.ow + ow] = best;
        idx[oh * f.ow + ow] = best_at;
      }
    }
  }
}

template <typename T>
index_t max_pool2d_backward(const T* dy, const std::int64_t* argmax, T* dx, const Frame& f) {
  const index_t planes = f.n * f.c;
  const index_t plane = f.plane();
  index_t first_bad = -1;
#pragma omp parallel for schedule(static) if (planes * f.out_plane() > kParallelGrain)
  for (index_t pl = 0; pl < planes; ++pl) {
    T* grad = dx + pl * plane;
    std::fill(grad, grad + plane, T(0));
    const T* g = dy + pl * f.out_plane();
    const std::int64_t* idx = argmax + pl * f.out_plane();
    for (index_t k = 0; k < f.out_plane(); ++k) {
      const std::int64_t at = idx[k];
      if (at < 0 || at >= plane) {
        const index_t flat = pl * f.out_plane() + k;
#pragma omp critical(dlx_bad_argmax)
        if (first_bad < 0 || flat < first_bad) first_bad = flat;
        continue;
      }
      grad[at] += g[k];
    }
  }
  return first_bad;
}

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Frame& f, const Window2d& win) {
  const index_t planes = f.n * f.c;
  const T scale = T(1) / static_cast<T>(win.kh * win.kw);
#pragma omp parallel for schedule(static) if (planes * f.out_plane() * win.kh * win.kw > kParallelGrain)
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* in = x + pl * f.plane();
    T* out = y + pl * f.out_plane();
    for (index_t oh = 0; oh < f.oh; ++oh) {
      for (index_t ow = 0; ow < f.ow; ++ow) {
        const Span s = window_span(oh, ow, f, win);
        T sum = T(0);
        for (index_t h = s.h0; h < s.h1; ++h) {
          for (index_t w = s.w0; w < s.w1; ++w) sum += in[h * f.w + w];
        }
        out[oh * f.ow + ow] = sum * scale;
      }
    }
  }
}

template <typename T>
void avg_pool2d_backward(const T* dy, T* dx, const Frame& f, const Window2d& win) {
  const index_t planes = f.n * f.c;
  const T scale = T(1) / static_cast<T>(win.kh * win.kw);
#pragma omp parallel for schedule(static) if (planes * f.out_plane() * win.kh * win.kw > kParallelGrain)
  for (index_t pl = 0; pl < planes; ++pl) {
    T* grad = dx + pl * f.plane();
    std::fill(grad, grad + f.plane(), T(0));
    const T* g = dy + pl * f.out_plane();
    for (index_t oh = 0; oh < f.oh; ++oh) {
      for (index_t ow = 0; ow < f.ow; ++ow) {
        const Span s = window_span(oh, ow, f, win);
        const T share = g[oh * f.ow + ow] * scale;
        for (index_t h = s.h0; h < s.h1; ++h) {
          for (index_t w = s.w0; w < s.w1; ++w) grad[h * f.w + w] += share;
        }
      }
    }
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

}  // namespace dlx
