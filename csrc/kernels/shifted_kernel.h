// The register-blocked kernel of the shifted convolution (see conv.cpp), for products of the
// form
//
//   out (M, Q) = sum over offsets k of A_k (M, K) * B[:, off_k : off_k + Q]
//
// where B is a matrix whose rows are ldb apart. The forward pass and the grad input of a
// stride-1 convolution have this form (M = FN, K = C, and the other way round), and the grad
// weight a transposed one (add_shifted_products). One GEMM per offset would write all of
// `out` KH*KW times, and with 16 to 64 channels OpenBLAS's kernels spend much of their time
// packing such thin operands; this kernel keeps a tile of `out` (rows x vectors*lanes) in
// registers through every offset and every k, loads each input vector once per tile for
// `rows` multiply-adds, and writes each output once, as oneDNN's direct convolution does
// (docs/core.md has the measurements).
//
// It is written with GCC/Clang vector extensions: each CPU level's copy (see level.h) maps
// each vector onto that level's widest registers, so the same code is AVX-512, AVX2, SSE or
// NEON. The tile is sized to the register file: rows*vectors accumulators, `vectors` inputs
// and one broadcast element.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "level.h"

namespace dlx::DLX_CPU_LEVEL::shifted {

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
  // The fastest shape measured with 32 registers (docs/core.md), and it fits channel counts
  // that are multiples of 8 without padding.
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

// A_k (M, K) for every offset k, with a(k, m, i) its element (m, i), in blocks of `block` rows:
// [block][offset][i][row in block], the rows past M zero. This is how both kernels read it,
// product() in blocks of Tile::rows and product_by_positions in blocks of PositionTile::width.
template <typename T, typename Element>
std::vector<T> pack_blocks(index_t block, index_t offsets, index_t m, index_t k, Element a) {
  std::vector<T> packed(static_cast<size_t>(round_up(m, block) * offsets * k), T(0));
  for (index_t row = 0; row < m; ++row) {
    T* first = packed.data() + (row / block) * offsets * k * block + row % block;
    for (index_t o = 0; o < offsets; ++o) {
      for (index_t i = 0; i < k; ++i) first[(o * k + i) * block] = a(o, row, i);
    }
  }
  return packed;
}

// A_k laid out as product() reads it: in tiles of Tile::rows rows.
template <typename T, typename Element>
std::vector<T> pack(index_t offsets, index_t m, index_t k, Element a) {
  return pack_blocks<T>(Tile<T>::rows, offsets, m, k, a);
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

// Where one tile's operands and results lie. Step i of offset o multiplies R elements of A,
// a[r * a_row] for row r (a moves on by a_step a step), with V vectors of B, vector v at
// b + offsets[o] + i * ldb + v * b_vector; result (r, v) goes to out + r * ldo + v * out_vector.
// Side by side in B and out (b_vector = out_vector = lanes), the V vectors are V * lanes
// columns of one product; one row apart in B and one block apart in out, they are the same
// columns of V products whose offsets follow each other. The steps may come in `runs` runs
// of `steps` each with `skip` steps left out after each run: both operands move on by those
// steps, as they would, without the multiply-adds.
template <typename T>
struct TileArgs {
  const T* a;
  index_t a_step, a_row;
  const T* b;
  index_t ldb, b_vector;
  const index_t* offsets;
  index_t noffsets, steps;
  T* out;
  index_t ldo, out_vector;
  index_t runs = 1, skip = 0;
};

// One tile of R x V vectors, written to out or added to it.
template <typename T, int V, bool Accumulate>
inline void tile(const TileArgs<T>& t) {
  constexpr int R = Tile<T>::rows;
  const T* __restrict a = t.a;
  const index_t a_step = t.a_step, a_row = t.a_row, ldb = t.ldb, b_vector = t.b_vector;
  Vec<T> acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[r][v] = Vec<T>{};
  }
  for (index_t o = 0; o < t.noffsets; ++o) {
    const T* __restrict row = t.b + t.offsets[o];
    for (index_t run = 0; run < t.runs; ++run, a += t.skip * a_step, row += t.skip * ldb) {
      for (index_t i = 0; i < t.steps; ++i, a += a_step, row += ldb) {
        Vec<T> in[V];
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) in[v] = load(row + v * b_vector);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const Vec<T> weight = a[r * a_row] - Vec<T>{};  // broadcast
#pragma GCC unroll 8
          for (int v = 0; v < V; ++v) acc[r][v] += weight * in[v];
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      T* dst = t.out + r * t.ldo + v * t.out_vector;
      if constexpr (Accumulate) acc[r][v] += load(dst);
      std::memcpy(dst, &acc[r][v], sizeof(acc[r][v]));
    }
  }
}

// A tile of `vectors` vectors, V or fewer.
template <typename T, int V, bool Accumulate>
void tile_of(int vectors, const TileArgs<T>& t) {
  if constexpr (V > 0) {
    if (vectors == V) {
      tile<T, V, Accumulate>(t);
    } else {
      tile_of<T, V - 1, Accumulate>(vectors, t);
    }
  }
}


// One tile of the product by positions (see product_by_positions): R consecutive positions of
// B times V vectors of the packed A, through every offset and every step, written to out (a
// row per position, ldo apart). Here the broadcast operand is the shifted one: step i of
// offset o multiplies b[offsets[o] + i * ldb + r] for position r with the next V vectors of
// `packed`, which runs on through the steps.
template <typename T, int R, int V>
inline void position_tile(const T* packed, index_t width, const T* b, index_t ldb,
                          const index_t* offsets, index_t noffsets, index_t steps, T* out,
                          index_t ldo) {
  constexpr int L = Tile<T>::lanes;
  const T* __restrict a = packed;
  Vec<T> acc[R][V];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = Vec<T>{};
  }
  for (index_t o = 0; o < noffsets; ++o) {
    const T* __restrict shifted = b + offsets[o];
    for (index_t i = 0; i < steps; ++i, a += width) {
      const T* column = shifted + i * ldb;
      Vec<T> in[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) in[v] = load(a + v * L);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const Vec<T> element = column[r] - Vec<T>{};  // broadcast
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[r][v] += element * in[v];
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) std::memcpy(out + r * ldo + v * L, &acc[r][v], sizeof(acc[r][v]));
  }
}

