"""The convolution page's "Learning a kernel" example (d2l's experiment), run by
``dlx.experiments.fit_edge_kernel``: gradient descent recovers the edge kernel [1, -1].

The loss is quadratic in the two weights: with A the im2col matrix of the image, (42, 2), the
summed squared error has the Hessian 2 A^T A, whose eigenvalues are 12 and 60. A step of rate
lr multiplies the error along each eigenvector by 1 - lr * eigenvalue, so lr = 0.03 shrinks it
by 0.64 and -0.8 a step, lr = 0 leaves it, and any lr above 2 / 60 makes it grow.
"""

import re

import dlx.ops as ops
import numpy as np
import pytest
from dlx.errors import DlxValueError
from dlx.experiments import fit_edge_kernel

TARGET = np.array([1.0, -1.0])


def initial_kernel(seed):
    return np.random.default_rng(seed).standard_normal(2)


def test_the_page_run_learns_the_edge_kernel():
    losses, kernels = fit_edge_kernel(lr=0.03, steps=10, seed=0)
    assert losses.shape == (10,) and kernels.shape == (10, 2)
    assert np.all(np.diff(losses) < 0)
    assert losses[-1] < 0.01 and losses[-1] < 1e-3 * losses[0]
    np.testing.assert_allclose(kernels[-1], TARGET, atol=0.011)  # the page says about 0.01


@pytest.mark.parametrize("seed", range(20))
def test_every_start_converges_at_the_rate_the_curvature_allows(seed):
    losses, kernels = fit_edge_kernel(lr=0.03, steps=10, seed=seed)
    assert np.all(np.diff(losses) < 0)
    # Ten steps shrink every component of the error by at least 0.8 ** 10.
    start = np.linalg.norm(initial_kernel(seed) - TARGET)
    assert np.linalg.norm(kernels[-1] - TARGET) <= 0.8**10 * start * (1 + 1e-9)


def test_the_curvatures_are_12_and_60():
    x = np.ones((1, 1, 6, 8))
    x[..., 2:6] = 0
    col = ops.im2col(x, (1, 2))
    np.testing.assert_allclose(np.linalg.eigvalsh(2 * col.T @ col), [12.0, 60.0])


def test_learning_rate_zero_learns_nothing():
    losses, kernels = fit_edge_kernel(lr=0.0, steps=10, seed=0)
    np.testing.assert_array_equal(kernels[-1], initial_kernel(0))
    assert np.all(losses == losses[0]) and losses[-1] > 1
    assert np.abs(kernels[-1] - TARGET).max() > 0.5


def test_a_rate_above_two_over_sixty_diverges():
    losses, kernels = fit_edge_kernel(lr=0.04, steps=40, seed=0)
    assert losses[-1] > 10 * losses[0]
    assert np.abs(kernels[-1] - TARGET).max() > 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -0.1}, "lr must be a finite number >= 0, got -0.1"),
        ({"lr": float("nan")}, "lr must be a finite number >= 0, got nan"),
        ({"lr": "0.03"}, "lr must be a finite number >= 0, got '0.03'"),
        ({"steps": 0}, "steps must be a positive integer, got 0"),
        ({"steps": 2.5}, "steps must be a positive integer, got 2.5"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(DlxValueError, match=re.escape(message)):
        fit_edge_kernel(**kwargs)
