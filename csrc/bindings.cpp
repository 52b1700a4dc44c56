// Python bindings of the dlx kernels, kept thin: refuse anything but C-contiguous float32/float64
// arrays (no silent conversion), check shapes, allocate outputs with the GIL held, then run the
// kernel with the GIL released. dlx.ops is the public front; it validates before calling here,
// and these checks guard the module against direct use.
#include <cblas.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <vector>
#include <string>
#include <tuple>

#include "build_info.h"
#include "dispatch.h"
#include "openmp.h"
#include "workspace.h"

namespace py = pybind11;
using dlx::Frame;
using dlx::index_t;
using dlx::Window2d;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  return s + (a.ndim() == 1 ? ",)" : ")");
}

void check_ndim(const py::array& a, py::ssize_t ndim, const char* name) {
  if (a.ndim() != ndim) dlx::fail(name, " must be ", ndim, "-D, got shape ", shape_of(a));
}

Window2d make_window(index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw) {
  if (kh <= 0 || kw <= 0) dlx::fail("kernel_size must be positive, got (", kh, ", ", kw, ")");
  if (sh <= 0 || sw <= 0) dlx::fail("stride must be positive, got (", sh, ", ", sw, ")");
  if (ph < 0 || pw < 0) dlx::fail("pad must be non-negative, got (", ph, ", ", pw, ")");
  return Window2d{kh, kw, sh, sw, ph, pw};
}

// The frame of an (N, C, H, W) input under a window, refusing windows that do not fit.
Frame frame_for(index_t n, index_t c, index_t h, index_t w, const Window2d& win) {
  if (n < 0 || c < 0 || h < 0 || w < 0) dlx::fail("negative input size");
  if (win.kh > h + 2 * win.ph || win.kw > w + 2 * win.pw) {
    dlx::fail("kernel (", win.kh, ", ", win.kw, ") is larger than the padded input (",
              h + 2 * win.ph, ", ", w + 2 * win.pw, ")");
  }
  return dlx::make_frame(n, c, h, w, win);
}

Frame frame_of(const py::array& x, const Window2d& win) {
  check_ndim(x, 4, "x");
  return frame_for(x.shape(0), x.shape(1), x.shape(2), x.shape(3), win);
}

// The window and frame of a pooling op over an (N, C, H, W) input. Every window must cover a
// real cell: the padding is at most half the kernel, and the planes are not empty.
std::pair<Window2d, Frame> pool_geometry(index_t n, index_t c, index_t h, index_t w, index_t kh,
                                         index_t kw, index_t sh, index_t sw, index_t ph,
                                         index_t pw) {
  const Window2d win = make_window(kh, kw, sh, sw, ph, pw);
  if (2 * win.ph > win.kh || 2 * win.pw > win.kw) {
    dlx::fail("pad (", win.ph, ", ", win.pw, ") must be at most half of kernel_size (", win.kh,
              ", ", win.kw, ")");
  }
  const Frame f = frame_for(n, c, h, w, win);
  if (f.h < 1 || f.w < 1) dlx::fail("pooling needs H and W >= 1, got (", f.h, ", ", f.w, ")");
  return {win, f};
}

std::pair<Window2d, Frame> pool_geometry(const py::array& x, index_t kh, index_t kw, index_t sh,
                                         index_t sw, index_t ph, index_t pw) {
  check_ndim(x, 4, "x");
  return pool_geometry(x.shape(0), x.shape(1), x.shape(2), x.shape(3), kh, kw, sh, sw, ph, pw);
}

void check_shape(const py::array& a, std::initializer_list<index_t> shape, const char* name) {
  bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
  py::ssize_t i = 0;
  std::string want = "(";
  for (index_t s : shape) {
    if (same && a.shape(i) != s) same = false;
    want += (i ? ", " : "") + std::to_string(s);
    ++i;
  }
  if (!same) dlx::fail(name, " must have shape ", want, "), got ", shape_of(a));
}

