"""Optimizers: hand-computed steps, the book's x^2/20 + y^2 experiment, weight decay."""

import math

import dlx
import numpy as np
import pytest
from dlx import optim


def run(opt, grads, start=1.0, dtype=np.float64):
    p = {"w": np.array([start], dtype=dtype)}
    values = []
    for g in grads:
        opt.update(p, {"w": np.array([g], dtype=dtype)})
        values.append(float(p["w"][0]))
    return values


def test_sgd():
    assert run(optim.SGD(lr=0.1), [0.5, 0.5]) == pytest.approx([0.95, 0.90])


def test_momentum():
    # v1 = -0.05, v2 = 0.9 * -0.05 - 0.05 = -0.095
    assert run(optim.Momentum(lr=0.1, momentum=0.9), [0.5, 0.5]) == pytest.approx([0.95, 0.855])


def test_nesterov():
    # p += m*v - lr*g with v = m*v - lr*g: -0.095 then -0.1355
    assert run(optim.Nesterov(lr=0.1, momentum=0.9), [0.5, 0.5]) == pytest.approx([0.905, 0.7695])


def test_adagrad():
    expected = [1 - 0.1 * 0.5 / (0.5 + 1e-7)]
    expected.append(expected[0] - 0.1 * 0.5 / (math.sqrt(0.5) + 1e-7))
    assert run(optim.AdaGrad(lr=0.1), [0.5, 0.5]) == pytest.approx(expected, rel=1e-12)


def test_rmsprop():
    h1 = 0.01 * 0.25
    h2 = 0.99 * h1 + 0.01 * 0.25
    p1 = 1 - 0.1 * 0.5 / (math.sqrt(h1) + 1e-7)
    p2 = p1 - 0.1 * 0.5 / (math.sqrt(h2) + 1e-7)
    assert run(optim.RMSprop(lr=0.1), [0.5, 0.5]) == pytest.approx([p1, p2], rel=1e-12)


def test_adam_with_bias_correction():
    # Bias correction makes the first step exactly lr * sign(g).
    p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    m2, v2 = 0.9 * 0.05 + 0.1 * -1.0, 0.999 * 0.00025 + 0.001 * 1.0
    p2 = p1 - 0.1 * (m2 / (1 - 0.9**2)) / (math.sqrt(v2 / (1 - 0.999**2)) + 1e-8)
    assert run(optim.Adam(lr=0.1), [0.5, -1.0]) == pytest.approx([p1, p2], rel=1e-12)
    assert p2 == pytest.approx(0.936611, abs=1e-6)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_updates_in_place_and_keep_float32(name):
    p = {"w": np.ones(3, np.float32)}
    before = p["w"]
    optim.get_optimizer(name).update(p, {"w": np.full(3, 0.5, np.float32)})
    assert p["w"] is before and p["w"].dtype == np.float32 and np.all(p["w"] < 1)


BOOK_RATES = {
    "sgd": 0.95,
    "momentum": 0.1,
    "nesterov": 0.1,
    "adagrad": 1.5,
    "rmsprop": 0.1,
    "adam": 0.3,
}


@pytest.mark.parametrize("name", sorted(BOOK_RATES))
def test_book_experiment_converges(name):
    """f(x, y) = x^2/20 + y^2 from (-7, 2): every optimizer reaches the minimum at (0, 0)."""
    opt = optim.get_optimizer(name, lr=BOOK_RATES[name])
    p = {"x": np.array(-7.0), "y": np.array(2.0)}
    for _ in range(200):
        opt.update(p, {"x": p["x"] / 10.0, "y": 2.0 * p["y"]})
    assert abs(p["x"]) < 1e-3 and abs(p["y"]) < 1e-3


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="lr must be a positive number, got -1"):
        optim.SGD(lr=-1)
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\), got 1.5"):
        optim.Momentum(momentum=1.5)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        optim.get_optimizer("lbfgs")
    with pytest.raises(ValueError, match=r"gradient of 'w' has shape \(2,\), parameter \(3,\)"):
        optim.SGD().update({"w": np.ones(3)}, {"w": np.ones(2)})
    with pytest.raises(TypeError, match=r"gradient of 'w' has dtype float64, parameter float32"):
        optim.Adam().update({"w": np.ones(3, np.float32)}, {"w": np.ones(3)})


def _net(weight_decay, regularization="l2"):
    dlx.seed(0)
    layers = dlx.models.mlp(4, [5], 3, batchnorm=True, dtype=np.float64).layers
    return dlx.Sequential(layers, weight_decay=weight_decay, regularization=regularization)


@pytest.mark.parametrize("regularization", ["l2", "l1"])
def test_weight_decay_applies_to_weights_only(regularization):
    x = np.random.default_rng(0).standard_normal((6, 4))
    t = np.array([0, 1, 2, 0, 1, 2])
    plain = _net(0.0)
    decayed = _net(0.3, regularization)
    g0, g1 = plain.gradient(x, t), decayed.gradient(x, t)
    for key, w in decayed.params.items():
        if key.endswith(".W"):
            extra = 0.3 * (w if regularization == "l2" else np.sign(w))
            np.testing.assert_allclose(g1[key], g0[key] + extra, rtol=1e-12)
        else:  # biases, gamma and beta are not decayed
            np.testing.assert_allclose(g1[key], g0[key], rtol=1e-12)
    weights = [w for k, w in decayed.params.items() if k.endswith(".W")]
    expected = (
        0.5 * 0.3 * sum(np.sum(w**2) for w in weights)
        if regularization == "l2"
        else 0.3 * sum(np.sum(np.abs(w)) for w in weights)
    )
    assert decayed.penalty() == pytest.approx(expected)
    errors = dlx.gradcheck.gradient_check(decayed, x, t)
    assert max(errors.values()) < 1e-6


@pytest.mark.parametrize(
    ("name", "dtype", "steps"),
    [
        # Enough steps for the state's decay (0.9, or RMSprop's 0.99) to pass below the
        # smallest subnormal: 1e-45 in float32, 5e-324 in float64.
        ("momentum", np.float32, 1100),
        ("nesterov", np.float32, 1100),
        ("adam", np.float32, 1100),
        ("rmsprop", np.float32, 11000),
        ("momentum", np.float64, 7200),
        ("adam", np.float64, 7200),
    ],
)
def test_decaying_state_never_turns_subnormal(name, dtype, steps):
    """Once a gradient stops (a dead unit), the optimizer's state decays geometrically; it
    goes from normal numbers straight to zero instead of through the slow subnormal range."""
    opt = dlx.optim.get_optimizer(name, lr=1e-3)
    params = {"w": np.ones(4, dtype)}
    opt.update(params, {"w": np.array([1.0, -1.0, 1e-3, 0.0], dtype)})
    tiny = np.finfo(dtype).tiny
    zero = {"w": np.zeros(4, dtype)}
    for _ in range(steps):
        opt.update(params, zero)
        for state in opt.state["w"].values():
            assert not np.any((state != 0) & (np.abs(state) < tiny))
    decaying = opt.state["w"]["h" if name == "rmsprop" else "m" if name == "adam" else "v"]
    assert np.all(decaying == 0)
    assert params["w"].dtype == dtype
