// The Winograd route: F(4x4, 3x3) of Lavin and Gray ("Fast Algorithms for Convolutional
// Neural Networks", 2015) for 3x3 kernels at stride 1 and padding 1: the forward pass and both
// gradients.
//
// The output is cut into 4x4 tiles (those past the image's last row or column computed on
// zeros and thrown away); tile (i, j) reads the 6x6 window d of the padded image at rows
// 4i.., columns 4j... For every input channel c and output channel k
//   y_tile = A^T [ sum over c of (G g_kc G^T) (.) (B^T d_c B) ] A
// where (.) multiplies element by element, g_kc is the 3x3 kernel and
//   B^T = [4  0 -5  0 1 0;  0 -4 -4  1 1 0;  0 4 -4 -1 1 0;
//          0 -2 -1  2 1 0;  0  2 -1 -2 1 0;  0 4  0 -5 0 1],
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
//   A^T = [1 1 1 1 1 0;  0 1 -1 2 -2 0;  0 1 1 4 4 0;  0 1 -1 8 -8 1].
// So each of the 36 elements xi of the transformed 6x6 window is a product of matrices,
//   M_xi (tiles, K) = V_xi (tiles, C) * U_xi (C, K),  V = B^T d B,  U = G g G^T,
// 36 products of C*K multiply-adds for 16 outputs where the direct convolution takes 9 for
// each output: 4 times fewer. The transforms are a few additions and scalings per element.
// Rounding: the transforms' coefficients (up to 8 and 1/24) make the result differ from the
// direct sum by a few times 1e-6 of its scale in float, about ten times the shifted route's
// difference (tests/ops/test_ops_parity.py holds it to the loop oracle like every route).
//
// Channels are the vector lanes throughout: each image is turned position-major (a row of
// channels per padded position), so every transform is whole-vector arithmetic over the
// channels and a window is 36 vector loads; the output tiles, position-major too, are turned
// back into (K, H, W) by the transpose that adds the bias. The tiles go in blocks: a block's
// V and M stay in the cache between the transform, the products and the inverse transform.
//
// The grad input of a 3x3, stride 1, padding 1 convolution is the same convolution of dy
// with the kernel turned by 180 degrees and its channel axes swapped:
//   dx[c] = sum over k of conv(dy[k], rot180(w[k, c])), padding 1.
// The grad weight follows from the forward formula by the chain rule: with D = A dy_tile A^T
// (6x6, from each 4x4 tile of dy),
//   dw_kc = G^T [ sum over tiles of D_k (.) V_c ] G,
// so for each xi, S_xi (C, K) = sum over tiles of V_xi^T D_xi: 36 products whose inner
// dimension is the tiles of the whole batch.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "conv_plan.h"
#include "conv_routes.h"
#include "shifted_kernel.h"
#include "transpose.h"

