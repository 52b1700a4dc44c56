// The convolution planner: from the shapes, the element type, the thread count, this CPU
// level's register tiles and the workspace budget, it decides for each of a convolution's
// three products (forward, grad weight, grad input) which algorithm runs, how the work is cut
// into items for the threads, the tile, and the workspace every thread needs. The executors
// (conv_im2col.cpp, conv_shifted.cpp, conv_winograd.cpp) carry a plan out and decide nothing;
// conv.cpp makes the plan, leases its workspace and calls them. docs/core.md has the
// measurements behind each threshold.
//
// Notation: x (N, C, H, W), w (FN, C, KH, KW), y (N, FN, OH, OW), P = OH*OW positions,
// CKK = C*KH*KW rows of the column matrix.
#pragma once

#include "level.h"
#include "shifted_kernel.h"

namespace dlx::DLX_CPU_LEVEL {

enum class ConvAlgorithm {
  pointwise,             // 1x1, stride 1, no padding: the image is its own column matrix
  im2col,                // the book's method: unfold, then one GEMM per item
  shifted,               // shifted slices of the padded image (of its stride phases), register-blocked
  shifted_by_positions,  // the same, the output tiled by positions (small images)
  winograd,              // F(4x4, 3x3): 3x3 kernels, stride 1, padding 1
};

const char* name_of(ConvAlgorithm algorithm);

// Convolution loops with less work than this (multiply-adds, or elements moved) stay on one
// thread: waking the team costs more.
constexpr index_t kParallelGrain = index_t(1) << 15;

// How one product runs.
struct ProductPlan {
  ConvAlgorithm algorithm;
  bool parallel;     // worth waking the thread team for
  index_t items;     // pieces of work the threads share (statically, in order)
  // im2col and pointwise: an item is `images` whole images side by side (images > 1), or a
  // block of `length` positions of one image, `blocks` blocks an image. For the grad input
  // an item is a group of `length` channels of one image, `blocks` groups an image.
  // winograd: an item is a group of `images` images (each thread takes an equal run of the
  // images, in such groups), their tiles in blocks of `length`, `blocks` blocks an image.
  index_t images, blocks, length;
  // shifted: the register tile, rows by columns of the product's output; winograd: that of
  // its products, tiles by output channels.
  int tile_rows, tile_columns;
  index_t workspace;  // elements of T each thread needs
};

struct ConvPlan {
  ProductPlan forward, grad_weight, grad_input;
  int threads;
  // Elements of T each thread needs for any pass of this layer: the forward pass and the
  // backward pass (the shifted route runs both gradients in one pass over the images, sharing
  // its buffers) lease the same, so that each thread works in the same memory, warm in its
  // own caches, in every pass.
  index_t thread_workspace() const;
};

// Elements of T the workspace budget allows each thread.
template <typename T>
index_t thread_workspace_limit(std::size_t budget_bytes, int threads);

template <typename T>
ConvPlan plan_conv(const Frame& f, index_t fn, const Window2d& win, int threads,
                   index_t thread_limit);

// The geometry of the shifted route (see conv_shifted.cpp). At stride 1: the image
// zero-padded into rows of wp = W + PW (the zeros at the start of a row are also the
// right-hand padding of the row before), the output computed wp positions wide. At a larger
// stride: the padded image split into its SH*SW stride phases, each an image of `rows` rows
// of wp = OW + (KW-1)/SW, and the output again computed wp positions wide.
struct Shifted {
  index_t wp;       // padded row length (of each phase image when strided)
  index_t offsets;  // KH * KW
  index_t reach;    // the largest shift
  index_t wide;     // OH * Wp: positions of the wide output
  index_t span;     // the wide output's columns as the kernel computes them (whole vectors)
  index_t length;   // elements per padded channel (of each phase): every slice the kernel reads
  index_t inner;    // first position of dXpad the grad input computes
  index_t dspan;    // positions of dXpad (of each phase) from `inner`, as the kernel computes them
  index_t dlength;  // elements per row of dY_wide with `reach` zeros on its left
  index_t kw, sh, sw;
  index_t phases;   // SH * SW: 1 at stride 1
  index_t rows;     // rows of each phase image (strided only)
  // Kernel offset k = (ki, kj) reads phase phase(k) at shift(k) positions from the output's.
  index_t phase(index_t k) const { return (k / kw % sh) * sw + k % kw % sw; }
  index_t shift(index_t k) const { return (k / kw / sh) * wp + k % kw / sw; }
};

template <typename T>
Shifted shifted_geometry(const Frame& f, const Window2d& win);

// The geometry of the Winograd route (see conv_winograd.cpp): the output in 4x4 tiles (the
// last row and column of them may overhang the image), taken `block` at a time, from one
// image or, where an image has at most kWinogradBlock / 2, from a group of them; the image
// padded by one position on the top and left and by zeros to whole tiles on the bottom and
// right, position-major, a row of cld elements (the channels in whole vectors) per position;
// the output position-major too, rows of kld, out_w positions a row.
struct WinogradGeometry {
  index_t c_in, k_out;
  index_t tiles_w, tiles;  // a row of tiles, an image's tiles
  index_t group;           // images a group: small images go several to a block
  index_t out_h, out_w;  // the tiles' extent: H and W rounded up to whole tiles
  index_t wp;            // positions in a padded row: out_w + 2
  index_t padded;        // positions of the padded image: (out_h + 2) * wp
  index_t cld, kld;
  index_t block;      // tiles a block: a group's, or kWinogradBlock or fewer of an image's
  index_t workspace;  // elements of T a thread needs: four regions (see region())
};

// The most tiles a block of the Winograd route holds. Its 36 transformed windows (and
// products) lie kWinogradBlock + 1 tiles apart, a constant, so that every load and store of a
// window is a fixed displacement from one pointer; the extra tile keeps the 36 from lying a
// whole number of cache-set strides apart (32 tiles of 16 floats are 2 KiB, 64 are 4 KiB),
// where they would compete for the same cache sets.
constexpr index_t kWinogradBlock = 32;
constexpr index_t kWinogradSpacing = kWinogradBlock + 1;

// Tiles in the Winograd products' register tiles, with one and with two vectors of output
// channels (R*V accumulators, V vectors of U and a broadcast element within the register
// file; with 32 registers 30 x 1 and 24 x 1 ran slower than 16 x 1).
constexpr int kWinogradTileRows1 = shifted::kRegisters == 32 ? 16 : 12;
constexpr int kWinogradTileRows2 = shifted::kRegisters == 32 ? 12 : 6;

template <typename T>
WinogradGeometry winograd_geometry(index_t c_in, index_t k_out, index_t h, index_t w);

// A thread's workspace holds a few regions (an item's columns and output, say), each
// starting on a cache line one line past a whole number of lines: regions read in lockstep
// by a GEMM then never start a whole number of pages apart, where they would compete for the
// same cache sets. region() is the distance from one region's start to the next.
template <typename T>
index_t region(index_t elements) {
  constexpr index_t line = 64 / sizeof(T);
  return (elements + line - 1) / line * line + line;
}

// The distance from one thread's part of the workspace to the next: whole pages, so that no
// two threads write to one page (the hardware prefetchers, which stop at page boundaries,
// would pull the other thread's lines into contention; docs/core.md has the cost).
template <typename T>
index_t thread_stride(index_t elements) {
  constexpr index_t line = 64 / sizeof(T), page = 4096 / sizeof(T);
  // The first region starts a line in (ThreadParts::mine), and each of up to three regions
  // may round up by almost two lines: five lines cover every way a part is carved.
  return (region<T>(elements + 5 * line) + page - 1) / page * page;
}

// A call's workspace, a part for each thread. Each part's first region starts one cache line
// into its first page: page-aligned, a grad input's column buffer ran 30% slower (see
// docs/core.md), as arrays a whole number of pages apart share cache sets.
template <typename T>
struct ThreadParts {
  T* data;
  index_t stride;  // elements from one thread's part to the next
  T* mine() const { return data + omp_get_thread_num() * stride + 64 / sizeof(T); }
};

}  // namespace dlx::DLX_CPU_LEVEL
