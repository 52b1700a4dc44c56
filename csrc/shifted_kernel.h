// The register-blocked kernel of the shifted convolution (see conv.cpp):
//
//   out (M, Q) = sum over offsets k of A_k (M, K) * B[:, off_k : off_k + Q]
//
// where B is a matrix whose rows are ldb apart. The forward pass and the grad input of a
// stride-1 convolution both have this form (M = FN, K = C, and the other way round). One GEMM
// per offset would write all of `out` KH*KW times, and with K = C = 16..64 OpenBLAS's kernels
// spend much of their time packing such thin operands; this kernel keeps a tile of `out`
// (rows x vectors*lanes) in registers through every offset and every k, loads each input
// vector once per tile for `rows` multiply-adds, and writes each output once. It ran 1.2-1.5x
// faster than the per-offset GEMMs on the course's layers, as oneDNN's direct convolution
// runs faster than its GEMM one.
//
// It is written with GCC/Clang vector extensions: the build targets the machine's CPU, and
// the compiler maps each vector onto its widest registers, so the same code is AVX-512, AVX2,
// SSE or NEON. The tile is sized to the register file: rows*vectors accumulators, `vectors`
// inputs and one broadcast weight.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"

namespace dlx::shifted {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
constexpr int kRegisters = 32;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
constexpr int kRegisters = 16;
#elif defined(__aarch64__)
constexpr int kVectorBytes = 16;
constexpr int kRegisters = 32;
#else
constexpr int kVectorBytes = 16;
constexpr int kRegisters = 16;
#endif

template <typename T>
struct Tile {
  static constexpr int lanes = kVectorBytes / static_cast<int>(sizeof(T));
  // 8 x 3 ran faster than 6 x 4, 4 x 6 and 5 x 5 with AVX-512, and fits channel counts that are
  // multiples of 8 without padding.
  static constexpr int rows = kRegisters == 32 ? 8 : 4;
  static constexpr int vectors = 3;
};

inline index_t round_up(index_t n, index_t to) { return (n + to - 1) / to * to; }

// Rows of `out` the kernel writes for M rows: whole tiles.
template <typename T>
index_t padded_rows(index_t m) {
  return round_up(m, Tile<T>::rows);
}

// Columns of `out` the kernel writes for Q columns: whole vectors. B must be readable up to
// column off_k + padded_columns(Q) of every row.
template <typename T>
index_t padded_columns(index_t q) {
  return round_up(q, Tile<T>::lanes);
}

// A_k (M, K) for every offset k, with a(k, m, i) its element (m, i), laid out as the kernel
// reads it: [tile of rows][offset][i][row in tile], the rows past M zero.
template <typename T, typename Element>
std::vector<T> pack(index_t offsets, index_t m, index_t k, Element a) {
  constexpr int R = Tile<T>::rows;
  std::vector<T> packed(static_cast<size_t>(padded_rows<T>(m) * offsets * k), T(0));
  for (index_t row = 0; row < m; ++row) {
    T* tile = packed.data() + (row / R) * offsets * k * R + row % R;
    for (index_t o = 0; o < offsets; ++o) {
      for (index_t i = 0; i < k; ++i) tile[(o * k + i) * R] = a(o, row, i);
    }
  }
  return packed;
}

namespace detail {

// (The vector_size attribute does not apply to a template parameter, hence one type each.)
template <typename T>
struct Vector;
template <>
struct Vector<float> {
  typedef float type __attribute__((vector_size(kVectorBytes)));
};
template <>
struct Vector<double> {
  typedef double type __attribute__((vector_size(kVectorBytes)));
};
template <typename T>
using Vec = typename Vector<T>::type;

template <typename T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));  // unaligned: the offsets shift B by single elements
  return v;
}