// position_tile for `rows` (R or fewer) positions and `vectors` (V or fewer) vectors.
template <typename T, int R, int V>
void position_tile_of(int rows, int vectors, const T* packed, index_t width, const T* b,
                      index_t ldb, const index_t* offsets, index_t noffsets, index_t steps,
                      T* out, index_t ldo) {
  if constexpr (R > 0 && V > 0) {
    if (vectors < V) {
      position_tile_of<T, R, V - 1>(rows, vectors, packed, width, b, ldb, offsets, noffsets,
                                    steps, out, ldo);
    } else if (rows < R) {
      position_tile_of<T, R - 1, V>(rows, vectors, packed, width, b, ldb, offsets, noffsets,
                                    steps, out, ldo);
    } else {
      position_tile<T, R, V>(packed, width, b, ldb, offsets, noffsets, steps, out, ldo);
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
      detail::tile_of<T, V, false>(
          vectors, {packed + t * per_tile, R, 1, b + col, ldb, L, offsets, noffsets, k,
                    out + t * R * ldo + col, ldo, L});
    }
  }
}

// For every offset o: out_o (m, n) += A (m, q) * B_o (q, n), with q over `lines` runs of
// `run` positions each, line_stride apart (the positions of an image's rows in the wide
// layout, leaving out the columns that wrap around). A is row-major, rows lda apart; B_o is
// rows offsets[o] + q of B, a row per position, rows ldb apart; out_o is the o-th (m, n) block
// of out. m must be a multiple of Tile::rows (A having that many rows) and n of Tile::lanes.
// This is the grad weight's product, whose inner dimension is the positions: A is dy
// (filters, positions) and B the image position-major (positions, channels). The positions
// go in chunks of whole lines, so that the chunk of A and the rows of B that one kernel row's
// offsets read stay in the L1 cache; each tile is added to out once a chunk. With fewer than
// Tile::vectors vectors in a row of out, a tile takes one vector of each of up to
// Tile::vectors products whose offsets follow each other (a kernel row's): they share A's
// broadcast elements, which would otherwise cost a load for every multiply-add.
template <typename T>
void add_shifted_products(const T* a, index_t lda, const T* b, index_t ldb,
                          const index_t* offsets, index_t noffsets, index_t lines, index_t run,
                          index_t line_stride, index_t m, index_t n, T* out) {
  constexpr int R = Tile<T>::rows;
  constexpr int V = Tile<T>::vectors;
  constexpr int L = Tile<T>::lanes;
  // Positions a chunk, about: the fastest measured (docs/core.md).
  constexpr index_t kChunk = 128;
  const index_t chunk_lines = std::max<index_t>(1, kChunk / line_stride);
  const index_t skip = line_stride - run;
  const index_t no_offset = 0;
  const bool by_offsets = n < V * L;
  for (index_t line = 0; line < lines; line += chunk_lines) {
    const index_t q0 = line * line_stride;
    const index_t runs = std::min(chunk_lines, lines - line);
    for (index_t o = 0; o < noffsets;) {
      // The run of offsets that follow offsets[o], up to V of them.
      index_t together = 1;
      while (by_offsets && together < V && o + together < noffsets &&
             offsets[o + together] == offsets[o] + together) {
        ++together;
      }
      const T* rows = b + (q0 + offsets[o]) * ldb;
      for (index_t row = 0; row < m; row += R) {
        const T* broadcast = a + row * lda + q0;
        T* dst = out + (o * m + row) * n;
        if (by_offsets) {
          for (index_t col = 0; col < n; col += L) {
            detail::tile_of<T, V, true>(static_cast<int>(together),
                                        {broadcast, 1, lda, rows + col, ldb, ldb, &no_offset, 1,
                                         run, dst + col, n, m * n, runs, skip});
          }
        } else {
          for (index_t col = 0; col < n; col += V * L) {
            const int vectors = static_cast<int>(std::min<index_t>(V, (n - col) / L));
            detail::tile_of<T, V, true>(vectors, {broadcast, 1, lda, rows + col, ldb, L,
                                                  &no_offset, 1, run, dst + col, n, L, runs,
                                                  skip});
          }
        }
      }
      o += together;
    }
  }
}

