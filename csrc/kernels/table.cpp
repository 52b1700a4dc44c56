// This level's Kernels table (see csrc/dispatch.h). It is constant data, initialised by the
// linker rather than by code: nothing compiled for this level runs until dispatch.cpp has
// checked that the CPU supports it.
#include "../dispatch.h"
#include "activation.h"
#include "batchnorm.h"
#include "conv.h"
#include "linear.h"
#include "optim.h"
#include "pool.h"

namespace dlx::DLX_CPU_LEVEL {
namespace {

template <typename T>
constexpr KernelSet<T> kernel_set() {
  return KernelSet<T>{&im2col<T>,
                      &col2im<T>,
                      &conv2d_forward<T>,
                      &conv2d_backward<T>,
                      &conv2d_plan<T>,
                      &max_pool2d_forward<T>,
                      &max_pool2d_backward<T>,
                      &avg_pool2d_forward<T>,
                      &avg_pool2d_backward<T>,
                      &relu_forward<T>,
                      &relu_backward<T>,
                      &add_forward<T>,
                      &adam_step<T>,
                      &batch_norm_stats<T>,
                      &batch_norm_apply<T>,
                      &batch_norm_inference<T>,
                      &linear_forward<T>,
                      &linear_backward<T>,
                      &batch_norm_backward<T>};
}

}  // namespace

#define DLX_STRINGIFY_(x) #x
#define DLX_STRINGIFY(x) DLX_STRINGIFY_(x)
extern const Kernels kernel_table;
const Kernels kernel_table{DLX_STRINGIFY(DLX_CPU_LEVEL), kernel_set<float>(), kernel_set<double>()};

}  // namespace dlx::DLX_CPU_LEVEL
