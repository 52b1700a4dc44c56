"""Sequential networks, the model builders and the Trainer."""

import json

import dlx
import dlx.ops as ops
import numpy as np
import pytest
from dlx.gradcheck import gradient_check


def quadrant_images(n, size=12, seed=0):
    """A tiny image task: the class (0..3) is the quadrant holding a bright square."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, size, size)).astype(np.float32) * 0.5
    t = rng.integers(0, 4, n)
    half = size // 2
    for i, c in enumerate(t):
        r, q = divmod(int(c), 2)
        x[i, 0, r * half : (r + 1) * half, q * half : (q + 1) * half] += 0.5
    return x, t


def blobs(n, seed=0):
    """Three Gaussian clusters in 2-D."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 3, n)
    centres = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    return (centres[t] + 0.5 * rng.standard_normal((n, 2))).astype(np.float32), t


GRAD_CASES = {
    "mlp-relu": (lambda: dlx.models.mlp(6, [5, 4], 3, dtype=np.float64), (5, 6)),
    "mlp-tanh-bn-dropout-decay": (
        lambda: dlx.models.mlp(
            6,
            [5],
            3,
            activation="tanh",
            batchnorm=True,
            dropout=0.3,
            weight_decay=0.1,
            dtype=np.float64,
        ),
        (5, 6),
    ),
    "simple_conv_net": (
        lambda: dlx.models.simple_conv_net(
            (2, 10, 10), filters=3, hidden_size=6, output_size=3, dtype=np.float64
        ),
        (3, 2, 10, 10),
    ),
    "deep_conv_net": (
        lambda: dlx.models.deep_conv_net((1, 12, 12), output_size=3, dtype=np.float64),
        (3, 1, 12, 12),
    ),
    "deep_conv_net-bn": (
        lambda: dlx.models.deep_conv_net(
            (1, 12, 12), output_size=3, batchnorm=True, dtype=np.float64
        ),
        (3, 1, 12, 12),
    ),
}


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_whole_network_gradient_check(case):
    make, shape = GRAD_CASES[case]
    dlx.seed(1)
    net = make()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    t = np.arange(shape[0]) % 3
    errors = gradient_check(net, x, t, max_entries=25)
    assert set(errors) == set(net.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: {errors[worst]:.2e}"


def test_numerical_gradient_agrees_with_backprop():
    dlx.seed(0)
    net = dlx.models.mlp(3, [4], 2, dtype=np.float64)
    x, t = np.random.default_rng(0).standard_normal((4, 3)), np.array([0, 1, 1, 0])
    numeric = net.numerical_gradient(x, t, h=1e-6)
    for key, grad in net.gradient(x, t).items():
        np.testing.assert_allclose(grad, numeric[key], rtol=1e-5, atol=1e-8)


def test_first_layer_skips_its_input_gradient(monkeypatch):
    """The network's input is the data: its first layer runs backward_params, which for a
    convolution asks the kernel for no dx; the gradients are those of the full backward."""
    rng = np.random.default_rng(0)
    net = dlx.models.simple_conv_net((1, 8, 8), filters=3, kernel_size=3, hidden_size=5)
    x, t = rng.random((4, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 4)
    net.loss(x, t)
    d = net.loss_layer.backward(1.0)
    for layer in reversed(net.layers):  # every layer's full backward, dx included
        d = layer.backward(d)
    full = {name: g.copy() for name, g in net.grads.items()}

    calls = []
    conv2d_backward = ops.conv2d_backward

    def spy(*args, **kwargs):
        calls.append(kwargs.get("input_grad", True))
        return conv2d_backward(*args, **kwargs)

    monkeypatch.setattr(ops, "conv2d_backward", spy)
    net.loss(x, t)
    grads = net.backward()
    assert calls == [False]
    for name, g in full.items():
        np.testing.assert_array_equal(grads[name], g)
    # A layer with only backward gets backward_params from the base class.
    relu_first = dlx.Sequential([dlx.layers.ReLU(), dlx.layers.Affine(3, 2)])
    relu_first.loss(rng.standard_normal((5, 3)).astype(np.float32), rng.integers(0, 2, 5))
    assert relu_first.backward()["1.W"].shape == (3, 2)


def test_mlp_learns_blobs():
    dlx.seed(0)
    x, t = blobs(600)
    net = dlx.models.mlp(2, [16], 3)
    dlx.Trainer(net, dlx.optim.Adam(0.05), epochs=10, batch_size=32, progress=False).fit(
        x[:500], t[:500]
    )
    assert net.accuracy(x[500:], t[500:]) > 0.9


def test_simple_conv_net_learns_quadrants_through_cpp():
    assert ops.backend() == "cpp"
    calls = {"conv2d": 0}
    original = ops._native.conv2d

    def counting(*args):
        calls["conv2d"] += 1
        return original(*args)

    ops._native.conv2d = counting
    try:
        dlx.seed(0)
        x, t = quadrant_images(700)
        net = dlx.models.simple_conv_net((1, 12, 12), filters=6, hidden_size=32, output_size=4)
        history = dlx.Trainer(net, "adam", epochs=4, batch_size=50, progress=False).fit(
            x[:600], t[:600], x[600:], t[600:]
        )
    finally:
        ops._native.conv2d = original
    assert history["val_acc"][-1] > 0.95
    assert calls["conv2d"] >= 4 * 12  # every training batch went through the C++ kernel


def test_training_is_reproducible_with_dlx_seed():
    x, t = quadrant_images(200)

    def train():
        dlx.seed(5)
        net = dlx.models.deep_conv_net((1, 12, 12), output_size=4, hidden_size=16)
        return dlx.Trainer(net, "sgd", epochs=2, batch_size=40, progress=False).fit(x, t), net

    (h1, n1), (h2, n2) = train(), train()
    assert h1["train_loss"] == h2["train_loss"]
    for k in n1.params:
        np.testing.assert_array_equal(n1.params[k], n2.params[k])


def test_history_records_each_epoch_and_set():
    x, t = blobs(120)
    net = dlx.models.mlp(2, [8], 3)
    h = dlx.Trainer(net, epochs=3, batch_size=50, progress=False).fit(
        x[:80], t[:80], x[80:100], t[80:100], x[100:], t[100:]
    )
    assert h["epoch"] == [1, 2, 3]
    for key in (
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "test_loss",
        "test_acc",
        "train_seconds",
        "seconds",
    ):
        assert len(h[key]) == 3
    assert all(0 < a <= b for a, b in zip(h["train_seconds"], h["seconds"], strict=True))
    json.dumps(h)  # plain numbers, ready to save


def test_early_stopping_restores_the_best_weights():
    x, t = blobs(300)
    net = dlx.models.mlp(2, [8], 3)
    trainer = dlx.Trainer(
        net, dlx.optim.SGD(5.0), epochs=30, batch_size=30, progress=False, early_stopping=2
    )
    h = trainer.fit(x[:200], t[:200], x[200:], t[200:])
    assert len(h["epoch"]) < 30
    assert net.accuracy(x[200:], t[200:]) == pytest.approx(max(h["val_acc"]))


def test_early_stopping_restores_the_best_epochs_batchnorm_statistics():
    x, t = blobs(300)
    dlx.seed(1)
    net = dlx.models.mlp(2, [16, 16], 3, batchnorm=True)
    states = {}
    trainer = dlx.Trainer(
        net,
        dlx.optim.SGD(2.0),
        epochs=30,
        batch_size=20,
        progress=False,
        early_stopping=2,
        on_epoch_end=lambda epoch, _: states.setdefault(epoch, net.state_dict()),
    )
    h = trainer.fit(x[:200], t[:200], x[200:], t[200:])
    best = h["epoch"][int(np.argmax(h["val_acc"]))]
    assert best < h["epoch"][-1]  # it stopped after worse epochs
    restored = net.state_dict()
    assert any(k.startswith("buffer/") for k in restored)
    for key, value in states[best].items():
        np.testing.assert_array_equal(restored[key], value, err_msg=key)
    assert net.accuracy(x[200:], t[200:]) == max(h["val_acc"])


def test_state_dict_round_trip_and_checks(rng):
    net = dlx.models.mlp(4, [5], 3, batchnorm=True)
    state = net.state_dict()
    assert set(state) == set(net.params) | {f"buffer/{k}" for k in net.buffers}
    for value in state.values():
        value += 1.0  # copies: the model does not change
    assert not np.array_equal(state["0.W"], net.params["0.W"])
    net.load_state_dict(state)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, state[key])

    before = net.state_dict()
    with pytest.raises(KeyError, match=r"missing \['buffer/1.running_var'\]"):
        net.load_state_dict({k: v for k, v in state.items() if k != "buffer/1.running_var"})
    with pytest.raises(KeyError, match=r"unexpected \['9.W'\]"):
        net.load_state_dict({**state, "9.W": state["0.W"]}, strict=False)
    bad = {**state, "0.b": state["0.b"].astype(np.float64)}
    with pytest.raises(ValueError, match=r"state\['0.b'\] has shape \(5,\) and dtype float64"):
        net.load_state_dict(bad)
    with pytest.raises(TypeError, match="state must be a dict"):
        net.load_state_dict(list(state.values()))
    for key, value in net.state_dict().items():  # nothing was copied by the failed calls
        np.testing.assert_array_equal(value, before[key])
    partial = {"0.W": np.zeros_like(state["0.W"])}
    net.load_state_dict(partial, strict=False)
    assert not net.params["0.W"].any()


def test_nan_loss_stops_with_epoch_and_batch():
    x, t = blobs(100)
    x[37] = np.nan
    net = dlx.models.mlp(2, [8], 3)
    trainer = dlx.Trainer(net, epochs=2, batch_size=100, progress=False)
    with pytest.raises(FloatingPointError, match=r"became nan at epoch 1, batch 1 of 1"):
        trainer.fit(x, t)


def test_progress_bar_is_shown_and_can_be_turned_off(capsys):
    x, t = blobs(60)
    dlx.Trainer(dlx.models.mlp(2, [4], 3), epochs=1, batch_size=20, progress=True).fit(x, t)
    assert "epoch 1/1" in capsys.readouterr().err
    dlx.Trainer(dlx.models.mlp(2, [4], 3), epochs=1, batch_size=20, progress=False).fit(x, t)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": -1}, r"epochs must be an int >= 0, got -1"),
        ({"batch_size": 0}, r"batch_size must be an int >= 1, got 0"),
        ({"monitor": "acc"}, r"monitor must be 'val_acc' or 'val_loss'"),
        ({"optimizer": "newton"}, r"optimizer must be one of"),
    ],
)
def test_trainer_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dlx.Trainer(dlx.models.mlp(2, [4], 3), **kwargs)


