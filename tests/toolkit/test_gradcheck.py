"""Numerical differentiation and gradient checks, including that a check can fail."""

import dlx
import numpy as np
import pytest
from dlx.gradcheck import gradient_check, gradient_descent, numerical_diff, numerical_gradient


def test_numerical_diff():
    # The book's f(x) = 0.01 x^2 + 0.1 x has f'(5) = 0.2 and f'(10) = 0.3.
    f = lambda x: 0.01 * x**2 + 0.1 * x
    assert numerical_diff(f, 5.0) == pytest.approx(0.2, abs=1e-9)
    assert numerical_diff(f, 10.0) == pytest.approx(0.3, abs=1e-9)


def test_numerical_gradient_any_shape_and_restores_x():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    before = x.copy()
    grad = numerical_gradient(lambda a: float(np.sum(a**2)), x)
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-7)
    np.testing.assert_array_equal(x, before)  # bit for bit


def test_numerical_gradient_refuses_integer_arrays():
    with pytest.raises(TypeError, match="floating-point numpy.ndarray, got an array of int64"):
        numerical_gradient(lambda a: 0.0, np.array([1, 2], dtype=np.int64))
    with pytest.raises(TypeError, match="got list"):
        numerical_gradient(lambda a: 0.0, [1.0, 2.0])


def test_gradient_descent_reaches_the_minimum():
    x, path = gradient_descent(
        lambda a: float(np.sum(a**2)), np.array([-3.0, 4.0]), lr=0.1, step_num=100
    )
    np.testing.assert_allclose(x, [0.0, 0.0], atol=1e-8)
    assert path.shape == (101, 2) and tuple(path[0]) == (-3.0, 4.0)


class WrongBackward(dlx.Layer):
    """y = x^2 with a deliberately wrong derivative (x instead of 2x)."""

    def forward(self, x, train=True):
        self.x = x
        return x**2

    def backward(self, dout):
        return dout * self.x


def test_gradient_check_catches_a_wrong_backward():
    errors = gradient_check(WrongBackward(), np.random.default_rng(0).standard_normal((3, 4)))
    assert errors["x"] > 0.1


def test_gradient_check_needs_float64():
    with pytest.raises(TypeError, match="need float64"):
        gradient_check(dlx.layers.Affine(3, 2), np.ones((2, 3), np.float32))
