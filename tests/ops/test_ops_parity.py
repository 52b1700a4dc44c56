"""C++ backend vs NumPy reference vs the naive loop oracle, over a grid of geometries."""

import itertools

import dlx
import dlx.ops as ops
import naive
import numpy as np
import pytest
from conftest import DTYPES
from helpers import RTOL, assert_close, check_dtypes, on_both

KERNELS = [(1, 1), (2, 2), (3, 3), (5, 5), (2, 3), (3, 1), (1, 4)]
STRIDES = [(1, 1), (2, 2), (3, 3), (1, 2), (3, 1)]
PADS = [(0, 0), (1, 1), (2, 2), (0, 1)]
GRID = list(itertools.product(KERNELS, STRIDES, PADS))
# Pooling pads at most half the kernel, so every window covers a real cell.
POOL_GRID = [g for g in GRID if 2 * g[2][0] <= g[0][0] and 2 * g[2][1] <= g[0][1]]
X_SHAPE = (2, 2, 7, 9)  # non-square, and large enough for a 5x5 kernel without padding
FN = 3


def _ids(grid):
    return [f"k{k[0]}x{k[1]}-s{s[0]}x{s[1]}-p{p[0]}x{p[1]}" for k, s, p in grid]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kernel", "stride", "pad"), GRID, ids=_ids(GRID))