namespace dlx::DLX_CPU_LEVEL {
namespace {

using shifted::detail::load;
using shifted::detail::Vec;

constexpr int kXi = 36;  // elements of a transformed window

template <typename T>
inline void store(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof(v));
}

// G g for a column (or row) g0, g1, g2 of the kernel: 6 values.
template <typename T>
inline void kernel_transform(T g0, T g1, T g2, T* u) {
  u[0] = g0 / T(4);
  u[1] = -(g0 + g1 + g2) / T(6);
  u[2] = -(g0 - g1 + g2) / T(6);
  u[3] = g0 / T(24) + g1 / T(12) + g2 / T(6);
  u[4] = g0 / T(24) - g1 / T(12) + g2 / T(6);
  u[5] = g2;
}

// U_xi (C, kld) for xi = 6a + b, the 36 of them one after the other: U = G g G^T for every
// (input channel c, output channel k), with g(k, c, i, j) the kernel. Columns past K are zero.
template <typename T, typename Kernel>
std::vector<T> transform_kernels(index_t c_in, index_t k_out, index_t kld, Kernel g) {
  std::vector<T> u(static_cast<size_t>(kXi * c_in * kld), T(0));
  for (index_t k = 0; k < k_out; ++k) {
    for (index_t c = 0; c < c_in; ++c) {
      T t[3][6];  // (G g)^T: column j of the kernel transformed
      for (int j = 0; j < 3; ++j) {
        kernel_transform(g(k, c, 0, j), g(k, c, 1, j), g(k, c, 2, j), t[j]);
      }
      for (int a = 0; a < 6; ++a) {  // (G g) G^T, row a
        T r[6];
        kernel_transform(t[0][a], t[1][a], t[2][a], r);
        for (int b = 0; b < 6; ++b) u[((6 * a + b) * c_in + c) * kld + k] = r[b];
      }
    }
  }
  return u;
}

// Calls f with the channel stride ld as a compile-time constant where it is one of the common
// ones (1, 2, 4 or 8 vectors: 16 to 128 floats with AVX-512, 8 to 64 with AVX2), or as 0
// (known at run time).
template <typename T, typename F>
void with_stride(index_t ld, F f) {
  constexpr index_t L = shifted::Tile<T>::lanes;
  if (ld == L) {
    f(std::integral_constant<index_t, L>{});
  } else if (ld == 2 * L) {
    f(std::integral_constant<index_t, 2 * L>{});
  } else if (ld == 4 * L) {
    f(std::integral_constant<index_t, 4 * L>{});
  } else if (ld == 8 * L) {
    f(std::integral_constant<index_t, 8 * L>{});
  } else {
    f(std::integral_constant<index_t, 0>{});
  }
}

// B^T d for d the 6 vectors d[0], d[step], ..., written to t[0], t[1], ...
template <typename T>
inline void input_transform(const Vec<T>* d, int step, Vec<T>* t) {
  const Vec<T> d0 = d[0], d1 = d[step], d2 = d[2 * step], d3 = d[3 * step], d4 = d[4 * step],
               d5 = d[5 * step];
  const Vec<T> four = T(4) - Vec<T>{}, five = T(5) - Vec<T>{}, two = T(2) - Vec<T>{};
  const Vec<T> p = d4 - four * d2, q = d3 - four * d1;
  const Vec<T> r = d4 - d2, s = two * (d3 - d1);
  t[0] = four * d0 - five * d2 + d4;
  t[1] = p + q;
  t[2] = p - q;
  t[3] = r + s;
  t[4] = r - s;
  t[5] = four * d1 - five * d3 + d5;
}

// A^T m for m the 6 vectors m[0], m[step], ..., written to y[0], y[1], y[2], y[3].
template <typename T>
inline void output_transform(const Vec<T>* m, int step, Vec<T>* y) {
  const Vec<T> m0 = m[0], m1 = m[step], m2 = m[2 * step], m3 = m[3 * step], m4 = m[4 * step],
               m5 = m[5 * step];
  const Vec<T> two = T(2) - Vec<T>{}, four = T(4) - Vec<T>{}, eight = T(8) - Vec<T>{};
  const Vec<T> a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
  y[0] = m0 + a + c;
  y[1] = b + two * d;
  y[2] = a + four * c;
  y[3] = b + eight * d + m5;
}

// A y for y the 4 vectors y[0], y[step], ...: the transpose of output_transform, 6 vectors.
template <typename T>
inline void gradient_transform(const Vec<T>* y, int step, Vec<T>* e) {
  const Vec<T> y0 = y[0], y1 = y[step], y2 = y[2 * step], y3 = y[3 * step];
  const Vec<T> two = T(2) - Vec<T>{}, four = T(4) - Vec<T>{}, eight = T(8) - Vec<T>{};
  const Vec<T> even = y0 + y2, odd = y1 + y3;
  const Vec<T> even4 = y0 + four * y2, odd8 = two * y1 + eight * y3;
  e[0] = y0;
  e[1] = even + odd;
  e[2] = even - odd;
  e[3] = even4 + odd8;
  e[4] = even4 - odd8;
  e[5] = y3;
}

// G^T s for s the 6 values s[0], s[step], ...: the transpose of kernel_transform, 3 values.
template <typename T>
inline void kernel_gradient(const T* s, int step, T* g) {
  const T s0 = s[0], s1 = s[step], s2 = s[2 * step], s3 = s[3 * step], s4 = s[4 * step],
          s5 = s[5 * step];
  g[0] = s0 / T(4) - (s1 + s2) / T(6) + (s3 + s4) / T(24);
  g[1] = (s2 - s1) / T(6) + (s3 - s4) / T(12);
  g[2] = (s3 + s4 - s1 - s2) / T(6) + s5;
}

// V_xi (tiles of the block, cld) for the block's tiles, from the position-major padded images
// xt (rows of wp positions, cld apart; the group's images one after the other, their tiles
// numbered on from one image to the next): V = B^T d B for each tile's window d. The V_xi lie
// kWinogradSpacing tiles apart.
template <index_t LD, typename T>
void transform_windows(const T* xt, const WinogradGeometry& g, index_t first, index_t count,
                       T* v) {
  constexpr int L = shifted::Tile<T>::lanes;
  const index_t ld = LD > 0 ? LD : g.cld, row = g.wp * ld, xi_stride = kWinogradSpacing * ld;
  for (index_t t = 0; t < count; ++t) {
    const index_t image = (first + t) / g.tiles, tile = (first + t) % g.tiles;
    const index_t i = tile / g.tiles_w, j = tile % g.tiles_w;
    const T* window = xt + image * g.padded * ld + (4 * i * g.wp + 4 * j) * ld;
    for (index_t lane = 0; lane < ld; lane += L) {
      Vec<T> d[6][6], s[6][6];
      for (int a = 0; a < 6; ++a) {
        const T* line = window + a * row + lane;
        for (int b = 0; b < 6; ++b) d[a][b] = load(line + b * ld);
      }
      for (int b = 0; b < 6; ++b) {  // B^T d, column by column: s[b][a] is element (a, b)
        input_transform<T>(&d[0][b], 6, s[b]);
      }
      T* out = v + t * ld + lane;
      for (int a = 0; a < 6; ++a) {  // (B^T d) B, row by row
        Vec<T> row_out[6];
        input_transform<T>(&s[0][a], 6, row_out);
        for (int b = 0; b < 6; ++b) store(out + (6 * a + b) * xi_stride, row_out[b]);
      }
    }
  }
}

// R tiles by V vectors of M_xi: m (R, V*lanes), rows ldm apart, = v (R, c_in), rows ldv
// apart, times u (c_in, V*lanes), rows ldu apart. With Stride (> 0) the compile-time value of
// ldv: each tile's broadcast is then a constant displacement from one pointer, where a
// stride known only at run time takes a register for each of the R rows' addresses, more
// than there are, and GCC spilled them into vector registers inside the loop.
template <typename T, int R, int V, index_t Stride>
inline void product_tile(const T* v, index_t ldv, const T* u, index_t ldu, index_t c_in, T* m,
                         index_t ldm) {
  constexpr int L = shifted::Tile<T>::lanes;
  const index_t stride = Stride > 0 ? Stride : ldv;
  Vec<T> acc[R][V];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int k = 0; k < V; ++k) acc[r][k] = Vec<T>{};
  }
  for (index_t c = 0; c < c_in; ++c) {
    Vec<T> w[V];
#pragma GCC unroll 4
    for (int k = 0; k < V; ++k) w[k] = load(u + c * ldu + k * L);
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      const Vec<T> e = v[r * stride + c] - Vec<T>{};  // broadcast
#pragma GCC unroll 4
      for (int k = 0; k < V; ++k) acc[r][k] += e * w[k];
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int k = 0; k < V; ++k) store(m + r * ldm + k * L, acc[r][k]);
  }
}

