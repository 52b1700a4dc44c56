// Convolution forward and backward: make the plan (conv_plan.h), lease the workspace it needs
// from the pool (workspace.h), and run the executor of each product's route
// (conv_im2col.cpp, conv_shifted.cpp, conv_winograd.cpp). The bias gradient, a plain sum, is done here.
//
// The BLAS never starts threads of its own (see blas.h), so the cores are never
// oversubscribed; grad-weight partials are summed in thread order, so results repeat bit for
// bit at a fixed thread count and workspace budget.
#include "conv.h"

#include <algorithm>

#include "blas.h"
#include "conv_plan.h"
#include "conv_routes.h"
#include "workspace.h"

namespace dlx::DLX_CPU_LEVEL {
namespace {

void check_blas_dims(const Frame& f, const Window2d& win, index_t fn) {
  const index_t rows = f.c * win.kh * win.kw;
  if (rows > kMaxBlasDim || f.out_plane() > kMaxBlasDim || fn > kMaxBlasDim) {
    fail("convolution too large for 32-bit BLAS: C*KH*KW=", rows, ", OH*OW=", f.out_plane(),
         ", FN=", fn);
  }
}

template <typename T>
ConvPlan plan_for(const Frame& f, index_t fn, const Window2d& win) {
  const int threads = omp_get_max_threads();
  return plan_conv<T>(f, fn, win, threads,
                      thread_workspace_limit<T>(workspace_budget(), threads));
}

bool is_shifted(ConvAlgorithm algorithm) {
  return algorithm == ConvAlgorithm::shifted || algorithm == ConvAlgorithm::shifted_by_positions;
}

// Bytes of workspace for `threads` threads needing `elements` each.
template <typename T>
std::size_t workspace_bytes_for(int threads, index_t elements) {
  return elements == 0 ? 0 : static_cast<std::size_t>(threads * thread_stride<T>(elements)) * sizeof(T);
}

template <typename T>
ProductDescription describe(const ProductPlan& plan) {
  return ProductDescription{name_of(plan.algorithm), plan.parallel, plan.items, plan.images,
                            plan.blocks,             plan.length,   plan.tile_rows,
                            plan.tile_columns,       static_cast<index_t>(workspace_bytes_for<T>(1, plan.workspace))};
}

}  // namespace

template <typename T>
void conv2d_forward(const T* x, const T* w, const T* b, T* y, const Frame& f, index_t fn,
                    const Window2d& win) {
  check_blas_dims(f, win, fn);
  const index_t rows = f.c * win.kh * win.kw;
  const index_t p = f.out_plane();
  if (f.n == 0 || p == 0 || fn == 0) return;
  if (rows == 0) {  // no input channels: every output is its bias
    for (index_t i = 0; i < f.n * fn; ++i) std::fill(y + i * p, y + (i + 1) * p, b ? b[i % fn] : T(0));
    return;
  }
  const ConvPlan plan = plan_for<T>(f, fn, win);
  WorkspaceLease lease(workspace_bytes_for<T>(plan.threads, plan.thread_workspace()));
  const ThreadParts<T> workspace{lease.as<T>(), thread_stride<T>(plan.thread_workspace())};
  if (plan.forward.algorithm == ConvAlgorithm::winograd) {
    winograd_forward(plan.forward, x, w, b, y, f, fn, workspace);
  } else if (is_shifted(plan.forward.algorithm)) {
    shifted_forward(plan.forward, x, w, b, y, f, fn, win, workspace);
  } else {
    unfolded_forward(plan.forward, x, w, b, y, f, fn, win, workspace);
  }
}

template <typename T>
void conv2d_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, const Frame& f,
                     index_t fn, const Window2d& win) {
  check_blas_dims(f, win, fn);
  const index_t rows = f.c * win.kh * win.kw;
  const index_t p = f.out_plane();

  // db[o] sums dy over images and positions (unless db is null: a layer without a bias);
  // one thread owns each o, accumulating in double in vector lanes (a single chain of double
  // additions would be latency-bound).
#pragma omp parallel for schedule(static) if (f.n * fn * p * rows > kParallelGrain && fn > 1)
  for (index_t o = 0; o < (db ? fn : 0); ++o) {
    double sum = 0.0;
    for (index_t n = 0; n < f.n; ++n) {
      const T* src = dy + (n * fn + o) * p;
#pragma omp simd reduction(+ : sum)
      for (index_t k = 0; k < p; ++k) sum += src[k];
    }
    db[o] = static_cast<T>(sum);
  }
  // With no images, positions, filters or input channels, dx and dW are all zeros (or empty).
  if (f.n == 0 || p == 0 || fn == 0 || rows == 0) {
    std::fill(dw, dw + fn * rows, T(0));
    if (dx) std::fill(dx, dx + f.n * f.c * f.plane(), T(0));
    return;
  }

  const ConvPlan plan = plan_for<T>(f, fn, win);
  WorkspaceLease lease(workspace_bytes_for<T>(plan.threads, plan.thread_workspace()));
  const ThreadParts<T> workspace{lease.as<T>(), thread_stride<T>(plan.thread_workspace())};
  if (plan.grad_weight.algorithm == ConvAlgorithm::winograd) {
    winograd_grad_weight(plan.grad_weight, dy, x, dw, f, fn, workspace);
    if (dx) winograd_grad_input(plan.grad_input, dy, w, dx, f, fn, workspace);
    return;
  }
  if (is_shifted(plan.grad_weight.algorithm)) {
    shifted_backward(plan, dy, x, w, dx, dw, f, fn, win, workspace);
    return;
  }
  unfolded_grad_weight(plan.grad_weight, dy, x, dw, f, fn, win, workspace);
  if (dx) unfolded_grad_input(plan.grad_input, dy, w, dx, f, fn, win, workspace);
}

template <typename T>
ConvPlanDescription conv2d_plan(const Frame& f, index_t fn, const Window2d& win) {
  const ConvPlan plan = plan_for<T>(f, fn, win);
  return ConvPlanDescription{
      describe<T>(plan.forward),
      describe<T>(plan.grad_weight),
      describe<T>(plan.grad_input),
      plan.threads,
      static_cast<index_t>(workspace_bytes_for<T>(plan.threads, plan.thread_workspace()))};
}

#define DLX_INSTANTIATE_CONV(T)                                                                  \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const Frame&, index_t,       \
                                  const Window2d&);                                              \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*, const Frame&,       \
                                   index_t, const Window2d&);                                    \
  template ConvPlanDescription conv2d_plan<T>(const Frame&, index_t, const Window2d&);
DLX_INSTANTIATE_CONV(float)
DLX_INSTANTIATE_CONV(double)
#undef DLX_INSTANTIATE_CONV

}  // namespace dlx::DLX_CPU_LEVEL
