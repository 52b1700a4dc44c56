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
    ],
    ids=["he", "xavier", "normal", "uniform"],
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


def test_unknown_weight_init_names_the_choices():
    with pytest.raises(
        ValueError, match="'he', 'xavier', 'uniform' or a positive, finite std, got 'lecun'"
    ):
        dlx.layers.Affine(3, 2, weight_init="lecun")
