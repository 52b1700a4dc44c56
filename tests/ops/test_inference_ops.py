"""The fully connected kernels (ops.linear, ops.linear_backward) against the NumPy reference
and the loop oracle, and the inference kernels against the training path's kernels."""

import dlx
import dlx.ops as ops
import naive
import numpy as np
import pytest
from conftest import DTYPES
from helpers import assert_close, check_dtypes, on_both

# (N, IN, OUT): batches of one (a matrix-vector product), one output (the other one), an
# empty batch, no input features, and products large enough to be split among threads by
# rows (tall) and by columns (wide, and a batch of one).
LINEAR_SHAPES = [
    (1, 7, 5),
    (6, 4, 1),
    (1, 1, 1),
    (0, 5, 3),
    (4, 0, 3),
    (5, 3, 2),
    (300, 40, 33),
    (3, 90, 400),
    (1, 700, 130),
    (2048, 40, 1),
    (300, 1, 300),
]


@pytest.fixture(params=[1, 2, 3], ids=["1-thread", "2-threads", "3-threads"])
def threads(request):
    before = dlx.threads.get_num_threads()
    dlx.threads.set_num_threads(request.param)
    yield request.param
    dlx.threads.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=[f"{n}x{i}x{o}" for n, i, o in LINEAR_SHAPES])
def test_linear(rng, dtype, shape, threads):
    n, k, m = shape
    x = rng.standard_normal((n, k)).astype(dtype)
    w = rng.standard_normal((k, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    dy = rng.standard_normal((n, m)).astype(dtype)
    small = n * k * m <= 2000  # the loop oracle is slow; the reference covers the large ones
    expected = naive.linear(x, w, b) if small else ops.reference.linear(x, w, b)
    for y in on_both("linear", x, w, b):
        check_dtypes(y, dtype)
        assert y.shape == (n, m)
        assert_close(y, expected, dtype)
    for y in on_both("linear", x, w):
        assert_close(y, expected - b, dtype)

    want = naive.linear_backward(dy, x, w) if small else ops.reference.linear_backward(dy, x, w)
    for grads in on_both("linear_backward", dy, x, w):
        check_dtypes(grads, dtype)
        for got, expect in zip(grads, want, strict=True):
            assert_close(got, expect, dtype)
    for dx, dw, db in on_both("linear_backward", dy, x, w, input_grad=False):
        assert dx is None
        assert_close(dw, want[1], dtype)
        assert_close(db, want[2], dtype)


def test_linear_takes_strided_inputs(rng):
    x = rng.standard_normal((8, 12)).astype(np.float32)
    w = rng.standard_normal((12, 5)).astype(np.float32)
    y = ops.linear(x[::2], w)
    assert_close(y, x[::2].astype(np.float64) @ w, np.float32)
    dy = rng.standard_normal((8, 5)).astype(np.float32)
    dx, dw, _ = ops.linear_backward(dy, x[:, ::2], w[::2])
    assert_close(dx, dy.astype(np.float64) @ w[::2].T, np.float32)
    assert_close(dw, x[:, ::2].T.astype(np.float64) @ dy, np.float32)


def test_linear_spreads_nan_and_inf_like_numpy():
    x = np.array([[1.0, np.nan], [np.inf, 2.0]], np.float32)
    w = np.ones((2, 3), np.float32)
    with np.errstate(invalid="ignore"):  # NumPy's matmul warns of the NaN; that is not tested
        got, want = on_both("linear", x, w, np.zeros(3, np.float32))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 3), (1, 5), (4, 3, 5, 6), (2, 1, 1, 1), (3, 2, 40, 40)])
def test_batch_norm_inference_is_batch_norm_apply(rng, dtype, shape):
    """The folded kernel computes exactly what the training path's kernel gives with the
    running statistics, on either backend, in place or not."""
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    mean, gamma, beta = (rng.standard_normal(c).astype(dtype) for _ in range(3))
    var = rng.uniform(0.1, 3, c).astype(dtype)
    for backend in ("cpp", "numpy"):
        with ops.use_backend(backend):
            inv_std = (1.0 / np.sqrt(var + var.dtype.type(1e-5))).astype(dtype)
            expected = ops.batch_norm_apply(x, mean, inv_std, gamma, beta)
            y = ops.batch_norm_inference(x, mean, var, gamma, beta, 1e-5)
            inside = x.copy()
            same = ops.batch_norm_inference(inside, mean, var, gamma, beta, 1e-5, inplace=True)
        check_dtypes(y, dtype)
        np.testing.assert_array_equal(y, expected)
        assert same is inside
        np.testing.assert_array_equal(inside, expected)


@pytest.mark.parametrize(
    "call",
    [
        lambda a: ops.relu(a, inplace=True),
        lambda a: ops.batch_norm_inference(a, *[np.ones(3, np.float32)] * 4, inplace=True),
    ],
    ids=["relu", "batch_norm_inference"],
)
def test_inplace_refuses_arrays_it_cannot_write(backend, call):
    strided = np.ones((2, 3, 4, 8), np.float32)[..., ::2]
    with pytest.raises(ValueError, match="x is updated in place and must be a C-contiguous"):
        call(strided)
    read_only = np.ones((2, 3, 4, 4), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="x is updated in place"):
        call(read_only)
    np.testing.assert_array_equal(strided, 1)


def test_relu_in_place_returns_x_itself_even_0d(backend):
    x = np.array(-1.5)
    assert ops.relu(x, inplace=True) is x
    assert x == 0


def test_relu_in_place_keeps_nan(backend):
    x = np.array([[-1.0, np.nan, 2.0, -0.0]], np.float32)
    ops.relu(x, inplace=True)
    np.testing.assert_array_equal(x, [[0.0, np.nan, 2.0, 0.0]])
