"""Initialisation scales and reproducibility."""

import dlx
import numpy as np
import pytest
from dlx import init


@pytest.mark.parametrize(
    ("make", "std"),
    [
        (lambda: init.he((400, 300), 400), np.sqrt(2 / 400)),
        (lambda: init.xavier((400, 300), 400, 300), np.sqrt(2 / 700)),
        (lambda: init.normal((400, 300), 0.01), 0.01),
        (lambda: init.uniform((400, 300), 400), 1 / np.sqrt(3 * 400)),
        # 784 -> 100, where LeCun (1/sqrt(784) = 0.0357) and Glorot (0.0476) differ by 33%
        (lambda: init.lecun((784, 100), 784, 100), 1 / np.sqrt(784)),
        (lambda: init.glorot((784, 100), 784, 100), np.sqrt(2 / 884)),
    ],
    ids=["he", "xavier", "normal", "uniform", "lecun", "glorot"],
)
def test_scale(make, std):
    w = make()
    assert w.dtype == np.float32
    assert w.std() == pytest.approx(std, rel=0.02)
    assert abs(w.mean()) < 0.05 * std


def test_conv_fan_in_counts_the_window():
    w = dlx.layers.Conv2d(16, 32, 3).params["W"]
    assert w.std() == pytest.approx(np.sqrt(2 / (16 * 9)), rel=0.05)


def test_seed_makes_initialisation_reproducible():
    dlx.seed(3)
    a = dlx.models.simple_conv_net().params
    dlx.seed(3)
    b = dlx.models.simple_conv_net().params
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_weight_init_by_std():
    w = dlx.layers.Affine(500, 400, weight_init=0.05).params["W"]
    assert w.std() == pytest.approx(0.05, rel=0.02)


def test_uniform_stays_within_its_bound_in_every_layer_of_a_model():
    net = dlx.models.deep_conv_net(batchnorm=True, weight_init="uniform")
    weights = [layer.params["W"] for layer in net.layers if "W" in layer.params]
    assert len(weights) == 8
    for w in weights:
        fan_in = int(np.prod(w.shape[1:])) if w.ndim == 4 else w.shape[0]
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound  # spread over the whole range, not a point


@pytest.mark.parametrize("bad", ["orthogonal", "Glorot", 0.0, -1.0, float("inf"), True])
def test_unknown_weight_init_names_the_choices(bad):
    with pytest.raises(
        ValueError,
        match=(
            "weight_init must be 'he', 'lecun', 'glorot', 'xavier', 'uniform' or a positive, "
            f"finite std, got {bad!r}"
        ),
    ):
        dlx.layers.Affine(3, 2, weight_init=bad)


def test_lecun_and_glorot_coincide_when_fan_in_equals_fan_out():
    a = init.lecun((50, 50), 50, 50, rng=np.random.default_rng(1), dtype=np.float64)
    b = init.glorot((50, 50), 50, 50, rng=np.random.default_rng(1), dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=1e-15)
    c = init.glorot((784, 100), 784, 100, rng=np.random.default_rng(1), dtype=np.float64)
    d = init.lecun((784, 100), 784, 100, rng=np.random.default_rng(1), dtype=np.float64)
    np.testing.assert_allclose(c / d, np.sqrt(2 * 784 / 884))  # same draws, other scale


def test_xavier_is_glorot_and_keeps_its_name_in_configs():
    assert init.xavier is init.glorot
    assert init.INITIALIZERS["xavier"] is init.INITIALIZERS["glorot"] is init.glorot
    layer = dlx.layers.Affine(20, 10, weight_init="xavier", rng=np.random.default_rng(2))
    same = dlx.layers.Affine(20, 10, weight_init="glorot", rng=np.random.default_rng(2))
    np.testing.assert_array_equal(layer.params["W"], same.params["W"])
    assert layer.to_config()["weight_init"] == "xavier"
    net = dlx.Sequential([layer])
    assert dlx.Sequential.from_config(net.to_config()).to_config() == net.to_config()


@pytest.mark.parametrize("name", ["lecun", "glorot"])
def test_layers_take_the_new_names(name):
    affine = dlx.layers.Affine(784, 100, weight_init=name, rng=np.random.default_rng(0))
    std = 1 / np.sqrt(784) if name == "lecun" else np.sqrt(2 / 884)
    assert affine.params["W"].std() == pytest.approx(std, rel=0.02)
    assert affine.to_config()["weight_init"] == name
    # Conv2d: fan_in = in_channels * kh * kw = 144, fan_out = out_channels * kh * kw = 288
    conv = dlx.layers.Conv2d(16, 32, 3, weight_init=name, rng=np.random.default_rng(0))
    std = 1 / np.sqrt(144) if name == "lecun" else np.sqrt(2 / (144 + 288))
    assert conv.params["W"].std() == pytest.approx(std, rel=0.05)