// One tile: out rows [0, R) and columns [0, V * lanes), over k steps of each offset. Step i of
// offset o multiplies R elements of A, at a[0..R) after the steps before it (a moves on by
// a_step a step), with V vectors of B from b + offsets[o] + i * ldb. The tile is written to
// out, or added to it.
template <typename T, int V, bool Accumulate>
inline void tile(const T* __restrict a, index_t a_step, const T* __restrict b, index_t ldb,
                 const index_t* __restrict offsets, index_t noffsets, index_t k,
                 T* __restrict out, index_t ldo) {
  constexpr int R = Tile<T>::rows;
  constexpr int L = Tile<T>::lanes;
  Vec<T> acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[r][v] = Vec<T>{};
  }
  for (index_t o = 0; o < noffsets; ++o) {
    const T* shifted = b + offsets[o];
    for (index_t i = 0; i < k; ++i, a += a_step) {
      const T* row = shifted + i * ldb;
      Vec<T> in[V];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) in[v] = load(row + v * L);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const Vec<T> weight = a[r] - Vec<T>{};  // broadcast
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) acc[r][v] += weight * in[v];
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      T* dst = out + r * ldo + v * L;
      if constexpr (Accumulate) acc[r][v] += load(dst);
      std::memcpy(dst, &acc[r][v], sizeof(acc[r][v]));
    }
  }
}

// The last columns of a row of tiles: a tile of `vectors` vectors, V or fewer.
template <typename T, int V, bool Accumulate>
void tail(int vectors, const T* a, index_t a_step, const T* b, index_t ldb,
          const index_t* offsets, index_t noffsets, index_t k, T* out, index_t ldo) {
  if constexpr (V > 0) {
    if (vectors == V) {
      tile<T, V, Accumulate>(a, a_step, b, ldb, offsets, noffsets, k, out, ldo);
    } else {
      tail<T, V - 1, Accumulate>(vectors, a, a_step, b, ldb, offsets, noffsets, k, out, ldo);
    }
  }
}

}  // namespace detail

// out (padded_rows(m), padded_columns(q)), leading dimension ldo, from the packed A (see pack)
// and B (k rows, ldb apart). Columns are the outer loop, so one block of B serves every tile
// of rows from the L1 cache.
template <typename T>
void product(const T* packed, index_t m, index_t k, const T* b, index_t ldb,
             const index_t* offsets, index_t noffsets, index_t q, T* out, index_t ldo) {
  constexpr int R = Tile<T>::rows;
  constexpr int V = Tile<T>::vectors;
  constexpr int L = Tile<T>::lanes;
  const index_t tiles = padded_rows<T>(m) / R;
  const index_t per_tile = noffsets * k * R;
  for (index_t col = 0; col < q; col += V * L) {
    const int vectors = static_cast<int>(std::min<index_t>(V, (q - col + L - 1) / L));
    for (index_t t = 0; t < tiles; ++t) {
      detail::tail<T, V, false>(vectors, packed + t * per_tile, R, b + col, ldb, offsets,
                                noffsets, k, out + t * R * ldo + col, ldo);
    }
  }
}

// For every offset o: out_o (m, n) += A_o^T * B, where A_o is rows [offsets[o], offsets[o] + q)
// of A and B is rows [0, q) of B, both stored row-major (a row per position, leading dimensions
// lda and ldb); out_o is the o-th (m, n) block of out. m must be a multiple of Tile::rows and n
// of Tile::lanes. This is the grad weight's product: the inner dimension is the positions.
// The positions go in chunks small enough for the chunk of B and the rows of A that the
// offsets of one kernel row read to stay in the L1 cache; each tile is added to out once
// per chunk.
template <typename T>
void add_shifted_products(const T* a, index_t lda, const index_t* offsets, index_t noffsets,
                          const T* b, index_t ldb, index_t q, index_t m, index_t n, T* out) {
  constexpr int R = Tile<T>::rows;
  constexpr int V = Tile<T>::vectors;
  constexpr int L = Tile<T>::lanes;
  constexpr index_t kChunk = 64;
  const index_t no_offset = 0;
  for (index_t q0 = 0; q0 < q; q0 += kChunk) {
    const index_t len = std::min(kChunk, q - q0);
    for (index_t o = 0; o < noffsets; ++o) {
      const T* rows = a + (q0 + offsets[o]) * lda;
      for (index_t row = 0; row < m; row += R) {
        for (index_t col = 0; col < n; col += V * L) {
          const int vectors = static_cast<int>(std::min<index_t>(V, (n - col) / L));
          detail::tail<T, V, true>(vectors, rows + row, lda, b + q0 * ldb + col, ldb,
                                   &no_offset, 1, len, out + (o * m + row) * n + col, n);
        }
      }
    }
  }
}

}  // namespace dlx::shifted
