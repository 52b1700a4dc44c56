"""Weight decay with the L∞ norm: penalty, (sub)gradient, configs and errors."""

import json

import dlx
import numpy as np
import pytest
from dlx.gradcheck import gradient_check


def _mlp(weight_decay, regularization="linf"):
    dlx.seed(0)
    layers = dlx.models.mlp(4, [5], 3, activation="tanh", dtype=np.float64).layers
    return dlx.Sequential(layers, weight_decay=weight_decay, regularization=regularization)


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 4)), np.array([0, 1, 2, 0, 1, 2])


def _weights(net):
    return [w for key, w in net.params.items() if key.endswith(".W")]


def test_linf_penalty_is_decay_times_the_largest_magnitude_of_each_weight_array():
    x, t = _data()
    plain, decayed = _mlp(0.0), _mlp(0.3)
    expected = 0.3 * sum(np.abs(w).max() for w in _weights(decayed))
    assert decayed.penalty() == pytest.approx(expected, rel=1e-12)
    assert decayed.loss(x, t) == pytest.approx(plain.loss(x, t) + expected, rel=1e-12)


def test_linf_gradient_touches_only_the_largest_weight_and_matches_central_differences():
    x, t = _data()
    plain, decayed = _mlp(0.0), _mlp(0.3)
    g0 = {k: v.copy() for k, v in plain.gradient(x, t).items()}
    g1 = decayed.gradient(x, t)
    for key, w in decayed.params.items():
        extra = g1[key] - g0[key]
        if key.endswith(".W"):
            top = np.unravel_index(np.argmax(np.abs(w)), w.shape)
            expected = np.zeros_like(w)
            expected[top] = 0.3 * np.sign(w[top])
            np.testing.assert_allclose(extra, expected, atol=1e-15)
        else:  # biases are not decayed
            np.testing.assert_array_equal(extra, 0)
    # Distinct weights: the largest |W| stays the largest within +-h, so the max is smooth there.
    errors = gradient_check(decayed, x, t)
    assert max(errors.values()) < 1e-7


def test_linf_ties_share_the_subgradient_equally():
    x, t = _data()
    plain, decayed = _mlp(0.0), _mlp(0.4)
    for net in (plain, decayed):
        net.params["0.W"][...] = 0.1
        net.params["0.W"][0, 0], net.params["0.W"][2, 3] = 0.5, -0.5
    g0 = {k: v.copy() for k, v in plain.gradient(x, t).items()}
    extra = decayed.gradient(x, t)["0.W"] - g0["0.W"]
    expected = np.zeros((4, 5))
    expected[0, 0], expected[2, 3] = 0.2, -0.2  # 0.4 * sign(W) / 2 ties
    np.testing.assert_allclose(extra, expected, atol=1e-15)


def test_linf_in_a_graph_model_and_float32():
    dlx.seed(0)
    x = dlx.Input((4,))
    y = dlx.layers.Affine(3, 2)(dlx.layers.ReLU()(dlx.layers.Affine(4, 3)(x)))
    model = dlx.Model(x, y, weight_decay=0.5, regularization="linf")
    inputs, t = np.ones((2, 4), np.float32), np.array([0, 1])
    plain = model.loss_layer.forward(model.predict(inputs, train=True), t)
    expected = 0.5 * sum(float(np.abs(w).max()) for w in _weights(model))
    assert model.loss(inputs, t) == pytest.approx(plain + expected, rel=1e-6)
    grads = model.gradient(inputs, t)
    assert all(g.dtype == np.float32 for g in grads.values())


def test_linf_survives_config_round_trips_and_checkpoints(tmp_path):
    net = _mlp(0.01)
    rebuilt = dlx.Sequential.from_config(json.loads(json.dumps(net.to_config())))
    assert (rebuilt.weight_decay, rebuilt.regularization) == (0.01, "linf")
    loaded = dlx.load(dlx.save(net, tmp_path / "net.npz"))
    assert (loaded.weight_decay, loaded.regularization) == (0.01, "linf")
    x = dlx.Input((4,))
    model = dlx.Model(x, dlx.layers.Affine(4, 2)(x), weight_decay=0.1, regularization="linf")
    assert dlx.Model.from_config(model.to_config()).regularization == "linf"


@pytest.mark.parametrize("bad", ["l3", "Linf", "max", None])
def test_unknown_regularization_lists_the_choices(bad):
    message = rf"regularization must be one of 'l2', 'l1', 'linf', got {bad!r}"
    with pytest.raises(ValueError, match=message):
        _mlp(0.1, bad)
    with pytest.raises(ValueError, match=message):
        dlx.Sequential.from_config({"layers": [], "regularization": bad})


def test_repr_names_a_regularization_other_than_l2():
    text = repr(_mlp(0.1))
    assert text.endswith("loss=SoftmaxWithLoss(), weight_decay=0.1, regularization='linf'\n)")
    assert repr(_mlp(0.1, "l2")).endswith("loss=SoftmaxWithLoss(), weight_decay=0.1\n)")
    assert "regularization" not in repr(_mlp(0.0))