// The other orientation of product(): out^T (Q, M) = sum over offsets k of B_k^T * A_k^T, a
// tile being a few positions (rows) by a few vectors of M. product() computes positions in
// whole vectors, and an image's positions come in rows of W separated by the padding: for a
// 14-wide image that is 16 positions computed for 14. Here tiles hold whole rows of positions
// or even parts of them, so small images waste nothing; the price is an output that is
// position-major, which the caller transposes, and one broadcast for every 2 multiply-adds
// instead of every 3.
template <typename T>
struct PositionTile {
  static constexpr int lanes = Tile<T>::lanes;
  static constexpr int vectors = 2;
  // Accumulators, the vectors of A and one broadcast fill the register file.
  static constexpr int rows = (kRegisters - 1 - vectors) / vectors;
  static constexpr int width = vectors * lanes;
};

// Columns of out (its leading dimension) that product_by_positions writes for M: whole tiles.
template <typename T>
index_t padded_width(index_t m) {
  return round_up(m, PositionTile<T>::width);
}

// A_k laid out as product_by_positions reads it: in blocks of PositionTile::width rows.
template <typename T, typename Element>
std::vector<T> pack_by_positions(index_t offsets, index_t m, index_t k, Element a) {
  return pack_blocks<T>(PositionTile<T>::width, offsets, m, k, a);
}

// out (lines * run, padded_width(m)), leading dimension ldo: row l * run + j is position
// l * line_stride + j of B (k rows, ldb apart), that is `lines` runs of `run` positions each,
// summed over the offsets with the packed A (see pack_by_positions). Each run is cut into
// equal tiles of up to PositionTile::rows positions.
template <typename T>
void product_by_positions(const T* packed, index_t m, index_t k, const T* b, index_t ldb,
                          const index_t* offsets, index_t noffsets, index_t lines, index_t run,
                          index_t line_stride, T* out, index_t ldo) {
  constexpr int R = PositionTile<T>::rows;
  constexpr int V = PositionTile<T>::vectors;
  constexpr int L = PositionTile<T>::lanes;
  constexpr index_t W = PositionTile<T>::width;
  const index_t pieces = (run + R - 1) / R;
  const index_t piece = (run + pieces - 1) / pieces;
  const index_t per_block = noffsets * k * W;
  // Blocks of M outermost: one block of A serves every position from the L1 cache.
  for (index_t col = 0; col < m; col += W) {
    const int vectors = static_cast<int>(std::min<index_t>(V, (m - col + L - 1) / L));
    const T* block = packed + (col / W) * per_block;
    for (index_t line = 0; line < lines; ++line) {
      for (index_t j = 0; j < run; j += piece) {
        const int rows = static_cast<int>(std::min(piece, run - j));
        detail::position_tile_of<T, R, V>(rows, vectors, block, W, b + line * line_stride + j,
                                          ldb, offsets, noffsets, k,
                                          out + (line * run + j) * ldo + col, ldo);
      }
    }
  }
}

}  // namespace dlx::DLX_CPU_LEVEL::shifted
