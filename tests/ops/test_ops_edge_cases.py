"""Semantics at the edges: empty batches, memory layouts, NaN, ties, padding."""

import dlx.ops as ops
import numpy as np
import pytest
from conftest import DTYPES


def all_ops(x, w):
    """Every op on x (N, 2, 6, 5) with w (3, 2, 3, 3), as a dict of results."""
    n = x.shape[0]
    y = ops.conv2d(x, w, None, 1, 1)
    dy = np.ones_like(y)
    pooled, argmax = ops.max_pool2d(x, 2, pad=1)
    col = ops.im2col(x, 3, 2, 1)
    return {
        "im2col": col,
        "col2im": ops.col2im(col, x.shape, 3, 2, 1),
        "conv2d": y,
        "conv2d_backward": ops.conv2d_backward(dy, x, w, 1, 1),
        "max_pool2d": (pooled, argmax),
        "max_pool2d_backward": ops.max_pool2d_backward(
            np.ones_like(pooled), argmax, x.shape, 2, pad=1
        ),
        "avg_pool2d": ops.avg_pool2d(x, 3, 2, 1),
        "avg_pool2d_backward": ops.avg_pool2d_backward(
            np.ones((n, 2, 3, 3), x.dtype), x.shape, 3, 2, 1
        ),
    }


def flat(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch(backend, dtype):
    x = np.zeros((0, 2, 6, 5), dtype)
    w = np.ones((3, 2, 3, 3), dtype)
    out = all_ops(x, w)
    assert out["im2col"].shape == (0, 18)
    assert out["col2im"].shape == (0, 2, 6, 5)
    assert out["conv2d"].shape == (0, 3, 6, 5)
    dx, dw, db = out["conv2d_backward"]
    assert dx.shape == (0, 2, 6, 5)
    np.testing.assert_array_equal(dw, np.zeros((3, 2, 3, 3)))
    np.testing.assert_array_equal(db, np.zeros(3))
    assert out["max_pool2d"][0].shape == (0, 2, 4, 3)
    assert out["max_pool2d_backward"].shape == (0, 2, 6, 5)
    assert out["avg_pool2d"].shape == (0, 2, 3, 3)
    assert out["avg_pool2d_backward"].shape == (0, 2, 6, 5)


@pytest.mark.parametrize("size", [(3, 0), (0, 3)])
def test_image_of_padding_only(backend, rng, size):
    """An image with no rows or no columns, padded: its output is the bias and its gradients
    zeros or empty, with channels and filters enough for every algorithm of the C++ backend
    to be considered."""
    x = np.zeros((2, 32, *size), np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    y = ops.conv2d(x, w, b, 1, 2)
    assert y.shape == (2, 32, size[0] + 2, size[1] + 2)
    np.testing.assert_array_equal(y, np.broadcast_to(b[:, None, None], y.shape))
    dx, dw, db = ops.conv2d_backward(np.ones_like(y), x, w, 1, 2)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_array_equal(db, np.full(32, y[0, 0].size * 2, np.float32))
    assert set(ops.conv2d_algorithms(x, w, 1, 2)) == {"forward", "grad_weight", "grad_input"}


def layouts(x):
    """The same values as x in other memory layouts."""
    wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    wide[..., ::2] = x
    read_only = x.copy()
    read_only.flags.writeable = False
    return {
        "strided": wide[..., ::2],
        "fortran": np.asfortranarray(x),
        "read-only": read_only,
        "transposed-view": np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
    }


@pytest.mark.parametrize("layout", ["strided", "fortran", "read-only", "transposed-view"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_memory_layout_does_not_change_results(backend, rng, dtype, layout):
    x = rng.standard_normal((2, 2, 6, 5)).astype(dtype)
    w = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    other = layouts(x)[layout]
    assert not other.flags.c_contiguous or not other.flags.writeable
    expected, got = all_ops(x, w), all_ops(other, layouts(w)[layout])
    for name in expected:
        for a, b in zip(flat(expected[name]), flat(got[name]), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_propagates_nan(backend, dtype):
    x = np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan
    y, argmax = ops.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0])
    assert argmax[0, 0, 0, 0] == 1  # the first NaN of the window
    assert not np.isnan(y[0, 0, 1:, :]).any() and not np.isnan(y[0, 0, :, 1]).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_go_to_first_index(backend, dtype):
    x = np.full((1, 1, 4, 4), 7, dtype=dtype)
    _, argmax = ops.max_pool2d(x, 2)
    np.testing.assert_array_equal(argmax[0, 0], [[0, 2], [8, 10]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_padding_never_wins(backend, dtype):
    x = -np.arange(1, 17, dtype=dtype).reshape(1, 1, 4, 4)  # all negative: a zero pad would win
    y, argmax = ops.max_pool2d(x, 3, 1, 1)
    assert (y < 0).all()
    assert y[0, 0, 0, 0] == -1 and argmax[0, 0, 0, 0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_window_of_minus_inf(backend, dtype):
    x = np.full((1, 1, 3, 3), -np.inf, dtype=dtype)
    y, argmax = ops.max_pool2d(x, 2, 2, 1)
    assert np.isneginf(y).all()
    # Each window's winner is its first real cell, never a padded one.
    np.testing.assert_array_equal(argmax[0, 0], [[0, 1], [3, 4]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_counts_padding_in_divisor(backend, dtype):
    y = ops.avg_pool2d(np.ones((1, 1, 3, 3), dtype), 3, 1, 1)
    expected = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]], dtype) / dtype(9)
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-6)


def test_max_pool_backward_accumulates_overlapping_windows(backend):
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0  # the centre wins all four overlapping 2x2 windows
    y, argmax = ops.max_pool2d(x, 2, 1)
    dx = ops.max_pool2d_backward(np.ones_like(y), argmax, x.shape, 2, 1)
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_edge_detection_example(backend):
    image = np.zeros((1, 1, 6, 6))
    image[..., :3] = 10
    kernel = np.array([[1, 0, -1]] * 3, dtype=np.float64)[None, None]
    expected = np.tile([0.0, 30.0, 30.0, 0.0], (4, 1))
    np.testing.assert_array_equal(ops.conv2d(image, kernel)[0, 0], expected)


def test_one_by_one_convolution_mixes_channels(backend, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((4, 3, 1, 1))
    expected = np.einsum("fc,nchw->nfhw", w[:, :, 0, 0], x)
    np.testing.assert_allclose(ops.conv2d(x, w), expected, rtol=1e-12, atol=1e-12)


def test_outputs_do_not_alias_inputs(backend, rng):
    x = rng.standard_normal((1, 1, 4, 4))
    w = np.ones((1, 1, 1, 1))
    y = ops.conv2d(x, w)
    y += 1
    assert not np.shares_memory(y, x)
    np.testing.assert_array_equal(ops.conv2d(x, w), x)


def test_relu_keeps_nan_and_blocks_its_gradient(backend):
    x = np.array([[np.nan, -1.0, 2.0, -np.inf, np.inf]])
    y = ops.relu(x)
    assert np.isnan(y[0, 0])
    np.testing.assert_array_equal(y[0, 1:], [0.0, 2.0, 0.0, np.inf])
    np.testing.assert_array_equal(
        ops.relu_backward(np.ones_like(x), y), [[0.0, 0.0, 1.0, 0.0, 1.0]]
    )