def test_trainer_refuses_mismatched_data():
    trainer = dlx.Trainer(dlx.models.mlp(2, [4], 3), progress=False)
    with pytest.raises(ValueError, match="x_train has 10 samples but t_train has 9"):
        trainer.fit(np.zeros((10, 2), np.float32), np.zeros(9, np.int64))


def test_accuracy_with_one_hot_targets():
    dlx.seed(0)
    net = dlx.models.mlp(2, [4], 3)
    x, t = blobs(50)
    assert net.accuracy(x, t) == net.accuracy(x, np.eye(3)[t])


def test_sequential_refuses_non_layers():
    with pytest.raises(
        TypeError, match="layer 1 must be a dlx.Layer, got builtin_function_or_method"
    ):
        dlx.Sequential([dlx.layers.ReLU(), print])


def test_summary_counts_parameters_and_multiply_adds():
    text = dlx.models.simple_conv_net().summary((1, 28, 28), batch_size=100)
    # conv: 100 * 30 * 24 * 24 * 1 * 5 * 5 multiply-adds; 30*25 + 30 parameters.
    assert "43,200,000" in text and "780" in text
    assert text.splitlines()[-1].split()[1:] == ["433,890", "86,500,000"]


def test_summary_counts_what_plugin_layers_report():
    class Scale(dlx.Layer):  # one weight per feature: reports N * features multiply-adds
        def __init__(self, n):
            super().__init__()
            self.params["w"] = np.ones(n, np.float32)

        def forward(self, x, train=True):
            return x * self.params["w"]

        def multiply_adds(self, input_shape, output_shape):
            return int(np.prod(input_shape))

    class Unreported(Scale):
        multiply_adds = dlx.Layer.multiply_adds

    net = dlx.Sequential([dlx.layers.Affine(4, 6), Scale(6), dlx.layers.ReLU()])
    rows = net.summary((4,), batch_size=10).splitlines()
    assert rows[3].split()[-1] == "60" and rows[4].split()[-1] == "0"
    assert rows[-1].split()[-1] == "300"  # 10 * 4 * 6 + 60
    rows = dlx.Sequential([dlx.layers.Affine(4, 6), Unreported(6)]).summary((4,)).splitlines()
    assert rows[3].split()[-1] == "?" and rows[-1].endswith("24 + ?")