// product_tile for `rows` (R or fewer) tiles.
template <typename T, int R, int V, index_t Stride>
void product_rows(int rows, const T* v, index_t ldv, const T* u, index_t ldu, index_t c_in,
                  T* m, index_t ldm) {
  if constexpr (R > 0) {
    if (rows < R) {
      product_rows<T, R - 1, V, Stride>(rows, v, ldv, u, ldu, c_in, m, ldm);
    } else {
      product_tile<T, R, V, Stride>(v, ldv, u, ldu, c_in, m, ldm);
    }
  }
}

// The products of `count` tiles with `columns` columns of U_xi (V vectors at a time), in
// pieces of R tiles or fewer, as even as they go: 49 tiles as 13 + 12 + 12 + 12 rather than
// 16 + 16 + 16 + 1, whose last tile would load U for a single row.
template <typename T, int R, int V, index_t Stride>
void product_columns(index_t count, index_t col, index_t columns, const T* v, index_t ldv,
                     const T* u, index_t ldu, index_t c_in, T* m, index_t ldm) {
  constexpr int L = shifted::Tile<T>::lanes;
  const index_t pieces = (count + R - 1) / R;
  const index_t piece = (count + pieces - 1) / pieces;
  for (; col + V * L <= columns; col += V * L) {
    for (index_t t = 0; t < count; t += piece) {
      product_rows<T, R, V, Stride>(static_cast<int>(std::min(piece, count - t)), v + t * ldv,
                                    ldv, u + col, ldu, c_in, m + t * ldm + col, ldm);
    }
  }
}