def test_im2col_col2im(rng, dtype, kernel, stride, pad):
    x = rng.standard_normal(X_SHAPE).astype(dtype)
    cols = on_both("im2col", x, kernel, stride, pad)
    expected = naive.im2col(x, kernel, stride, pad)
    for col in cols:
        check_dtypes(col, dtype)
        assert_close(col, expected, dtype)

    c = rng.standard_normal(expected.shape).astype(dtype)
    expected_x = naive.col2im(c, X_SHAPE, kernel, stride, pad)
    for folded in on_both("col2im", c, X_SHAPE, kernel, stride, pad):
        check_dtypes(folded, dtype)
        assert_close(folded, expected_x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kernel", "stride", "pad"), GRID, ids=_ids(GRID))
def test_conv2d(rng, dtype, kernel, stride, pad):
    x = rng.standard_normal(X_SHAPE).astype(dtype)
    w = rng.standard_normal((FN, X_SHAPE[1], *kernel)).astype(dtype)
    b = rng.standard_normal(FN).astype(dtype)
    expected = naive.conv2d(x, w, b, stride, pad)
    for y in on_both("conv2d", x, w, b, stride, pad):
        check_dtypes(y, dtype)
        assert_close(y, expected, dtype)

    dy = rng.standard_normal(expected.shape).astype(dtype)
    expected_grads = naive.conv2d_backward(dy, x, w, stride, pad)
    for grads in on_both("conv2d_backward", dy, x, w, stride, pad):
        check_dtypes(grads, dtype)
        for got, want in zip(grads, expected_grads, strict=True):
            assert_close(got, want, dtype)


@pytest.fixture(params=["im2col", "shifted"])
def forced_route(request):
    """Every convolution takes this route wherever it can compute the product (a test-only
    switch of the planner), so each route's executors meet the whole grid."""
    core = ops._module_of("cpp")._core
    core._force_conv_route(request.param)
    yield request.param
    core._force_conv_route("planned")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kernel", "stride", "pad"), GRID, ids=_ids(GRID))
def test_conv2d_by_each_route(rng, dtype, kernel, stride, pad, forced_route):
    x = rng.standard_normal(X_SHAPE).astype(dtype)
    w = rng.standard_normal((FN, X_SHAPE[1], *kernel)).astype(dtype)
    b = rng.standard_normal(FN).astype(dtype)
    algorithms = set(ops.conv2d_algorithms(x, w, stride, pad).values())
    pointwise = kernel == (1, 1) and stride == (1, 1) and pad == (0, 0)
    if forced_route == "shifted" and not pointwise:
        assert algorithms <= {"shifted", "shifted by positions"}
    else:
        assert algorithms == {"pointwise" if pointwise else "im2col"}
    y = ops.conv2d(x, w, b, stride, pad)
    assert_close(y, naive.conv2d(x, w, b, stride, pad), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    for got, want in zip(
        ops.conv2d_backward(dy, x, w, stride, pad), naive.conv2d_backward(dy, x, w, stride, pad)
    ):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kernel", "stride", "pad"), POOL_GRID, ids=_ids(POOL_GRID))
def test_max_pool2d(rng, dtype, kernel, stride, pad):
    x = rng.standard_normal(X_SHAPE).astype(dtype)
    y_expected, argmax_expected = naive.max_pool2d(x, kernel, stride, pad)
    dy = rng.standard_normal(y_expected.shape).astype(dtype)
    dx_expected = naive.max_pool2d_backward(dy, argmax_expected, X_SHAPE)
    for backend in ("cpp", "numpy"):
        with ops.use_backend(backend):
            y, argmax = ops.max_pool2d(x, kernel, stride, pad)
            dx = ops.max_pool2d_backward(dy, argmax, X_SHAPE, kernel, stride, pad)
        check_dtypes((y, dx), dtype)
        assert argmax.dtype == np.int64
        np.testing.assert_array_equal(argmax, argmax_expected)
        np.testing.assert_array_equal(y, y_expected.astype(dtype))  # a max is exact
        assert_close(dx, dx_expected, dtype)
        with ops.use_backend(backend):  # inference: the values alone, the same values
            values = ops.max_pool2d(x, kernel, stride, pad, return_indices=False)
        assert isinstance(values, np.ndarray)
        np.testing.assert_array_equal(values, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kernel", "stride", "pad"), POOL_GRID, ids=_ids(POOL_GRID))
def test_avg_pool2d(rng, dtype, kernel, stride, pad):
    x = rng.standard_normal(X_SHAPE).astype(dtype)
    expected = naive.avg_pool2d(x, kernel, stride, pad)
    for y in on_both("avg_pool2d", x, kernel, stride, pad):
        check_dtypes(y, dtype)
        assert_close(y, expected, dtype)

    dy = rng.standard_normal(expected.shape).astype(dtype)
    dx_expected = naive.avg_pool2d_backward(dy, X_SHAPE, kernel, stride, pad)
    for dx in on_both("avg_pool2d_backward", dy, X_SHAPE, kernel, stride, pad):
        check_dtypes(dx, dtype)
        assert_close(dx, dx_expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
@pytest.mark.parametrize(("c", "fn"), [(1, 1), (3, 2), (1, 4), (4, 1)])
def test_batch_and_channels(rng, dtype, n, c, fn):
    x = rng.standard_normal((n, c, 6, 5)).astype(dtype)
    w = rng.standard_normal((fn, c, 3, 2)).astype(dtype)
    b = rng.standard_normal(fn).astype(dtype)
    expected = naive.conv2d(x, w, b, (2, 1), (1, 1))
    for y in on_both("conv2d", x, w, b, stride=(2, 1), pad=1):
        assert_close(y, expected, dtype)
    dy = rng.standard_normal(expected.shape).astype(dtype)
    expected_grads = naive.conv2d_backward(dy, x, w, (2, 1), (1, 1))
    for grads in on_both("conv2d_backward", dy, x, w, stride=(2, 1), pad=1):
        for got, want in zip(grads, expected_grads, strict=True):
            assert_close(got, want, dtype)
    y_expected, argmax_expected = naive.max_pool2d(x, (2, 2), (2, 2), (1, 1))
    for y, argmax in on_both("max_pool2d", x, 2, pad=1):
        np.testing.assert_array_equal(y, y_expected.astype(dtype))
        np.testing.assert_array_equal(argmax, argmax_expected)


STRIDE1_GRID = list(itertools.product(KERNELS, [(1, 1)], PADS))


# (C, FN, (H, W)): the shifted route's forward from one channel, its backward from four; filter
# and channel counts that fill the kernel's row tiles (multiples of 8) and that leave them part
# empty; images narrow enough for a single tile of columns and wide enough for several and a
# part-filled last one. With fewer channels than fill the kernel's 3 vectors (48 floats with
# AVX-512) the grad weight runs a kernel row's offsets in one tile; with more, its last tile
# may be narrower (C = 64: 48 + 16). The last four are tiled by positions in the forward pass
# (FN = 48: a block of two vectors and one of one) or the grad input (C = 64, 48): with
# AVX-512 rows of 17 positions cut into two tiles, and with any vector width the 6-wide
# images under a 5x5 kernel and the 5-wide ones under a pad of 2, whose padded rows are
# mostly padding.
SHIFTED_CASES = [
    (8, 5, (6, 7)),
    (32, 32, (6, 7)),
    (1, 3, (13, 12)),
    (4, 9, (13, 12)),
    (9, 17, (11, 14)),
    (20, 48, (5, 17)),
    (64, 20, (5, 17)),
    (16, 48, (9, 6)),
    (48, 20, (9, 5)),
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_shifted_cases_cover_both_tilings(dtype):
    """The grid below runs the forward pass and the grad input both tiled by rows and tiled
    by positions (which one runs is decided by the geometry)."""
    seen = set()
    for (c, fn, size), (kernel, _, pad) in itertools.product(SHIFTED_CASES, STRIDE1_GRID):
        if any(k > s + 2 * p for k, s, p in zip(kernel, size, pad, strict=True)):
            continue
        x = np.zeros((3, c, *size), dtype)
        w = np.zeros((fn, c, *kernel), dtype)
        for product, algorithm in ops.conv2d_algorithms(x, w, 1, pad).items():
            seen.add((product, algorithm))
    for product in ("forward", "grad_input"):
        assert (product, "shifted") in seen
        assert (product, "shifted by positions") in seen
    assert ("grad_weight", "shifted") in seen


@pytest.mark.parametrize(("c", "fn", "size"), SHIFTED_CASES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kernel", "stride", "pad"), STRIDE1_GRID, ids=_ids(STRIDE1_GRID))
def test_conv2d_shifted(rng, dtype, kernel, stride, pad, threads, c, fn, size):
    """Stride 1 with an image per thread: the C++ kernel's shifted route, on one thread and on
    two."""
    _check_conv_on_threads(rng, dtype, (3, c, *size), (fn, c, *kernel), stride, pad, threads)


def _check_conv_on_threads(rng, dtype, x_shape, w_shape, stride, pad, threads):
    """conv2d and its gradients on `threads` threads against the loop oracle; returns the
    algorithms the planner chose for them."""
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    dy = rng.standard_normal(naive.conv2d(x, w, b, stride, pad).shape).astype(dtype)
    before = dlx.threads.get_num_threads()
    dlx.threads.set_num_threads(threads)
    try:
        algorithms = ops.conv2d_algorithms(x, w, stride, pad)
        y = ops.conv2d(x, w, b, stride, pad)
        grads = ops.conv2d_backward(dy, x, w, stride, pad)
    finally:
        dlx.threads.set_num_threads(before)
    assert_close(y, naive.conv2d(x, w, b, stride, pad), dtype)
    for got, want in zip(grads, naive.conv2d_backward(dy, x, w, stride, pad), strict=True):
        check_dtypes(got, dtype)
        assert_close(got, want, dtype)
    return algorithms


STRIDED_GRID = list(itertools.product(KERNELS, [(2, 2), (1, 2), (2, 1)], PADS))
# Strided shifted cases: each of the kernel's vector and tile shapes once, one channel (whose
# backward pass stays on im2col), and images whose sides are odd and even (a last padded row
# or column that no output reads, or none).
STRIDED_CASES = [SHIFTED_CASES[i] for i in (0, 2, 3, 4, 6, 7)]


def _phase_split_applies(kernel, stride):
    return all(k >= s for k, s in zip(kernel, stride, strict=True))


@pytest.mark.parametrize(("c", "fn", "size"), STRIDED_CASES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kernel", "stride", "pad"), STRIDED_GRID, ids=_ids(STRIDED_GRID))
def test_conv2d_shifted_strided(rng, dtype, kernel, stride, pad, threads, c, fn, size):
    """Stride 2 on the shifted route, the image split into its stride phases: the planner
    takes it wherever every phase holds a tap of the kernel (an image per thread, from four
    channels for the backward pass), and it agrees with the loop oracle."""
    if any(k > s + 2 * p for k, s, p in zip(kernel, size, pad, strict=True)):
        pytest.skip("kernel larger than the padded image")
    algorithms = _check_conv_on_threads(
        rng, dtype, (3, c, *size), (fn, c, *kernel), stride, pad, threads
    )
    if _phase_split_applies(kernel, stride):
        assert algorithms["forward"].startswith("shifted")
        assert algorithms["grad_input"] == ("shifted" if c >= 4 else "im2col")
    else:
        assert set(algorithms.values()) == {"im2col"}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("c", "stride"), [(2, 1), (3, 2), (4, 1), (4, 2), (32, 1)])
def test_conv2d_backward_without_input_grad(rng, c, stride, threads):
    """input_grad=False returns dx as None and the same dw and db, on both backends and on
    both C++ routes of the backward pass (im2col below 4 channels, shifted from 4, at stride
    1 and 2)."""
    x = rng.standard_normal((3, c, 7, 6))
    w = rng.standard_normal((32, c, 3, 3))
    dy = rng.standard_normal(naive.conv2d(x, w, None, (stride, stride), (1, 1)).shape)
    before = dlx.threads.get_num_threads()
    dlx.threads.set_num_threads(threads)
    try:
        for backend in ("cpp", "numpy"):
            with ops.use_backend(backend):
                _, dw, db = ops.conv2d_backward(dy, x, w, stride, 1)
                none, dw_only, db_only = ops.conv2d_backward(dy, x, w, stride, 1, input_grad=False)
            assert none is None
            np.testing.assert_array_equal(dw_only, dw)
            np.testing.assert_array_equal(db_only, db)
    finally:
        dlx.threads.set_num_threads(before)


@pytest.mark.parametrize("input_grad", [True, False])
def test_conv2d_backward_without_bias_grad(rng, input_grad):
    """bias_grad=False returns db as None and the same dx and dw, on both backends."""
    x = rng.standard_normal((3, 8, 7, 6))
    w = rng.standard_normal((16, 8, 3, 3))
    dy = rng.standard_normal(naive.conv2d(x, w, None, (1, 1), (1, 1)).shape)
    for backend in ("cpp", "numpy"):
        with ops.use_backend(backend):
            dx, dw, db = ops.conv2d_backward(dy, x, w, 1, 1, input_grad=input_grad)
            dx_only, dw_only, none = ops.conv2d_backward(
                dy, x, w, 1, 1, input_grad=input_grad, bias_grad=False
            )
        assert none is None and db is not None
        np.testing.assert_array_equal(dw_only, dw)
        if input_grad:
            np.testing.assert_array_equal(dx_only, dx)
        else:
            assert dx is None and dx_only is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_across_column_blocks(rng, dtype):
    """Enough columns per image that the C++ kernel works in several blocks of images,
    the last holding a single image."""
    x = rng.standard_normal((15, 16, 64, 64)).astype(dtype)
    w = rng.standard_normal((8, 16, 3, 3)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    y_cpp, y_ref = on_both("conv2d", x, w, b, pad=1)
    assert_close(y_cpp, y_ref, dtype)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    grads_cpp, grads_ref = on_both("conv2d_backward", dy, x, w, pad=1)
    for got, want in zip(grads_cpp, grads_ref, strict=True):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 3), (5,), (2, 3, 4, 5), (3, 70000), (4, 4000)])
def test_relu(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    expected_y = np.where(x > 0, x, 0)
    expected_dx = np.where(x > 0, dy, 0)
    for y in on_both("relu", x):
        check_dtypes(y, dtype)
        np.testing.assert_array_equal(y, expected_y)
        for dx in on_both("relu_backward", dy, y):
            check_dtypes(dx, dtype)
            np.testing.assert_array_equal(dx, expected_dx)
    for backend in ("cpp", "numpy"):
        inside = x.copy()
        with ops.use_backend(backend):
            assert ops.relu(inside, inplace=True) is inside
        np.testing.assert_array_equal(inside, expected_y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 3), (5,), (2, 3, 4, 5), (3, 70000), (4, 4000)])
@pytest.mark.parametrize("relu", [False, True])
def test_add(rng, dtype, shape, relu):
    a, b = rng.standard_normal((2, *shape)).astype(dtype)
    if a.size:
        a.flat[0], b.flat[-1] = np.nan, np.inf  # NaN stays NaN through the ReLU, as in relu
    expected = a + b
    if relu:
        expected = np.where((expected > 0) | np.isnan(expected), expected, 0)
    for y in on_both("add", a, b, relu=relu):
        check_dtypes(y, dtype)
        assert y is not a and y is not b
        np.testing.assert_array_equal(y, expected)  # one rounding per element: bit for bit


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [0, 1, 17, 70001])
def test_adam_step_bit_for_bit(rng, dtype, size):
    """The fused C++ Adam update and the NumPy reference agree bit for bit after every step,
    steps with zero gradient included, where moments decay into the subnormal range and
    both must flush them to 0; the 70,001 elements run on several threads."""
    tiny = np.finfo(dtype).tiny
    start = {
        "param": rng.standard_normal(size).astype(dtype),
        "m": rng.standard_normal(size).astype(dtype),
        "v": rng.random(size).astype(dtype),
    }
    start["m"][::3] = tiny * 1.05  # subnormal after one decay by 0.9
    start["v"][1::3] = tiny * 1.0005  # after one decay by 0.999
    states = {backend: {k: a.copy() for k, a in start.items()} for backend in ("cpp", "numpy")}
    for t in range(1, 5):
        grad = rng.standard_normal(size).astype(dtype) if t % 2 == 0 else np.zeros(size, dtype)
        for backend, state in states.items():
            with ops.use_backend(backend):
                ops.adam_step(
                    state["param"],
                    grad,
                    state["m"],
                    state["v"],
                    beta1=0.9,
                    beta2=0.999,
                    lr_t=1e-3 / (1 - 0.9**t),
                    v_scale=1 / (1 - 0.999**t),
                    eps=1e-8,
                )
        for name in start:
            np.testing.assert_array_equal(states["cpp"][name], states["numpy"][name])
            assert states["cpp"][name].dtype == dtype
            magnitude = np.abs(states["cpp"][name])
            assert not np.any((magnitude > 0) & (magnitude < tiny)), f"{name} holds subnormals"
        if t == 1:  # zero gradient: the tiny moments decayed and were flushed
            assert np.all(states["cpp"]["m"][::3] == 0) and np.all(states["cpp"]["v"][1::3] == 0)
    if size:
        assert not np.array_equal(states["cpp"]["param"], start["param"])


def naive_batch_norm(x, gamma, beta, eps, dy):
    """Per channel, with the channel's values gathered into one flat vector."""
    y, dx = np.zeros(x.shape), np.zeros(x.shape)
    dgamma, dbeta = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for c in range(x.shape[1]):
        v = x[:, c].astype(np.float64).reshape(-1)
        g = dy[:, c].astype(np.float64).reshape(-1)
        m = v.size
        mu = sum(v) / m
        var = sum((v - mu) ** 2) / m
        xhat = (v - mu) / np.sqrt(var + eps)
        y[:, c] = (gamma[c] * xhat + beta[c]).reshape(x[:, c].shape)
        dbeta[c], dgamma[c] = sum(g), sum(g * xhat)
        d = gamma[c] / np.sqrt(var + eps) / m * (m * g - dbeta[c] - xhat * dgamma[c])
        dx[:, c] = d.reshape(x[:, c].shape)
    return y, dx, dgamma, dbeta


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 3), (1, 5), (4, 3, 5, 6), (2, 1, 1, 1), (3, 2, 40, 40)])
def test_batch_norm(rng, dtype, shape):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    gamma = rng.uniform(0.5, 2, c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    eps = 1e-5
    y_want, dx_want, dgamma_want, dbeta_want = naive_batch_norm(x, gamma, beta, eps, dy)
    for backend in ("cpp", "numpy"):
        with ops.use_backend(backend):
            mean, var = ops.batch_norm_stats(x)
            inv_std = (1 / np.sqrt(var + dtype(eps))).astype(dtype)
            y = ops.batch_norm_apply(x, mean, inv_std, gamma, beta)
            dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, mean, inv_std, gamma)
        check_dtypes((mean, var, y, dx, dgamma, dbeta), dtype)
        assert_close(y, y_want, dtype)
        # dx is a difference of near-equal terms (M dy - sum dy - ...): in float32 compare it
        # at the scale of those terms, gamma * inv_std * |dy|.
        scale = float(np.max(gamma * inv_std)) * float(np.abs(dy).max())
        np.testing.assert_allclose(dx, dx_want, rtol=0, atol=RTOL[np.dtype(dtype)] * 10 * scale)
        assert_close(dgamma, dgamma_want, dtype)
        assert_close(dbeta, dbeta_want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 3), (4, 3, 5, 6), (3, 2, 40, 40)])