template <typename T>
Array<T> im2col(const Array<T>& x, index_t kh, index_t kw, index_t sh, index_t sw, index_t ph,
                index_t pw) {
  const Window2d win = make_window(kh, kw, sh, sw, ph, pw);
  const Frame f = frame_of(x, win);
  Array<T> col({f.n * f.out_plane(), f.c * kh * kw});
  py::gil_scoped_release release;
  dlx::kernels<T>().im2col(x.data(), f, win, col.mutable_data());
  return col;
}

template <typename T>
Array<T> col2im(const Array<T>& col, std::tuple<index_t, index_t, index_t, index_t> x_shape,
                index_t kh, index_t kw, index_t sh, index_t sw, index_t ph, index_t pw) {
  const Window2d win = make_window(kh, kw, sh, sw, ph, pw);
  const auto [n, c, h, w] = x_shape;
  const Frame f = frame_for(n, c, h, w, win);
  check_shape(col, {f.n * f.out_plane(), f.c * kh * kw}, "col");
  Array<T> x({n, c, h, w});
  py::gil_scoped_release release;
  dlx::kernels<T>().col2im(col.data(), f, win, x.mutable_data());
  return x;
}

template <typename T>
Array<T> conv2d_forward(const Array<T>& x, const Array<T>& w, std::optional<Array<T>> b,
                        index_t sh, index_t sw, index_t ph, index_t pw) {
  check_ndim(w, 4, "w");
  const Window2d win = make_window(w.shape(2), w.shape(3), sh, sw, ph, pw);
  const Frame f = frame_of(x, win);
  const index_t fn = w.shape(0);
  if (w.shape(1) != f.c) dlx::fail("w has ", w.shape(1), " input channels but x has ", f.c);
  if (b) check_shape(*b, {fn}, "b");
  Array<T> y({f.n, fn, f.oh, f.ow});
  const T* bias = b ? b->data() : nullptr;
  py::gil_scoped_release release;
  dlx::kernels<T>().conv2d_forward(x.data(), w.data(), bias, y.mutable_data(), f, fn, win);
  return y;
}

py::dict describe(const dlx::ProductDescription& d) {
  py::dict product;
  product["algorithm"] = d.algorithm;
  product["parallel"] = d.parallel;
  product["items"] = d.items;
  product["images"] = d.images;
  product["blocks"] = d.blocks;
  product["length"] = d.length;
  product["tile"] = d.tile_rows ? py::object(py::make_tuple(d.tile_rows, d.tile_columns)) : py::none();
  product["workspace_bytes"] = d.workspace_bytes;
  return product;
}

template <typename T>
py::dict conv2d_plan(const Array<T>& x, const Array<T>& w, index_t sh, index_t sw, index_t ph,
                     index_t pw) {
  check_ndim(w, 4, "w");
  const Window2d win = make_window(w.shape(2), w.shape(3), sh, sw, ph, pw);
  const Frame f = frame_of(x, win);
  if (w.shape(1) != f.c) dlx::fail("w has ", w.shape(1), " input channels but x has ", f.c);
  const dlx::ConvPlanDescription plan = dlx::kernels<T>().conv2d_plan(f, w.shape(0), win);
  py::dict out;
  out["forward"] = describe(plan.forward);
  out["grad_weight"] = describe(plan.grad_weight);
  out["grad_input"] = describe(plan.grad_input);
  out["threads"] = plan.threads;
  out["workspace_bytes"] = plan.workspace_bytes;
  return out;
}

template <typename T>
std::tuple<std::optional<Array<T>>, Array<T>, std::optional<Array<T>>> conv2d_backward(
    const Array<T>& dy, const Array<T>& x, const Array<T>& w, index_t sh, index_t sw, index_t ph,
    index_t pw, bool input_grad, bool bias_grad) {
  check_ndim(w, 4, "w");
  const Window2d win = make_window(w.shape(2), w.shape(3), sh, sw, ph, pw);
  const Frame f = frame_of(x, win);
  const index_t fn = w.shape(0);
  if (w.shape(1) != f.c) dlx::fail("w has ", w.shape(1), " input channels but x has ", f.c);
  check_shape(dy, {f.n, fn, f.oh, f.ow}, "dy");
  std::optional<Array<T>> dx;
  if (input_grad) dx = Array<T>({f.n, f.c, f.h, f.w});
  Array<T> dw({fn, f.c, win.kh, win.kw});
  std::optional<Array<T>> db;
  if (bias_grad) db = Array<T>({fn});
  T* dx_data = dx ? dx->mutable_data() : nullptr;
  T* db_data = db ? db->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    dlx::kernels<T>().conv2d_backward(dy.data(), x.data(), w.data(), dx_data, dw.mutable_data(),
                                      db_data, f, fn, win);
  }
  return {dx, dw, db};
}

