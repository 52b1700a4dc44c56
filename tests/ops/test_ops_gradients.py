"""Backward passes against central differences, in float64, on both backends."""

import dlx.ops as ops
import numpy as np
import pytest

EPS = 1e-6


def numerical_grad(loss, x):
    """d loss / d x by central differences, one element at a time."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + EPS
        plus = loss()
        x[i] = saved - EPS
        minus = loss()
        x[i] = saved
        grad[i] = (plus - minus) / (2 * EPS)
    return grad


def assert_grad(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("stride", "pad"), [(1, 0), (2, 1), ((1, 2), (2, 0))])
def test_conv2d_gradients(backend, rng, stride, pad):
    x = rng.standard_normal((2, 3, 5, 6))
    w = rng.standard_normal((2, 3, 3, 2))
    b = rng.standard_normal(2)
    r = rng.standard_normal(ops.conv2d(x, w, b, stride, pad).shape)

    def loss():
        return float(np.sum(ops.conv2d(x, w, b, stride, pad) * r))

    dx, dw, db = ops.conv2d_backward(r, x, w, stride, pad)
    assert_grad(dx, numerical_grad(loss, x))
    assert_grad(dw, numerical_grad(loss, w))
    assert_grad(db, numerical_grad(loss, b))


def distinct_values(rng, shape):
    """Values at least 0.01 apart, so no max-pool window has a tie within +-EPS."""
    return (rng.permutation(int(np.prod(shape))) * 0.01 - 1.0).reshape(shape)


@pytest.mark.parametrize(
    ("kernel", "stride", "pad"), [(2, None, 0), (3, 2, 1), ((2, 3), 1, (1, 0))]
)
def test_max_pool2d_gradient(backend, rng, kernel, stride, pad):
    x = distinct_values(rng, (2, 2, 5, 6))
    y, argmax = ops.max_pool2d(x, kernel, stride, pad)
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(ops.max_pool2d(x, kernel, stride, pad)[0] * r))

    dx = ops.max_pool2d_backward(r, argmax, x.shape, kernel, stride, pad)
    assert_grad(dx, numerical_grad(loss, x))


@pytest.mark.parametrize(
    ("kernel", "stride", "pad"), [(2, None, 0), (3, 2, 1), ((2, 3), 1, (1, 0))]
)
def test_avg_pool2d_gradient(backend, rng, kernel, stride, pad):
    x = rng.standard_normal((2, 2, 5, 6))
    r = rng.standard_normal(ops.avg_pool2d(x, kernel, stride, pad).shape)

    def loss():
        return float(np.sum(ops.avg_pool2d(x, kernel, stride, pad) * r))

    dx = ops.avg_pool2d_backward(r, x.shape, kernel, stride, pad)
    assert_grad(dx, numerical_grad(loss, x))