@pytest.mark.parametrize(
    ("layer", "error", "message"),
    [
        (
            {"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "bias": "no"},
            TypeError,
            r"layers\[1\] \(Conv2d\): bias must be True or False, got 'no'",
        ),
        (
            {"type": "Affine", "in_features": 2, "out_features": 3, "weight_init": float("inf")},
            ValueError,
            r"layers\[1\] \(Affine\): weight_init must be .* positive, finite std, got inf",
        ),
        (
            {
                "type": "Conv2d",
                "in_channels": 1,
                "out_channels": 2,
                "kernel_size": 3,
                "dtype": "float16",
            },
            TypeError,
            r"layers\[1\] \(Conv2d\): dtype must be float32 or float64, got float16",
        ),
        (
            {"type": "BatchNorm", "num_features": 3, "eps": float("nan")},
            ValueError,
            r"layers\[1\] \(BatchNorm\): eps must be finite, got nan",
        ),
        (
            {"type": "BatchNorm", "num_features": 3, "momentum": "0.9"},
            TypeError,
            r"layers\[1\] \(BatchNorm\): momentum must be a number, got str",
        ),
    ],
)
def test_config_values_are_validated_with_their_place(layer, error, message):
    config = {"layers": [{"type": "ReLU"}, layer]}
    with pytest.raises(error, match=message):
        dlx.Sequential.from_config(config)


@pytest.mark.parametrize("decay", [float("nan"), float("inf"), -1.0, True, "0.1"])
def test_weight_decay_must_be_a_finite_number(decay):
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        dlx.Sequential([dlx.layers.ReLU()], weight_decay=decay)