template <typename T>
std::tuple<Array<T>, Array<std::int64_t>> max_pool2d_forward(const Array<T>& x, index_t kh,
                                                             index_t kw, index_t sh, index_t sw,
                                                             index_t ph, index_t pw) {
  const auto [win, f] = pool_geometry(x, kh, kw, sh, sw, ph, pw);
  Array<T> y({f.n, f.c, f.oh, f.ow});
  Array<std::int64_t> argmax({f.n, f.c, f.oh, f.ow});
  {
    py::gil_scoped_release release;
    dlx::kernels<T>().max_pool2d_forward(x.data(), y.mutable_data(), argmax.mutable_data(), f, win);
  }
  return {y, argmax};
}

template <typename T>
Array<T> max_pool2d_backward(const Array<T>& dy, const Array<std::int64_t>& argmax,
                             std::tuple<index_t, index_t, index_t, index_t> x_shape, index_t kh,
                             index_t kw, index_t sh, index_t sw, index_t ph, index_t pw) {
  const auto [n, c, h, w] = x_shape;
  const auto [win, f] = pool_geometry(n, c, h, w, kh, kw, sh, sw, ph, pw);
  check_shape(dy, {f.n, f.c, f.oh, f.ow}, "dy");
  check_shape(argmax, {f.n, f.c, f.oh, f.ow}, "argmax");
  Array<T> dx({n, c, h, w});
  index_t bad;
  {
    py::gil_scoped_release release;
    bad = dlx::kernels<T>().max_pool2d_backward(dy.data(), argmax.data(), dx.mutable_data(), f);
  }
  if (bad >= 0) {
    dlx::fail("argmax holds ", argmax.data()[bad], " at flat position ", bad,
              ", outside the input plane [0, ", f.plane(), ")");
  }
  return dx;
}

template <typename T>
Array<T> avg_pool2d_forward(const Array<T>& x, index_t kh, index_t kw, index_t sh, index_t sw,
                            index_t ph, index_t pw) {
  const auto [win, f] = pool_geometry(x, kh, kw, sh, sw, ph, pw);
  Array<T> y({f.n, f.c, f.oh, f.ow});
  py::gil_scoped_release release;
  dlx::kernels<T>().avg_pool2d_forward(x.data(), y.mutable_data(), f, win);
  return y;
}

template <typename T>
Array<T> avg_pool2d_backward(const Array<T>& dy,
                             std::tuple<index_t, index_t, index_t, index_t> x_shape, index_t kh,
                             index_t kw, index_t sh, index_t sw, index_t ph, index_t pw) {
  const auto [n, c, h, w] = x_shape;
  const auto [win, f] = pool_geometry(n, c, h, w, kh, kw, sh, sw, ph, pw);
  check_shape(dy, {f.n, f.c, f.oh, f.ow}, "dy");
  Array<T> dx({n, c, h, w});
  py::gil_scoped_release release;
  dlx::kernels<T>().avg_pool2d_backward(dy.data(), dx.mutable_data(), f, win);
  return dx;
}

template <typename T>
Array<T> relu_forward(const Array<T>& x) {
  Array<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  py::gil_scoped_release release;
  dlx::kernels<T>().relu_forward(x.data(), y.mutable_data(), static_cast<index_t>(x.size()));
  return y;
}

template <typename T>
Array<T> relu_backward(const Array<T>& dy, const Array<T>& y) {
  if (dy.ndim() != y.ndim() || !std::equal(dy.shape(), dy.shape() + dy.ndim(), y.shape())) {
    dlx::fail("dy must have the shape of y ", shape_of(y), ", got ", shape_of(dy));
  }
  Array<T> dx(std::vector<py::ssize_t>(y.shape(), y.shape() + y.ndim()));
  py::gil_scoped_release release;
  dlx::kernels<T>().relu_backward(dy.data(), y.data(), dx.mutable_data(), static_cast<index_t>(y.size()));
  return dx;
}

