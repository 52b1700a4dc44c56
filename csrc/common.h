// Shared types for the dlx kernels: 64-bit sizes and the 2-D window geometry.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace dlx {

using index_t = std::int64_t;

// Kernel, stride and padding of a 2-D window op, each as (height, width).
struct Window2d {
  index_t kh, kw;
  index_t sh, sw;
  index_t ph, pw;
};

// The one output-size formula every op uses: floor((size + 2 * pad - kernel) / stride) + 1.
inline index_t output_size(index_t size, index_t kernel, index_t stride, index_t pad) {
  return (size + 2 * pad - kernel) / stride + 1;
}

// Shape of an NCHW tensor together with the output size of a window op over it.
struct Frame {
  index_t n, c, h, w;
  index_t oh, ow;
  index_t plane() const { return h * w; }
  index_t out_plane() const { return oh * ow; }
};

inline Frame make_frame(index_t n, index_t c, index_t h, index_t w, const Window2d& win) {
  return Frame{n, c, h, w, output_size(h, win.kh, win.sh, win.ph), output_size(w, win.kw, win.sw, win.pw)};
}

// What a convolution's plan decided for one of its three products (see
// csrc/kernels/conv_plan.h), as dlx.ops.conv2d_plan reports it.
struct ProductDescription {
  const char* algorithm;
  bool parallel;
  index_t items, images, blocks, length;
  int tile_rows, tile_columns;
  index_t workspace_bytes;  // each thread's
};

struct ConvPlanDescription {
  ProductDescription forward, grad_weight, grad_input;
  int threads;
  // What each pass (forward or backward) leases from the workspace pool, all threads together.
  index_t workspace_bytes;
};

// Builds a message from streamable parts and throws std::invalid_argument,
// which pybind11 turns into ValueError.
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw std::invalid_argument(os.str());
}

}  // namespace dlx