// The block's 36 products M_xi = V_xi U_xi, `count` tiles.
template <typename T>
void block_products(const T* v, const T* u, const WinogradGeometry& g, index_t count, T* m) {
  constexpr int L = shifted::Tile<T>::lanes;
  // Register tiles of R tiles by V vectors of output channels (conv_plan.h).
  constexpr int R2 = kWinogradTileRows2, R1 = kWinogradTileRows1;
  const index_t pairs = g.kld / (2 * L) * (2 * L);  // columns in tiles of two vectors
  with_stride<T>(g.cld, [&](auto ld) {
    constexpr index_t Stride = decltype(ld)::value;
    for (int xi = 0; xi < kXi; ++xi) {
      const T* vx = v + xi * kWinogradSpacing * g.cld;
      const T* ux = u + xi * g.c_in * g.kld;
      T* mx = m + xi * kWinogradSpacing * g.kld;
      product_columns<T, R2, 2, Stride>(count, 0, pairs, vx, g.cld, ux, g.kld, g.c_in, mx,
                                        g.kld);
      product_columns<T, R1, 1, Stride>(count, pairs, g.kld, vx, g.cld, ux, g.kld, g.c_in, mx,
                                        g.kld);
    }
  });
}

// The block's output tiles A^T M A into yt, the group's outputs one after the other,
// position-major (rows of kld, out_w positions a row).
template <index_t LD, typename T>
void inverse_transform(const T* m, const WinogradGeometry& g, index_t first, index_t count,
                       T* yt) {
  constexpr int L = shifted::Tile<T>::lanes;
  const index_t ld = LD > 0 ? LD : g.kld, xi_stride = kWinogradSpacing * ld;
  for (index_t t = 0; t < count; ++t) {
    const index_t image = (first + t) / g.tiles, tile = (first + t) % g.tiles;
    const index_t i = tile / g.tiles_w, j = tile % g.tiles_w;
    T* out = yt + (image * g.out_h + 4 * i) * g.out_w * ld + 4 * j * ld;
    for (index_t lane = 0; lane < ld; lane += L) {
      Vec<T> mt[6][6], s[6][4];
      const T* src = m + t * ld + lane;
      for (int xi = 0; xi < kXi; ++xi) mt[xi / 6][xi % 6] = load(src + xi * xi_stride);
      for (int b = 0; b < 6; ++b) output_transform<T>(&mt[0][b], 6, s[b]);  // A^T M: s[b][r]
      for (int r = 0; r < 4; ++r) {  // (A^T M) A, row by row
        Vec<T> y[4];
        output_transform<T>(&s[0][r], 4, y);
        T* line = out + r * g.out_w * ld + lane;
        for (int c = 0; c < 4; ++c) store(line + c * ld, y[c]);
      }
    }
  }
}

// D_xi (tiles of the block, kld) = A dy A^T for each tile's 4x4 of dy, from dyt (the group's
// dy position-major, rows of kld, out_w positions a row, zeros where the tiles overhang the
// image). The D_xi lie kWinogradSpacing tiles apart.
template <index_t LD, typename T>
void transform_gradients(const T* dyt, const WinogradGeometry& g, index_t first, index_t count,
                         T* d) {
  constexpr int L = shifted::Tile<T>::lanes;
  const index_t ld = LD > 0 ? LD : g.kld, row = g.out_w * ld, xi_stride = kWinogradSpacing * ld;
  for (index_t t = 0; t < count; ++t) {
    const index_t image = (first + t) / g.tiles, tile = (first + t) % g.tiles;
    const index_t i = tile / g.tiles_w, j = tile % g.tiles_w;
    const T* src = dyt + (image * g.out_h + 4 * i) * row + 4 * j * ld;
    for (index_t lane = 0; lane < ld; lane += L) {
      Vec<T> y[4][4], e[4][6];
      for (int r = 0; r < 4; ++r) {
        for (int c = 0; c < 4; ++c) y[r][c] = load(src + r * row + c * ld + lane);
      }
      for (int r = 0; r < 4; ++r) gradient_transform<T>(y[r], 1, e[r]);  // dy A^T, row by row
      T* out = d + t * ld + lane;
      for (int b = 0; b < 6; ++b) {  // A (dy A^T), column by column
        Vec<T> column[6];
        gradient_transform<T>(&e[0][b], 6, column);
        for (int a = 0; a < 6; ++a) store(out + (6 * a + b) * xi_stride, column[a]);
      }
    }
  }
}