template <typename T>
Array<T> add_forward(const Array<T>& a, const Array<T>& b, bool relu) {
  if (a.ndim() != b.ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), b.shape())) {
    dlx::fail("b must have the shape of a ", shape_of(a), ", got ", shape_of(b));
  }
  Array<T> y(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
  py::gil_scoped_release release;
  dlx::kernels<T>().add_forward(a.data(), b.data(), y.mutable_data(), static_cast<index_t>(a.size()),
                                relu);
  return y;
}

// Adam's update of param, m and v in place (see optim.h); the arrays are the caller's own.
template <typename T>
void adam_step(Array<T>& param, const Array<T>& grad, Array<T>& m, Array<T>& v, T beta1, T beta2,
               T lr_t, T v_scale, T eps) {
  for (const auto& [a, name] : {std::pair<const py::array*, const char*>{&grad, "grad"},
                                {&m, "m"},
                                {&v, "v"}}) {
    if (a->ndim() != param.ndim() ||
        !std::equal(a->shape(), a->shape() + a->ndim(), param.shape())) {
      dlx::fail(name, " must have the shape of param ", shape_of(param), ", got ", shape_of(*a));
    }
  }
  T* p = param.mutable_data();
  T* first = m.mutable_data();
  T* second = v.mutable_data();
  py::gil_scoped_release release;
  dlx::kernels<T>().adam_step(p, grad.data(), first, second, static_cast<index_t>(param.size()), beta1, beta2,
                 lr_t, v_scale, eps);
}

// (N, C, S) of a BatchNorm input: (N, C) or (N, C, H, W).
std::tuple<index_t, index_t, index_t> channels_of(const py::array& x) {
  if (x.ndim() != 2 && x.ndim() != 4) dlx::fail("x must be (N, C) or (N, C, H, W), got shape ", shape_of(x));
  return {x.shape(0), x.shape(1), x.ndim() == 4 ? x.shape(2) * x.shape(3) : 1};
}

template <typename T>
std::tuple<Array<T>, Array<T>> batch_norm_stats(const Array<T>& x) {
  const auto [n, c, s] = channels_of(x);
  if (n * s == 0) dlx::fail("batch statistics need at least one value per channel, got shape ", shape_of(x));
  Array<T> mean({c}), var({c});
  {
    py::gil_scoped_release release;
    dlx::kernels<T>().batch_norm_stats(x.data(), n, c, s, mean.mutable_data(), var.mutable_data());
  }
  return {mean, var};
}

template <typename T>
Array<T> batch_norm_apply(const Array<T>& x, const Array<T>& mean, const Array<T>& inv_std,
                          const Array<T>& gamma, const Array<T>& beta, bool relu) {
  const auto [n, c, s] = channels_of(x);
  check_shape(mean, {c}, "mean");
  check_shape(inv_std, {c}, "inv_std");
  check_shape(gamma, {c}, "gamma");
  check_shape(beta, {c}, "beta");
  Array<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  py::gil_scoped_release release;
  dlx::kernels<T>().batch_norm_apply(x.data(), mean.data(), inv_std.data(), gamma.data(), beta.data(),
                        y.mutable_data(), n, c, s, relu);
  return y;
}

