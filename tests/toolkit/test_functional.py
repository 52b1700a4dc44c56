"""dlx.functional: values, shapes, dtypes, stability, and the textbook bugs that must not return."""

import dlx.functional as F
import numpy as np
import pytest


def test_sigmoid_values_and_precedence():
    # The textbook slip 1/1+np.exp(-x) would give 1 + exp(-x): 2.0 at x = 0.
    assert F.sigmoid(np.array(0.0)) == 0.5
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    np.testing.assert_allclose(F.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-15)


def test_sigmoid_is_stable_for_large_inputs():
    # pytest turns overflow RuntimeWarnings into errors (filterwarnings = error).
    y = F.sigmoid(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0]))
    assert y[0] == 0.0 and y[-1] == 1.0 and np.all(np.isfinite(y))
    assert F.sigmoid(np.array([-100.0], np.float32)).dtype == np.float32


@pytest.mark.parametrize("fn", [F.step, F.relu, F.sigmoid, F.tanh, F.identity])
def test_activations_work_on_arrays_of_any_shape(fn):
    # The textbook's scalar-only step and relu fail on arrays ("if x > 0").
    x = np.linspace(-3, 3, 24).reshape(2, 3, 4)
    assert fn(x).shape == x.shape


@pytest.mark.parametrize(
    "fn", [F.step, F.relu, F.sigmoid, F.tanh, F.identity, F.softmax, F.log_softmax]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functions_keep_the_dtype(fn, dtype):
    assert fn(np.ones((3, 4), dtype)).dtype == dtype


def test_step_and_relu_values():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(F.step(x), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(F.relu(x), [0.0, 0.0, 2.0])


def test_softmax_rows_sum_to_one_and_resist_overflow():
    x = np.array([[1010.0, 1000.0, 990.0], [1.0, 2.0, 3.0]])
    y = F.softmax(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0)
    np.testing.assert_allclose(y[0], F.softmax(np.array([20.0, 10.0, 0.0])))
    # A single sample (1-D) works too: the textbook version used an undefined name here.
    np.testing.assert_allclose(
        F.softmax(np.array([0.3, 2.9, 4.0])), [0.01821127, 0.24519181, 0.73659691], rtol=1e-6
    )


def test_log_softmax_is_finite_where_softmax_underflows():
    x = np.array([[0.0, -1000.0]])
    np.testing.assert_allclose(F.log_softmax(x), [[0.0, -1000.0]])
    np.testing.assert_allclose(
        np.exp(F.log_softmax(np.array([1.0, 2.0]))), F.softmax(np.array([1.0, 2.0]))
    )


def test_mse_forms():
    y, t = np.array([0.1, 0.6, 0.3]), np.array([0.0, 1.0, 0.0])
    assert F.mse(y, t) == pytest.approx(0.5 * (0.01 + 0.16 + 0.09))
    assert F.mse(y, t, reduction="mean") == pytest.approx((0.01 + 0.16 + 0.09) / 3)
    with pytest.raises(ValueError, match="reduction must be"):
        F.mse(y, t, reduction="sum")
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(2,\)"):
        F.mse(y, t[:2])


def test_rmse_is_the_root_of_the_mean_not_of_the_half_sum():
    # The book's example: y with 0.6 on the correct class 2 of 10.
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    t = np.eye(10)[2]
    assert F.mse(y, t) == pytest.approx(0.0975)  # 0.5 * sum: the book's "MSE"
    assert F.rmse(y, t) == pytest.approx(np.sqrt(0.0195))  # sqrt(0.195 / 10)
    assert F.rmse(y, t) ** 2 == pytest.approx(F.mse(y, t, reduction="mean"))
    assert F.rmse(np.float32([1, 2]), np.float32([3, 2])).dtype == np.float32
    assert F.rmse(np.array([[1.0, 3.0]]), np.array([[0.0, 0.0]])) == pytest.approx(np.sqrt(5))
    with pytest.raises(ValueError, match=r"same shape, got \(2,\) and \(3,\)"):
        F.rmse(np.zeros(2), np.zeros(3))


def test_cross_entropy_labels_and_one_hot_agree():
    y = np.array([[0.1, 0.05, 0.6, 0.25], [0.7, 0.1, 0.1, 0.1]])
    labels = np.array([2, 0])
    one_hot = np.eye(4)[labels]
    expected = -(np.log(0.6) + np.log(0.7)) / 2  # averaged over the mini-batch
    assert F.cross_entropy(y, labels) == pytest.approx(expected)
    assert F.cross_entropy(y, one_hot) == pytest.approx(expected)


def test_cross_entropy_single_sample():
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])  # the book's example
    assert F.cross_entropy(y, 2) == pytest.approx(0.510825, abs=1e-6)
    assert F.cross_entropy(y, np.eye(10)[2]) == pytest.approx(0.510825, abs=1e-6)


def test_cross_entropy_of_zero_probability_is_finite():
    assert np.isfinite(F.cross_entropy(np.array([[0.0, 1.0]]), np.array([0])))


def test_nll_loss_matches_cross_entropy_of_softmax():
    x = np.random.default_rng(0).standard_normal((5, 3))
    t = np.array([0, 2, 1, 1, 0])
    assert F.nll_loss(F.log_softmax(x), t) == pytest.approx(F.cross_entropy(F.softmax(x), t))


@pytest.mark.parametrize(
    ("t", "error", "match"),
    [
        (np.array([0, 5]), ValueError, r"labels in t must lie in \[0, 4\), got \[0, 5\]"),
        (np.array([-1, 0]), ValueError, r"must lie in \[0, 4\)"),
        (np.array([0, 1, 2]), ValueError, r"t must have shape \(2,\) or \(2, 4\), got \(3,\)"),
        (np.array([0.5, 1.0]), TypeError, r"t must hold integer labels"),
    ],
)
def test_cross_entropy_bad_targets(t, error, match):
    with pytest.raises(error, match=match):
        F.cross_entropy(np.full((2, 4), 0.25), t)


def test_non_numeric_input_is_refused():
    with pytest.raises(TypeError, match="expected a numeric array"):
        F.relu(np.array(["a"]))


def test_mean_squared_errors_of_empty_arrays_are_refused():
    with pytest.raises(ValueError, match=r"empty arrays is undefined, got shape \(0,\)"):
        F.rmse(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="empty arrays"):
        F.mse(np.zeros((0, 3)), np.zeros((0, 3)), reduction="mean")