// s (R, V*lanes), rows lds apart, += v^T d over `count` tiles: R channels c (v's columns,
// v (count, R) rows ldv apart) by V vectors of d (count, V*lanes), rows ldd apart.
template <typename T, int R, int V>
inline void gradient_tile(const T* v, index_t ldv, const T* d, index_t ldd, index_t count,
                          T* s, index_t lds) {
  constexpr int L = shifted::Tile<T>::lanes;
  Vec<T> acc[R][V];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int k = 0; k < V; ++k) acc[r][k] = Vec<T>{};
  }
  for (index_t t = 0; t < count; ++t, v += ldv, d += ldd) {
    Vec<T> w[V];
#pragma GCC unroll 4
    for (int k = 0; k < V; ++k) w[k] = load(d + k * L);
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r) {
      const Vec<T> e = v[r] - Vec<T>{};  // broadcast
#pragma GCC unroll 4
      for (int k = 0; k < V; ++k) acc[r][k] += e * w[k];
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int k = 0; k < V; ++k) store(s + r * lds + k * L, acc[r][k] + load(s + r * lds + k * L));
  }
}

// gradient_tile for `rows` (R or fewer) channels.
template <typename T, int R, int V>
void gradient_rows(int rows, const T* v, index_t ldv, const T* d, index_t ldd, index_t count,
                   T* s, index_t lds) {
  if constexpr (R > 0) {
    if (rows < R) {
      gradient_rows<T, R - 1, V>(rows, v, ldv, d, ldd, count, s, lds);
    } else {
      gradient_tile<T, R, V>(v, ldv, d, ldd, count, s, lds);
    }
  }
}

// S_xi (C, kld) += V_xi^T D_xi for the block's `count` tiles, the 36 of them kld * C apart.
template <typename T>
void block_gradients(const T* v, const T* d, const WinogradGeometry& g, index_t count, T* s) {
  constexpr int L = shifted::Tile<T>::lanes;
  constexpr int R2 = kWinogradTileRows2, R1 = kWinogradTileRows1;
  const index_t pairs = g.kld / (2 * L) * (2 * L);
  for (int xi = 0; xi < kXi; ++xi) {
    const T* vx = v + xi * kWinogradSpacing * g.cld;
    const T* dx = d + xi * kWinogradSpacing * g.kld;
    T* sx = s + xi * g.c_in * g.kld;
    for (index_t c = 0; c < g.c_in; c += R2) {
      for (index_t col = 0; col < pairs; col += 2 * L) {
        gradient_rows<T, R2, 2>(static_cast<int>(std::min<index_t>(R2, g.c_in - c)), vx + c,
                                g.cld, dx + col, g.kld, count, sx + c * g.kld + col, g.kld);
      }
    }
    for (index_t c = 0; c < g.c_in; c += R1) {
      for (index_t col = pairs; col < g.kld; col += L) {
        gradient_rows<T, R1, 1>(static_cast<int>(std::min<index_t>(R1, g.c_in - c)), vx + c,
                                g.cld, dx + col, g.kld, count, sx + c * g.kld + col, g.kld);
      }
    }
  }
}

// Where each position of an image lies in the padded image and in the tiles' output (or
// dy), both position-major: the transposes skip the padding and the tiles' overhang.
struct PositionRows {
  std::vector<index_t> padded, tiled;
};

inline PositionRows position_rows(const WinogradGeometry& g, index_t h, index_t w) {
  PositionRows rows{std::vector<index_t>(static_cast<size_t>(h * w)),
                    std::vector<index_t>(static_cast<size_t>(h * w))};
  for (index_t p = 0; p < h * w; ++p) {
    rows.padded[p] = ((p / w + 1) * g.wp + p % w + 1) * g.cld;
    rows.tiled[p] = (p / w * g.out_w + p % w) * g.kld;
  }
  return rows;
}