template <typename T>
std::tuple<Array<T>, Array<T>, Array<T>> batch_norm_backward(const Array<T>& dy, const Array<T>& x,
                                                             const Array<T>& mean,
                                                             const Array<T>& inv_std,
                                                             const Array<T>& gamma,
                                                             const std::optional<Array<T>>& relu_y) {
  const auto [n, c, s] = channels_of(x);
  if (n * s == 0) dlx::fail("batch statistics need at least one value per channel, got shape ", shape_of(x));
  if (dy.ndim() != x.ndim() || !std::equal(dy.shape(), dy.shape() + dy.ndim(), x.shape())) {
    dlx::fail("dy must have the shape of x ", shape_of(x), ", got ", shape_of(dy));
  }
  check_shape(mean, {c}, "mean");
  check_shape(inv_std, {c}, "inv_std");
  check_shape(gamma, {c}, "gamma");
  if (relu_y && (relu_y->ndim() != x.ndim() ||
                 !std::equal(relu_y->shape(), relu_y->shape() + relu_y->ndim(), x.shape()))) {
    dlx::fail("relu_output must have the shape of x ", shape_of(x), ", got ", shape_of(*relu_y));
  }
  Array<T> dx(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  Array<T> dgamma({c}), dbeta({c});
  {
    py::gil_scoped_release release;
    dlx::kernels<T>().batch_norm_backward(dy.data(), x.data(), mean.data(), inv_std.data(),
                                          gamma.data(), relu_y ? relu_y->data() : nullptr,
                                          dx.mutable_data(), dgamma.mutable_data(),
                                          dbeta.mutable_data(), n, c, s);
  }
  return {dx, dgamma, dbeta};
}

// (N, IN, OUT) of a fully connected product with x (N, IN) and w (IN, OUT). The BLAS takes
// 32-bit sizes.
std::tuple<index_t, index_t, index_t> linear_sizes(const py::array& x, const py::array& w) {
  check_ndim(x, 2, "x");
  check_ndim(w, 2, "w");
  if (w.shape(0) != x.shape(1)) {
    dlx::fail("w has ", w.shape(0), " input features (shape ", shape_of(w), ") but x has ",
              x.shape(1), " (shape ", shape_of(x), ")");
  }
  for (const py::ssize_t size : {x.shape(0), x.shape(1), w.shape(1)}) {
    if (size > std::numeric_limits<blasint>::max()) {
      dlx::fail("a fully connected product needs sizes below 2^31, got x ", shape_of(x),
                " and w ", shape_of(w));
    }
  }
  return {x.shape(0), x.shape(1), w.shape(1)};
}

template <typename T>
Array<T> linear_forward(const Array<T>& x, const Array<T>& w, std::optional<Array<T>> b) {
  const auto [n, in, out] = linear_sizes(x, w);
  if (b) check_shape(*b, {out}, "b");
  Array<T> y({n, out});
  const T* bias = b ? b->data() : nullptr;
  py::gil_scoped_release release;
  dlx::kernels<T>().linear_forward(x.data(), w.data(), bias, y.mutable_data(), n, in, out);
  return y;
}

template <typename T>
std::tuple<std::optional<Array<T>>, Array<T>, Array<T>> linear_backward(const Array<T>& dy,
                                                                        const Array<T>& x,
                                                                        const Array<T>& w,
                                                                        bool input_grad) {
  const auto [n, in, out] = linear_sizes(x, w);
  check_shape(dy, {n, out}, "dy");
  std::optional<Array<T>> dx;
  if (input_grad) dx = Array<T>({n, in});
  Array<T> dw({in, out});
  Array<T> db({out});
  T* dx_data = dx ? dx->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    dlx::kernels<T>().linear_backward(dy.data(), x.data(), w.data(), dx_data, dw.mutable_data(),
                                      db.mutable_data(), n, in, out);
  }
  return {dx, dw, db};
}

template <typename T>
Array<T> max_pool2d_values(const Array<T>& x, index_t kh, index_t kw, index_t sh, index_t sw,
                           index_t ph, index_t pw) {
  const auto [win, f] = pool_geometry(x, kh, kw, sh, sw, ph, pw);
  Array<T> y({f.n, f.c, f.oh, f.ow});
  py::gil_scoped_release release;
  dlx::kernels<T>().max_pool2d_forward(x.data(), y.mutable_data(), nullptr, f, win);
  return y;
}

// ReLU of x into x itself; returns x.
template <typename T>
Array<T> relu_inplace(Array<T>& x) {
  T* data = x.mutable_data();  // refuses a read-only array
  py::gil_scoped_release release;
  dlx::kernels<T>().relu_forward(data, data, static_cast<index_t>(x.size()));
  return x;
}

