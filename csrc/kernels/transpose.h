// Matrix transpose in 8 x 8 blocks held in vector registers. The shifted convolution (conv.cpp)
// turns every image into position-major order for its grad weight, and the output of its
// tiles by positions back into NCHW; done element by element, those transposes took a quarter
// of the time outside the multiply-adds on DeepConvNet's 14 x 14 layers.
#pragma once

#include <algorithm>
#include <cstring>

#include "level.h"

namespace dlx::DLX_CPU_LEVEL {

namespace detail {

template <typename T>
struct Row8;
template <>
struct Row8<float> {
  typedef float type __attribute__((vector_size(8 * sizeof(float))));
};
template <>
struct Row8<double> {
  typedef double type __attribute__((vector_size(8 * sizeof(double))));
};

// Swaps the off-diagonal S x S blocks of every 2S x 2S block of an 8 x 8 matrix (rows r):
// element (i, l + S) with element (i + S, l) wherever i and l have bit S clear. Done for
// S = 4, 2 and 1, that is the transpose: each level swaps blocks whole and leaves the blocks
// inside them to the next.
template <int S, typename V>
inline void swap_blocks(V* r) {
  for (int i = 0; i < 8; ++i) {
    if (i & S) continue;
    const V a = r[i], b = r[i + S];
    if constexpr (S == 4) {
      r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11);
      r[i + S] = __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    } else if constexpr (S == 2) {
      r[i] = __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13);
      r[i + S] = __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15);
    } else {
      r[i] = __builtin_shufflevector(a, b, 0, 8, 2, 10, 4, 12, 6, 14);
      r[i + S] = __builtin_shufflevector(a, b, 1, 9, 3, 11, 5, 13, 7, 15);
    }
  }
}

}  // namespace detail

// dst (cols, rows), rows ldd apart, = src (rows, cols), rows lds apart, transposed; with add
// non-null, add[j] is added to every element of dst's row j. With src_rows (dst_rows)
// non-null, row i of src (of dst) starts at element src_rows[i] (dst_rows[i]) instead of
// i * lds (i * ldd): rows of a padded image, say, whose padding the transpose then skips.
template <typename T>
void transpose(const T* src, index_t lds, index_t rows, index_t cols, T* dst, index_t ldd,
               const T* add = nullptr, const index_t* src_rows = nullptr,
               const index_t* dst_rows = nullptr) {
  using V = typename detail::Row8<T>::type;
  const auto src_row = [&](index_t i) { return src + (src_rows ? src_rows[i] : i * lds); };
  const auto dst_row = [&](index_t j) { return dst + (dst_rows ? dst_rows[j] : j * ldd); };
  const index_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
  for (index_t i = 0; i < rows8; i += 8) {
    for (index_t j = 0; j < cols8; j += 8) {
      V r[8];
      for (int k = 0; k < 8; ++k) std::memcpy(&r[k], src_row(i + k) + j, sizeof(V));
      detail::swap_blocks<4>(r);
      detail::swap_blocks<2>(r);
      detail::swap_blocks<1>(r);
      for (int k = 0; k < 8; ++k) {
        if (add) r[k] += add[j + k];
        std::memcpy(dst_row(j + k) + i, &r[k], sizeof(V));
      }
    }
  }
  // The edges: the last rows % 8 rows of src, then the last cols % 8 columns of the rest.
  for (index_t j = 0; j < cols; ++j) {
    T* out = dst_row(j);
    for (index_t i = j < cols8 ? rows8 : 0; i < rows; ++i) {
      out[i] = add ? src_row(i)[j] + add[j] : src_row(i)[j];
    }
  }
}

}  // namespace dlx::DLX_CPU_LEVEL