def test_batch_norm_apply_with_relu_is_relu_of_it(rng, dtype, shape):
    """relu=True gives exactly ops.relu of the plain result, NaN included, on both backends."""
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = np.nan
    c = shape[1]
    mean, inv_std = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    for backend in ("cpp", "numpy"):
        with ops.use_backend(backend):
            plain = ops.batch_norm_apply(x, mean, inv_std, gamma, beta)
            fused = ops.batch_norm_apply(x, mean, inv_std, gamma, beta, relu=True)
            expected = ops.relu(plain)
        check_dtypes(fused, dtype)
        assert (plain < 0).any() and np.isnan(fused).any()
        np.testing.assert_array_equal(fused, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 3), (4, 3, 5, 6), (3, 2, 40, 40)])
def test_batch_norm_backward_through_a_fused_relu(rng, dtype, shape):
    """relu_output takes dy back through the fused ReLU first: the same numbers as
    relu_backward followed by the plain backward pass, on both backends."""
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    gamma, beta = rng.uniform(0.5, 2, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    for backend in ("cpp", "numpy"):
        with ops.use_backend(backend):
            mean, var = ops.batch_norm_stats(x)
            inv_std = (1 / np.sqrt(var + dtype(1e-5))).astype(dtype)
            y = ops.batch_norm_apply(x, mean, inv_std, gamma, beta, relu=True)
            fused = ops.batch_norm_backward(dy, x, mean, inv_std, gamma, relu_output=y)
            masked = ops.relu_backward(dy, y)
            apart = ops.batch_norm_backward(masked, x, mean, inv_std, gamma)
        assert (y == 0).any() and (masked != dy).any()
        for got, want in zip(fused, apart, strict=True):
            check_dtypes(got, dtype)
            np.testing.assert_array_equal(got, want)


# (C, FN, (H, W)) for the Winograd route (3x3, stride 1, padding 1): ResNet-20's three stages;
# channel counts that fill whole vectors and ones that leave the last part empty (17, 9, 5,
# 7), the products' tiles of one and of two vectors of output channels (FN = 20 and 48 with
# AVX-512), more input channels than output and fewer, images of whole 4x4 tiles and images
# whose last tiles overhang them by 1 to 3 rows or columns, a single position.
WINOGRAD_CASES = [
    (16, 16, (28, 28)),
    (32, 32, (14, 14)),
    (64, 64, (7, 7)),
    (17, 9, (10, 13)),
    (5, 7, (6, 4)),
    (8, 24, (2, 3)),
    (64, 20, (8, 5)),
    (20, 48, (4, 18)),
    (3, 4, (1, 1)),
]


@pytest.fixture
def winograd_route():
    core = ops._module_of("cpp")._core
    core._force_conv_route("winograd")
    yield
    core._force_conv_route("planned")


@pytest.mark.parametrize(("c", "fn", "size"), WINOGRAD_CASES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_winograd(rng, dtype, threads, c, fn, size, winograd_route):
    """F(4x4, 3x3): the forward pass and both gradients on the Winograd route agree with the
    loop oracle, on one thread and on two."""
    algorithms = _check_conv_on_threads(
        rng, dtype, (3, c, *size), (fn, c, 3, 3), (1, 1), (1, 1), threads
    )
    assert set(algorithms.values()) == {"winograd"}


@pytest.mark.parametrize(
    ("kernel", "stride", "pad"),
    [
        ((3, 3), 1, 0),
        ((3, 3), 1, 2),
        ((3, 3), 2, 1),
        ((5, 5), 1, 1),
        ((1, 1), 1, 0),
        ((3, 1), 1, 1),
    ],
)
def test_winograd_route_only_where_it_applies(kernel, stride, pad, winograd_route):
    """Forced, the Winograd route still takes only 3x3 kernels at stride 1 and padding 1;
    elsewhere the planner's route computes the product."""
    x = np.zeros((3, 16, 12, 12), np.float32)
    w = np.zeros((16, 16, *kernel), np.float32)
    assert "winograd" not in ops.conv2d_algorithms(x, w, stride, pad).values()


@pytest.mark.parametrize(
    ("c", "size", "dtype", "expected"),
    [
        (16, 28, np.float32, "winograd"),
        (32, 14, np.float32, "winograd"),
        (64, 7, np.float32, "winograd"),
        (8, 28, np.float32, "shifted"),
        (128, 14, np.float32, "shifted"),
        (16, 28, np.float64, "shifted"),
    ],
)
def test_planner_takes_winograd_where_it_pays(c, size, dtype, expected):
    """Planned on two threads, ResNet-20's stride-1 convolutions take the Winograd route for
    the forward pass and both gradients; 8 channels (transforms that cost more than they
    save), 128 (where it ran slower) and float64 stay on the shifted route."""
    x = np.zeros((100, c, size, size), dtype)
    w = np.zeros((c, c, 3, 3), dtype)
    before = dlx.threads.get_num_threads()
    dlx.threads.set_num_threads(2)
    try:
        algorithms = ops.conv2d_algorithms(x, w, 1, 1)
    finally:
        dlx.threads.set_num_threads(before)
    if expected == "winograd":
        assert set(algorithms.values()) == {"winograd"}
    else:  # tiled by rows or by positions, as the vector width decides
        shifted = {"shifted", "shifted by positions"}
        assert algorithms["grad_weight"] == "shifted"
        assert {algorithms["forward"], algorithms["grad_input"]} <= shifted