template <typename T>
Array<T> batch_norm_inference(Array<T>& x, const Array<T>& mean, const Array<T>& var,
                              const Array<T>& gamma, const Array<T>& beta, double eps,
                              bool inplace) {
  const auto [n, c, s] = channels_of(x);
  check_shape(mean, {c}, "mean");
  check_shape(var, {c}, "var");
  check_shape(gamma, {c}, "gamma");
  check_shape(beta, {c}, "beta");
  Array<T> y = inplace ? x : Array<T>(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  T* out = y.mutable_data();  // in place: refuses a read-only x
  py::gil_scoped_release release;
  dlx::kernels<T>().batch_norm_inference(x.data(), mean.data(), var.data(), gamma.data(),
                                         beta.data(), static_cast<T>(eps), out, n, c, s);
  return y;
}

// Binds the float and the double instantiation under one name; noconvert() makes pybind11
// pick the overload by dtype and refuse every other dtype instead of casting.
template <typename F32, typename F64, typename... Args>
void def_both(py::module_& m, const char* name, F32 f32, F64 f64, const char* doc,
              const Args&... args) {
  m.def(name, f32, doc, args...);
  m.def(name, f64, doc, args...);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "dlx C++ kernels (private: use dlx.ops). NCHW, float32 and float64, C-contiguous.";
  // Parallelism comes from the kernels' OpenMP loops; a threaded BLAS inside them would
  // oversubscribe the cores.
  scipy_openblas_set_num_threads(1);
  // Choose the CPU level now, so that a build whose kernels this CPU cannot run (a
  // DLX_NATIVE_ARCH build on another machine) fails to import, not at its first kernel.
  dlx::current_level();


  def_both(m, "im2col", &im2col<float>, &im2col<double>,
           "x (N, C, H, W) -> col (N*OH*OW, C*KH*KW).", py::arg("x").noconvert(), py::arg("kh"),
           py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"));
  def_both(m, "col2im", &col2im<float>, &col2im<double>,
           "col (N*OH*OW, C*KH*KW) -> x (N, C, H, W), summing overlapping windows.",
           py::arg("col").noconvert(), py::arg("x_shape"), py::arg("kh"), py::arg("kw"),
           py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"));
  def_both(m, "conv2d_forward", &conv2d_forward<float>, &conv2d_forward<double>,
           "x (N, C, H, W), w (FN, C, KH, KW), b (FN,) or None -> y (N, FN, OH, OW).",
           py::arg("x").noconvert(), py::arg("w").noconvert(), py::arg("b").noconvert().none(true),
           py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"));
  def_both(m, "conv2d_backward", &conv2d_backward<float>, &conv2d_backward<double>,
           "dy (N, FN, OH, OW), x, w -> (dx, dw, db); dx is None without input_grad, db "
           "without bias_grad.",
           py::arg("dy").noconvert(), py::arg("x").noconvert(), py::arg("w").noconvert(),
           py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
           py::arg("input_grad") = true, py::arg("bias_grad") = true);
  def_both(m, "conv2d_plan", &conv2d_plan<float>, &conv2d_plan<double>,
           "x, w -> the plan of conv2d_forward and conv2d_backward: per product the algorithm, "
           "items, tile and workspace, and the workspace each pass leases.",
           py::arg("x").noconvert(), py::arg("w").noconvert(), py::arg("sh"), py::arg("sw"),
           py::arg("ph"), py::arg("pw"));
  def_both(m, "max_pool2d_forward", &max_pool2d_forward<float>, &max_pool2d_forward<double>,
           "x (N, C, H, W) -> (y, argmax), argmax as int64 indices into each H*W plane.",
           py::arg("x").noconvert(), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
           py::arg("ph"), py::arg("pw"));
  def_both(m, "max_pool2d_backward", &max_pool2d_backward<float>, &max_pool2d_backward<double>,
           "dy (N, C, OH, OW), argmax (N, C, OH, OW) -> dx (N, C, H, W).",
           py::arg("dy").noconvert(), py::arg("argmax").noconvert(), py::arg("x_shape"),
           py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"),
           py::arg("pw"));
  def_both(m, "avg_pool2d_forward", &avg_pool2d_forward<float>, &avg_pool2d_forward<double>,
           "x (N, C, H, W) -> y (N, C, OH, OW); padding counts in the divisor KH*KW.",
           py::arg("x").noconvert(), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
           py::arg("ph"), py::arg("pw"));
  def_both(m, "avg_pool2d_backward", &avg_pool2d_backward<float>, &avg_pool2d_backward<double>,
           "dy (N, C, OH, OW) -> dx (N, C, H, W).", py::arg("dy").noconvert(),
           py::arg("x_shape"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
           py::arg("ph"), py::arg("pw"));

  def_both(m, "linear_forward", &linear_forward<float>, &linear_forward<double>,
           "x (N, IN), w (IN, OUT), b (OUT,) or None -> y = x w + b (N, OUT).",
           py::arg("x").noconvert(), py::arg("w").noconvert(), py::arg("b").noconvert().none(true));
  def_both(m, "linear_backward", &linear_backward<float>, &linear_backward<double>,
           "dy (N, OUT), x (N, IN), w (IN, OUT) -> (dx, dw, db); dx is None without input_grad.",
           py::arg("dy").noconvert(), py::arg("x").noconvert(), py::arg("w").noconvert(),
           py::arg("input_grad") = true);
  def_both(m, "max_pool2d_values", &max_pool2d_values<float>, &max_pool2d_values<double>,
           "x (N, C, H, W) -> y (N, C, OH, OW): max_pool2d_forward without the argmax.",
           py::arg("x").noconvert(), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
           py::arg("ph"), py::arg("pw"));
  def_both(m, "relu_inplace", &relu_inplace<float>, &relu_inplace<double>,
           "x (any shape, writeable) -> x = max(x, 0), NaN kept; returns x.",
           py::arg("x").noconvert());
  def_both(m, "batch_norm_inference", &batch_norm_inference<float>, &batch_norm_inference<double>,
           "x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps)) per channel; "
           "into x itself with inplace.",
           py::arg("x").noconvert(), py::arg("mean").noconvert(), py::arg("var").noconvert(),
           py::arg("gamma").noconvert(), py::arg("beta").noconvert(), py::arg("eps"),
           py::arg("inplace") = false);
  def_both(m, "relu_forward", &relu_forward<float>, &relu_forward<double>,
           "x (any shape) -> max(x, 0), NaN kept.", py::arg("x").noconvert());
  def_both(m, "relu_backward", &relu_backward<float>, &relu_backward<double>,
           "dy, y (same shape) -> dy where y > 0, else 0.", py::arg("dy").noconvert(),
           py::arg("y").noconvert());
  def_both(m, "add_forward", &add_forward<float>, &add_forward<double>,
           "a, b (same shape) -> a + b; max(a + b, 0), NaN kept, with relu.",
           py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("relu") = false);

  def_both(m, "adam_step", &adam_step<float>, &adam_step<double>,
           "Adam's update of param, m and v in place from grad (all of one shape and dtype).",
           py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("m").noconvert(),
           py::arg("v").noconvert(), py::arg("beta1"), py::arg("beta2"), py::arg("lr_t"),
           py::arg("v_scale"), py::arg("eps"));

  def_both(m, "batch_norm_stats", &batch_norm_stats<float>, &batch_norm_stats<double>,
           "x (N, C) or (N, C, H, W) -> (mean, biased var) per channel.", py::arg("x").noconvert());
  def_both(m, "batch_norm_apply", &batch_norm_apply<float>, &batch_norm_apply<double>,
           "gamma * (x - mean) * inv_std + beta per channel; max(0, that) with relu.",
           py::arg("x").noconvert(), py::arg("mean").noconvert(),
           py::arg("inv_std").noconvert(), py::arg("gamma").noconvert(),
           py::arg("beta").noconvert(), py::arg("relu") = false);
  def_both(m, "batch_norm_backward", &batch_norm_backward<float>, &batch_norm_backward<double>,
           "dy, x, mean, inv_std, gamma -> (dx, dgamma, dbeta) for batch statistics; with "
           "relu_output, dy is the gradient at a fused ReLU's output.",
           py::arg("dy").noconvert(), py::arg("x").noconvert(), py::arg("mean").noconvert(),
           py::arg("inv_std").noconvert(), py::arg("gamma").noconvert(),
           py::arg("relu_output").noconvert().none(true) = py::none());

#ifdef DLX_SANITIZER_CANARY
  m.def(
      "_sanitizer_canary",
      [](index_t past) {
        std::vector<int> buffer(8);
        volatile int* data = buffer.data();
        return static_cast<int>(data[7 + past]);  // past >= 1 reads beyond the buffer
      },
      "Reads `past` elements beyond an 8-element heap buffer (sanitizer builds only).",
      py::arg("past") = 1);
#endif

  m.def("cpu_capability", &dlx::current_level, "The CPU level whose kernels run.");
  m.def("compiled_capabilities", &dlx::compiled_levels,
        "The CPU levels this build has kernels for, lowest first.");
  m.def("supported_capabilities", &dlx::supported_levels,
        "The compiled CPU levels this CPU can run, lowest first.");
  m.def(
      "set_cpu_capability",
      [](const std::string& name) {
        py::gil_scoped_release release;  // no kernel runs while the table changes hands
        dlx::set_level(name);
      },
      "Runs the kernels of the named level from now on (one of supported_capabilities()).",
      py::arg("name"));
  m.def("cpu_features", &dlx::cpu_features,
        "[(feature, present)] for the x86 features that decide the level; empty elsewhere.");
  m.def(
      "build_info",
      [] {
        py::dict info;
        info["compiler"] = DLX_COMPILER;
        info["cxx_flags"] = DLX_CXX_FLAGS;
        py::dict levels;
        for (const auto& [name, flags] : dlx::build_info::level_flags) levels[name] = flags;
        info["level_flags"] = levels;
        info["openmp"] = DLX_OPENMP;
        info["native_arch"] = DLX_NATIVE;
        return info;
      },
      "How this extension was built: compiler, flags (per CPU level) and OpenMP.");
  m.def(
      "blas_info",
      [] {
        py::dict info;
        info["config"] = std::string(scipy_openblas_get_config());
        info["core"] = std::string(scipy_openblas_get_corename());
        info["threads"] = scipy_openblas_get_num_threads();
        return info;
      },
      "The OpenBLAS the kernels call: its build configuration, the core type it chose, and its "
      "thread count (1: the kernels' own threads call it).");

  m.def(
      "_force_conv_route",
      [](const std::string& route) {
        if (route == "planned") {
          dlx::set_conv_route(dlx::ConvRoute::planned);
        } else if (route == "im2col") {
          dlx::set_conv_route(dlx::ConvRoute::unfolded);
        } else if (route == "shifted") {
          dlx::set_conv_route(dlx::ConvRoute::shifted);
        } else if (route == "winograd") {
          dlx::set_conv_route(dlx::ConvRoute::winograd);
        } else {
          dlx::fail("route must be 'planned', 'im2col', 'shifted' or 'winograd', got '", route,
                    "'");
        }
      },
      "For the tests: every convolution takes this route where it can ('im2col', 'shifted' "
      "or 'winograd'), or the planner's choice ('planned').",
      py::arg("route"));
  m.def("workspace_bytes", &dlx::workspace_bytes,
        "Bytes the kernels' workspace pool holds now (kept between calls up to the budget).");
  m.def("release_workspace", &dlx::release_workspace, "Frees the workspace pool's idle memory.");
  m.def("workspace_budget", &dlx::workspace_budget,
        "Bytes the workspace pool may keep between calls; also what the plans divide among "
        "the threads.");
  m.def(
      "set_workspace_budget",
      [](std::int64_t bytes) {
        if (bytes < 0) dlx::fail("the workspace budget must be >= 0 bytes, got ", bytes);
        dlx::set_workspace_budget(static_cast<std::size_t>(bytes));
      },
      "Sets the workspace budget in bytes.", py::arg("bytes"));

  m.def("get_num_threads", &omp_get_max_threads, "Threads the kernels' OpenMP loops use.");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) dlx::fail("num_threads must be at least 1, got ", n);
        omp_set_num_threads(n);
      },
      "Sets the threads of the kernels' OpenMP loops.", py::arg("n"));
}
