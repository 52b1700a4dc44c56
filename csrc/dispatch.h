// Runtime CPU dispatch. The kernels (csrc/kernels/) are compiled once per CPU level; each
// copy fills a Kernels table, and the extension calls through the table of the level chosen
// at import: the widest the CPU (and its operating system) supports, or a lower one asked for
// with DLX_CPU_CAPABILITY (read by dlx.ops, which calls set_level).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace dlx {

// One level's kernels for one element type; see the headers in csrc/kernels/ for each.
template <typename T>
struct KernelSet {
  void (*im2col)(const T* x, const Frame& f, const Window2d& win, T* col);
  void (*col2im)(const T* col, const Frame& f, const Window2d& win, T* x);
  void (*conv2d_forward)(const T* x, const T* w, const T* b, T* y, const Frame& f, index_t fn,
                         const Window2d& win);
  void (*conv2d_backward)(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db,
                          const Frame& f, index_t fn, const Window2d& win);
  ConvPlanDescription (*conv2d_plan)(const Frame& f, index_t fn, const Window2d& win);
  void (*max_pool2d_forward)(const T* x, T* y, std::int64_t* argmax, const Frame& f,
                             const Window2d& win);
  index_t (*max_pool2d_backward)(const T* dy, const std::int64_t* argmax, T* dx, const Frame& f);
  void (*avg_pool2d_forward)(const T* x, T* y, const Frame& f, const Window2d& win);
  void (*avg_pool2d_backward)(const T* dy, T* dx, const Frame& f, const Window2d& win);
  void (*relu_forward)(const T* x, T* y, index_t size);
  void (*relu_backward)(const T* dy, const T* y, T* dx, index_t size);
  void (*add_forward)(const T* a, const T* b, T* y, index_t size, bool relu);
  void (*adam_step)(T* param, const T* grad, T* m, T* v, index_t size, T beta1, T beta2, T lr_t,
                    T v_scale, T eps);
  void (*batch_norm_stats)(const T* x, index_t n, index_t c, index_t s, T* mean, T* var);
  void (*batch_norm_apply)(const T* x, const T* mean, const T* inv_std, const T* gamma,
                           const T* beta, T* y, index_t n, index_t c, index_t s, bool relu);
  void (*batch_norm_inference)(const T* x, const T* mean, const T* var, const T* gamma,
                               const T* beta, T eps, T* y, index_t n, index_t c, index_t s);
  void (*linear_forward)(const T* x, const T* w, const T* b, T* y, index_t n, index_t in,
                         index_t out);
  void (*linear_backward)(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, index_t n,
                          index_t in, index_t out);
  void (*batch_norm_backward)(const T* dy, const T* x, const T* mean, const T* inv_std,
                              const T* gamma, const T* relu_y, T* dx, T* dgamma, T* dbeta,
                              index_t n, index_t c, index_t s);
};

struct Kernels {
  const char* level;
  KernelSet<float> f32;
  KernelSet<double> f64;
};

// The kernels of the chosen level, for element type T.
template <typename T>
const KernelSet<T>& kernels();

// The levels this build has, lowest first, and the features of this CPU that decide them.
std::vector<std::string> compiled_levels();
std::vector<std::pair<std::string, bool>> cpu_features();
// The compiled levels this CPU can run, lowest first (never empty on a CPU the build supports).
std::vector<std::string> supported_levels();
// Chooses a level by name; it must be one of supported_levels().
void set_level(const std::string& name);
// The level in use.
std::string current_level();

// For the tests only: the convolution route every plan takes where it can, instead of the
// planner's choice, so that each route's executors meet every geometry.
enum class ConvRoute { planned, unfolded, shifted, winograd };
ConvRoute conv_route();
void set_conv_route(ConvRoute route);

}  // namespace dlx