// y (N, K, H, W) = the 3x3, padding 1 convolution of x (N, C, H, W) with the kernel g(k, c, i,
// j), plus bias (unless null). Each thread takes an equal run of the images, a group of them
// (geo.group) at a time.
template <typename T, typename Kernel>
void winograd(const ProductPlan& plan, const T* x, index_t n, index_t c_in, index_t h,
              index_t w, index_t k_out, Kernel g, const T* bias, T* y,
              const ThreadParts<T>& workspace) {
  const WinogradGeometry geo = winograd_geometry<T>(c_in, k_out, h, w);
  const std::vector<T> u = transform_kernels<T>(c_in, k_out, geo.kld, g);
  const index_t plane = h * w;
  const PositionRows rows = position_rows(geo, h, w);
#pragma omp parallel if (plan.parallel)
  {
    T* xt = workspace.mine();  // the group's images, padded and position-major
    T* v = xt + region<T>(geo.group * geo.padded * geo.cld);
    T* m = v + region<T>(kXi * kWinogradSpacing * geo.cld);
    T* yt = m + region<T>(kXi * kWinogradSpacing * geo.kld);  // their outputs, position-major
    // The padding (and the channels past C) stay zero: each image writes only its positions.
    std::fill(xt, xt + geo.group * geo.padded * geo.cld, T(0));
    // Each thread takes an equal run of the images, in groups (the items of a static schedule
    // of groups would leave one thread a group more).
    const index_t team = omp_get_num_threads(), me = omp_get_thread_num();
    const index_t begin = n * me / team, end = n * (me + 1) / team;
    for (index_t first_image = begin; first_image < end; first_image += geo.group) {
      const index_t images = std::min(geo.group, end - first_image);
      for (index_t k = 0; k < images; ++k) {
        transpose(x + (first_image + k) * c_in * plane, plane, c_in, plane,
                  xt + k * geo.padded * geo.cld, geo.cld, static_cast<const T*>(nullptr),
                  nullptr, rows.padded.data());
      }
      const index_t tiles = images * geo.tiles;
      for (index_t first = 0; first < tiles; first += geo.block) {
        const index_t count = std::min(geo.block, tiles - first);
        with_stride<T>(geo.cld, [&](auto ld) {
          transform_windows<decltype(ld)::value>(xt, geo, first, count, v);
        });
        block_products(v, u.data(), geo, count, m);
        with_stride<T>(geo.kld, [&](auto ld) {
          inverse_transform<decltype(ld)::value>(m, geo, first, count, yt);
        });
      }
      for (index_t k = 0; k < images; ++k) {
        transpose(yt + k * geo.out_h * geo.out_w * geo.kld, geo.kld, plane, k_out,
                  y + (first_image + k) * k_out * plane, plane, bias, rows.tiled.data());
      }
    }
  }
}

