#include "conv_plan.h"

#include <algorithm>
#include <type_traits>

#include "../dispatch.h"
#include "blas.h"
#include "shifted_kernel.h"

namespace dlx::DLX_CPU_LEVEL {
namespace {

// Each thread's workspace, in elements of T, at most: a column buffer of up to half of it (4
// MiB of floats: large enough for an efficient GEMM, small enough to stay near the cache) and
// the item's output beside it. A smaller workspace budget lowers both.
constexpr index_t kThreadWorkspace = index_t(2) << 20;
// Below this a thread's share of the budget is not worth planning for.
constexpr index_t kThreadWorkspaceFloor = index_t(1) << 12;

// Input channels from which the shifted route's backward pass beats im2col's (its grad weight
// computes the channels in whole vectors, its grad input in whole tiles of rows: with fewer
// channels most of that is padding).
constexpr index_t kShiftedBackwardMinChannels = 4;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

bool is_pointwise(const Window2d& win) {
  return win.kh == 1 && win.kw == 1 && win.sh == 1 && win.sw == 1 && win.ph == 0 && win.pw == 0;
}

// -- The im2col route -----------------------------------------------------------------------

// The items of the forward pass and the grad weight. Small images go in groups of whole
// images, so each GEMM is large enough to run near the BLAS's peak (the group's columns and
// its output within the thread's workspace); large images, pointwise kernels and batches of
// fewer images than threads go one block of positions at a time, enough blocks for every
// thread to have work and each block's columns within half the workspace.
template <typename T>
ProductPlan unfolded_items(ConvAlgorithm algorithm, const Frame& f, index_t fn, index_t rows,
                           int threads, index_t limit) {
  const index_t columns = limit / 2;
  const index_t p = std::max<index_t>(f.out_plane(), 1);
  const index_t n = std::max<index_t>(f.n, 1);
  const bool pointwise = algorithm == ConvAlgorithm::pointwise;
  ProductPlan plan{algorithm, false, 0, 1, 1, p, 0, 0, 0};
  const index_t per_image = rows * p;
  if (per_image > 0 && per_image * 2 <= columns && f.n >= threads && !pointwise) {
    index_t images = std::min({columns / per_image, limit / ((rows + fn) * p), ceil_div(n, threads)});
    images = std::max<index_t>(images, 1);
    plan.images = images;
    plan.items = ceil_div(f.n, images);
    plan.workspace = images > 1 ? (rows + fn) * images * p : rows * p;
    return plan;
  }
  index_t blocks = f.n >= threads ? 1 : ceil_div(threads, n);
  blocks = std::min(std::max(blocks, ceil_div(per_image, columns)), p);
  plan.blocks = blocks;
  plan.length = ceil_div(p, blocks);
  plan.items = f.n * blocks;
  plan.workspace = pointwise ? 0 : rows * plan.length;
  return plan;
}

// The grad input's items: (image, group of channels), so that each item owns the dx planes
// it writes; enough groups for every thread to have work and each group's columns within half
// the workspace (a single channel's columns may exceed it).
ProductPlan grad_input_items(ConvAlgorithm algorithm, const Frame& f, const Window2d& win,
                             int threads, index_t limit) {
  const index_t kk = win.kh * win.kw;
  const index_t p = std::max<index_t>(f.out_plane(), 1);
  index_t groups = f.n >= threads ? 1 : ceil_div(threads, std::max<index_t>(f.n, 1));
  groups = std::max(groups, ceil_div(f.c * kk * p, limit / 2));
  groups = std::clamp<index_t>(groups, 1, std::max<index_t>(f.c, 1));
  const index_t per_group = ceil_div(std::max<index_t>(f.c, 1), groups);
  return ProductPlan{algorithm, false, f.n * groups, 1, groups, per_group, 0, 0,
                     per_group * kk * f.out_plane()};
}

// -- The shifted route ----------------------------------------------------------------------

// Whether the product of m rows over positions in `lines` runs of `run`, each position a sum
// of `steps` products (product() computing the positions as `columns` whole vectors), is
// faster tiled by positions than by rows: when it takes at least 5% fewer multiply-adds and
// there are at least 64 of them per position to pay for the transposed output.
template <typename T>
bool tile_by_positions(index_t m, index_t steps, index_t lines, index_t run, index_t columns) {
  if (lines < 1 || run < 1) return false;  // an empty image, whose output is all padding
  constexpr index_t R = shifted::PositionTile<T>::rows;
  const index_t pieces = ceil_div(run, R);
  const index_t positions = lines * pieces * ceil_div(run, pieces);
  const index_t by_positions = shifted::round_up(m, shifted::PositionTile<T>::lanes) * positions;
  const index_t by_rows = shifted::padded_rows<T>(m) * columns;
  return m > shifted::PositionTile<T>::lanes && steps >= 64 && 20 * by_positions < 19 * by_rows;
}

template <typename T>
void set_tile(ProductPlan& plan) {
  if (plan.algorithm == ConvAlgorithm::shifted_by_positions) {
    plan.tile_rows = shifted::PositionTile<T>::rows;
    plan.tile_columns = shifted::PositionTile<T>::width;
  } else {
    plan.tile_rows = shifted::Tile<T>::rows;
    plan.tile_columns = shifted::Tile<T>::vectors * shifted::Tile<T>::lanes;
  }
}

// Whether a strided kernel runs on the shifted route: at stride 2 when every stride phase
// holds a tap of the kernel (a 3x3, not a strided 1x1, whose other phases would be read for
// nothing), where it was measured faster than im2col (docs/core.md).
bool phase_split_pays(const Window2d& win) {
  return win.sh <= 2 && win.sw <= 2 && win.kh >= win.sh && win.kw >= win.sw;
}

// The shifted route's products, one image an item, or nothing where it does not apply: at
// least one image per thread, a kernel other than pointwise (and at stride 2, one that
// phase_split_pays), and a padded image and a wide dy within half the thread's workspace (each
// product's whole workspace within all of it), the rows within the BLAS's 32-bit sizes.
template <typename T>
bool plan_shifted(const Frame& f, index_t fn, const Window2d& win, int threads, index_t limit,
                  ConvPlan& plan) {
  const ConvRoute route = conv_route();
  if (route == ConvRoute::unfolded) return false;
  const bool forced = route == ConvRoute::shifted;  // wherever it can compute the product
  if (is_pointwise(win) || f.c < 1 || (f.n < threads && !forced)) return false;
  const bool strided = win.sh != 1 || win.sw != 1;
  if (strided && !forced && !phase_split_pays(win)) return false;
  const Shifted s = shifted_geometry<T>(f, win);
  const index_t image = s.phases * f.c * s.length;  // the padded image, or its phases
  if (image + fn * s.dlength > limit / 2 || s.dlength > kMaxBlasDim ||
      s.phases * s.length > kMaxBlasDim) {
    return false;
  }
  const index_t p = f.out_plane();
  const index_t rows = f.c * s.offsets;
  const bool parallel = f.n > 1 && f.n * fn * p * rows > kParallelGrain;
  ProductPlan forward{ConvAlgorithm::shifted, parallel, f.n, 1, 1, p, 0, 0, 0};
  if (tile_by_positions<T>(fn, rows, f.oh, f.ow, s.span)) {
    forward.algorithm = ConvAlgorithm::shifted_by_positions;
    forward.workspace = image + p * shifted::padded_width<T>(fn);
  } else {
    forward.workspace = image + shifted::padded_rows<T>(fn) * s.span;
  }
  set_tile<T>(forward);
  if (forward.workspace > limit) return false;
  plan.forward = forward;
  if (f.c < kShiftedBackwardMinChannels && !forced) return true;

  // The backward pass: the image position-major and dy widened, for both gradients.
  ProductPlan grad_weight{ConvAlgorithm::shifted, parallel, f.n, 1, 1, p, 0, 0, 0};
  grad_weight.workspace = s.phases * s.length * shifted::padded_columns<T>(f.c) +
                          shifted::padded_rows<T>(fn) * s.dlength;
  set_tile<T>(grad_weight);
  ProductPlan grad_input = grad_weight;
  if (!strided && tile_by_positions<T>(f.c, fn * s.offsets, f.h, f.w, s.dspan)) {
    grad_input.algorithm = ConvAlgorithm::shifted_by_positions;
    grad_input.workspace = f.plane() * shifted::padded_width<T>(f.c);
  } else {
    grad_input.workspace = shifted::padded_rows<T>(f.c) * s.dspan;
  }
  set_tile<T>(grad_input);
  if (grad_weight.workspace + grad_input.workspace > limit) return true;
  plan.grad_weight = grad_weight;
  plan.grad_input = grad_input;
  return true;
}

// -- The Winograd route ---------------------------------------------------------------------

// Where F(4x4, 3x3) beats the shifted route (docs/core.md): from 16 to 64 channels on each
// side (with fewer, its transforms cost more than the multiply-adds they save; at 128 it ran
// slower), on images of at least 4 x 4. Float only: in double the shifted route's sums, with
// fewer roundings, stay the planned route.
constexpr index_t kWinogradMinChannels = 16;
constexpr index_t kWinogradMaxChannels = 64;
constexpr index_t kWinogradMinSide = 4;

bool winograd_applies(const Frame& f, const Window2d& win) {
  return win.kh == 3 && win.kw == 3 && win.sh == 1 && win.sw == 1 && win.ph == 1 &&
         win.pw == 1 && f.h > 0 && f.w > 0;
}

// The Winograd route's products: the forward pass, and the backward pass's two gradients.
template <typename T>
void plan_winograd(const Frame& f, index_t fn, const Window2d& win, int threads, index_t limit,
                   ConvPlan& plan) {
  const ConvRoute route = conv_route();
  if (route != ConvRoute::planned && route != ConvRoute::winograd) return;
  const bool forced = route == ConvRoute::winograd;  // wherever it can compute the product
  if (!winograd_applies(f, win) || f.c < 1 || fn < 1) return;
  const bool pays = std::is_same_v<T, float> && f.n >= threads &&
                    std::min(f.c, fn) >= kWinogradMinChannels &&
                    std::max(f.c, fn) <= kWinogradMaxChannels &&
                    std::min(f.h, f.w) >= kWinogradMinSide;
  if (!forced && !pays) return;
  const bool parallel = f.n > 1 && f.n * fn * f.out_plane() * f.c * 9 > kParallelGrain;
  const auto product = [&](index_t c_in, index_t k_out) {
    const WinogradGeometry g = winograd_geometry<T>(c_in, k_out, f.h, f.w);
    return ProductPlan{ConvAlgorithm::winograd,
                       parallel,
                       ceil_div(f.n, g.group),
                       g.group,
                       g.group > 1 ? 1 : ceil_div(g.tiles, g.block),
                       g.block,
                       kWinogradTileRows2,
                       2 * shifted::Tile<T>::lanes,
                       g.workspace};
  };
  const ProductPlan forward = product(f.c, fn);
  if (forward.workspace <= limit) plan.forward = forward;
  // The grad weight reads the image's windows as the forward pass does, and dy in tiles; the
  // grad input is the forward pass's product with the channels' roles swapped.
  const ProductPlan grad_weight = forward, grad_input = product(fn, f.c);
  if (std::max(grad_weight.workspace, grad_input.workspace) <= limit) {
    plan.grad_weight = grad_weight;
    plan.grad_input = grad_input;
  }
}

}  // namespace

const char* name_of(ConvAlgorithm algorithm) {
  switch (algorithm) {
    case ConvAlgorithm::pointwise:
      return "pointwise";
    case ConvAlgorithm::im2col:
      return "im2col";
    case ConvAlgorithm::shifted:
      return "shifted";
    case ConvAlgorithm::shifted_by_positions:
      return "shifted by positions";
    case ConvAlgorithm::winograd:
      return "winograd";
  }
  return "unknown";
}

index_t ConvPlan::thread_workspace() const {
  // The shifted route's backward pass computes both gradients at once; other routes compute
  // them one after the other.
  const bool shared = grad_weight.algorithm == ConvAlgorithm::shifted;
  const index_t backward = shared ? grad_weight.workspace + grad_input.workspace
                                  : std::max(grad_weight.workspace, grad_input.workspace);
  return std::max(forward.workspace, backward);
}

template <typename T>
index_t thread_workspace_limit(std::size_t budget_bytes, int threads) {
  // Less what thread_stride() may add: the lease for all threads then fits the budget.
  const index_t layout = static_cast<index_t>((4096 + 7 * 64) / sizeof(T));
  const index_t share =
      static_cast<index_t>(budget_bytes / sizeof(T)) / std::max(threads, 1) - layout;
  return std::clamp(share, kThreadWorkspaceFloor, kThreadWorkspace);
}

template <typename T>
ConvPlan plan_conv(const Frame& f, index_t fn, const Window2d& win, int threads, index_t limit) {
  const index_t rows = f.c * win.kh * win.kw;
  const ConvAlgorithm unfolded = is_pointwise(win) ? ConvAlgorithm::pointwise : ConvAlgorithm::im2col;
  const bool worth_threads = f.n * fn * f.out_plane() * rows > kParallelGrain;
  ConvPlan plan;
  plan.threads = threads;
  plan.forward = unfolded_items<T>(unfolded, f, fn, rows, threads, limit);
  plan.forward.parallel = worth_threads && plan.forward.items > 1;
  plan.grad_weight = plan.forward;
  plan.grad_input = grad_input_items(unfolded, f, win, threads, limit);
  plan.grad_input.parallel = worth_threads && plan.grad_input.items > 1;
  plan_shifted<T>(f, fn, win, threads, limit, plan);
  plan_winograd<T>(f, fn, win, threads, limit, plan);
  return plan;
}

template <typename T>
Shifted shifted_geometry(const Frame& f, const Window2d& win) {
  const index_t offsets = win.kh * win.kw;
  const index_t phases = win.sh * win.sw;
  if (phases == 1) {
    const index_t wp = std::max(f.w + win.pw, f.ow);
    const index_t reach = (win.kh - 1) * wp + win.kw - 1;
    const index_t wide = f.oh * wp;
    const index_t span = shifted::padded_columns<T>(wide);
    const index_t inner = win.ph * wp;
    const index_t dspan = shifted::padded_columns<T>(f.h * wp);
    return Shifted{wp,    offsets, reach, wide,   span, reach + span,
                   inner, dspan,   reach + std::max(wide, inner + dspan),
                   win.kw, 1, 1, 1, f.h + 2 * win.ph};
  }
  // A phase's row holds the OW positions of an output row and the (KW-1)/SW more its taps
  // reach; the wrapped-around reads of the extra output columns land in the next row.
  const index_t wp = std::max<index_t>(f.ow + (win.kw - 1) / win.sw, 1);
  const index_t rows = f.oh + (win.kh - 1) / win.sh;
  const index_t reach = (win.kh - 1) / win.sh * wp + (win.kw - 1) / win.sw;
  const index_t wide = f.oh * wp;
  const index_t span = shifted::padded_columns<T>(wide);
  const index_t dspan = shifted::padded_columns<T>(rows * wp);
  return Shifted{wp, offsets, reach, wide,   span,   reach + span, 0, dspan,
                 reach + std::max(wide, dspan), win.kw, win.sh, win.sw, phases, rows};
}

template <typename T>
WinogradGeometry winograd_geometry(index_t c_in, index_t k_out, index_t h, index_t w) {
  const index_t tiles_h = ceil_div(h, 4), tiles_w = ceil_div(w, 4), tiles = tiles_h * tiles_w;
  // Blocks of kWinogradBlock tiles at most: a block's transformed windows and products (36 of
  // each) stay in the cache from the transforms through the products to the inverse
  // transform. A large image's tiles go in blocks as even as they go; small images go several
  // to a block (a 7 x 7 image has 4 tiles: alone, each load of U would serve 4 tiles).
  const index_t group = std::max<index_t>(1, kWinogradBlock / tiles);
  const index_t block =
      group > 1 ? group * tiles
                : ceil_div(tiles, std::max<index_t>(1, ceil_div(tiles, kWinogradBlock)));
  const index_t out_h = 4 * tiles_h, out_w = 4 * tiles_w;
  const index_t wp = out_w + 2, padded = (out_h + 2) * wp;
  const index_t cld = shifted::padded_columns<T>(c_in), kld = shifted::padded_columns<T>(k_out);
  const index_t workspace =
      region<T>(group * padded * cld) + region<T>(36 * kWinogradSpacing * cld) +
      region<T>(36 * kWinogradSpacing * kld) + group * out_h * out_w * kld;
  return WinogradGeometry{c_in, k_out, tiles_w, tiles, group, out_h, out_w, wp, padded, cld,
                          kld, block, workspace};
}

#define DLX_INSTANTIATE_PLAN(T)                                                               \
  template index_t thread_workspace_limit<T>(std::size_t, int);                               \
  template ConvPlan plan_conv<T>(const Frame&, index_t, const Window2d&, int, index_t);       \
  template Shifted shifted_geometry<T>(const Frame&, const Window2d&);                          \
  template WinogradGeometry winograd_geometry<T>(index_t, index_t, index_t, index_t);
DLX_INSTANTIATE_PLAN(float)
DLX_INSTANTIATE_PLAN(double)
#undef DLX_INSTANTIATE_PLAN

}  // namespace dlx::DLX_CPU_LEVEL