// dw (K, C, 3, 3) of the 3x3, padding 1 convolution of x (N, C, H, W) whose output's gradient
// is dy (N, K, H, W): S_xi = sum over tiles of V_xi^T D_xi, then dw = G^T S G. Each thread
// sums an equal run of the images into its own S, and the threads' S are added in thread
// order, so the result repeats bit for bit at a fixed thread count.
template <typename T>
void winograd_weights(const ProductPlan& plan, const T* dy, const T* x, T* dw, index_t n,
                      index_t c_in, index_t h, index_t w, index_t k_out,
                      const ThreadParts<T>& workspace) {
  const WinogradGeometry geo = winograd_geometry<T>(c_in, k_out, h, w);
  const PositionRows rows = position_rows(geo, h, w);
  const index_t plane = h * w, sums = kXi * c_in * geo.kld;
  std::vector<T> partial(static_cast<size_t>(omp_get_max_threads() * sums), T(0));
  int team = 1;
#pragma omp parallel if (plan.parallel)
  {
#pragma omp single
    team = omp_get_num_threads();
    T* xt = workspace.mine();  // the group's images, padded and position-major
    T* v = xt + region<T>(geo.group * geo.padded * geo.cld);
    T* d = v + region<T>(kXi * kWinogradSpacing * geo.cld);
    T* dyt = d + region<T>(kXi * kWinogradSpacing * geo.kld);  // their dy, position-major
    T* mine = partial.data() + omp_get_thread_num() * sums;
    // The padding, the tiles' overhang and the channels past C and K stay zero.
    std::fill(xt, xt + geo.group * geo.padded * geo.cld, T(0));
    std::fill(dyt, dyt + geo.group * geo.out_h * geo.out_w * geo.kld, T(0));
    const index_t me = omp_get_thread_num(), threads = omp_get_num_threads();
    const index_t begin = n * me / threads, end = n * (me + 1) / threads;
    for (index_t first_image = begin; first_image < end; first_image += geo.group) {
      const index_t images = std::min(geo.group, end - first_image);
      for (index_t k = 0; k < images; ++k) {
        transpose(x + (first_image + k) * c_in * plane, plane, c_in, plane,
                  xt + k * geo.padded * geo.cld, geo.cld, static_cast<const T*>(nullptr),
                  nullptr, rows.padded.data());
        transpose(dy + (first_image + k) * k_out * plane, plane, k_out, plane,
                  dyt + k * geo.out_h * geo.out_w * geo.kld, geo.kld,
                  static_cast<const T*>(nullptr), nullptr, rows.tiled.data());
      }
      const index_t tiles = images * geo.tiles;
      for (index_t first = 0; first < tiles; first += geo.block) {
        const index_t count = std::min(geo.block, tiles - first);
        with_stride<T>(geo.cld, [&](auto ld) {
          transform_windows<decltype(ld)::value>(xt, geo, first, count, v);
        });
        with_stride<T>(geo.kld, [&](auto ld) {
          transform_gradients<decltype(ld)::value>(dyt, geo, first, count, d);
        });
        block_gradients(v, d, geo, count, mine);
      }
    }
  }
  sum_partials(partial, team, sums);
  for (index_t k = 0; k < k_out; ++k) {
    for (index_t c = 0; c < c_in; ++c) {
      const T* s = partial.data() + c * geo.kld + k;  // S_xi[c][k], xi = 6a + b
      const index_t xi_stride = c_in * geo.kld;
      T rows_g[6][3];  // S G, row a
      for (int a = 0; a < 6; ++a) {
        kernel_gradient(s + 6 * a * xi_stride, static_cast<int>(xi_stride), rows_g[a]);
      }
      for (int j = 0; j < 3; ++j) {
        T column[3];  // G^T (S G), column j
        kernel_gradient(&rows_g[0][j], 3, column);
        for (int i = 0; i < 3; ++i) dw[((k * c_in + c) * 3 + i) * 3 + j] = column[i];
      }
    }
  }
}

}  // namespace

template <typename T>
void winograd_forward(const ProductPlan& plan, const T* x, const T* w, const T* b, T* y,
                      const Frame& f, index_t fn, const ThreadParts<T>& workspace) {
  const auto kernel = [&](index_t k, index_t c, index_t i, index_t j) {
    return w[((k * f.c + c) * 3 + i) * 3 + j];
  };
  winograd(plan, x, f.n, f.c, f.h, f.w, fn, kernel, b, y, workspace);
}

template <typename T>
void winograd_grad_input(const ProductPlan& plan, const T* dy, const T* w, T* dx,
                         const Frame& f, index_t fn, const ThreadParts<T>& workspace) {
  // Output channel c of the grad input, input channel k (dy's): w[k, c] turned by 180 degrees.
  const auto kernel = [&](index_t c, index_t k, index_t i, index_t j) {
    return w[((k * f.c + c) * 3 + 2 - i) * 3 + 2 - j];
  };
  winograd(plan, dy, f.n, fn, f.h, f.w, f.c, kernel, static_cast<const T*>(nullptr), dx,
           workspace);
}

template <typename T>
void winograd_grad_weight(const ProductPlan& plan, const T* dy, const T* x, T* dw,
                          const Frame& f, index_t fn, const ThreadParts<T>& workspace) {
  winograd_weights(plan, dy, x, dw, f.n, f.c, f.h, f.w, fn, workspace);
}

#define DLX_INSTANTIATE_WINOGRAD(T)                                                          \
  template void winograd_forward<T>(const ProductPlan&, const T*, const T*, const T*, T*,    \
                                    const Frame&, index_t, const ThreadParts<T>&);           \
  template void winograd_grad_input<T>(const ProductPlan&, const T*, const T*, T*,           \
                                       const Frame&, index_t, const ThreadParts<T>&);       \
  template void winograd_grad_weight<T>(const ProductPlan&, const T*, const T*, T*,          \
                                        const Frame&, index_t, const ThreadParts<T>&);
DLX_INSTANTIATE_WINOGRAD(float)
DLX_INSTANTIATE_WINOGRAD(double)
#undef DLX_INSTANTIATE_WINOGRAD

}  // namespace dlx::DLX_CPU_LEVEL
