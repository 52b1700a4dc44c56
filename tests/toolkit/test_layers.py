"""Every layer: float64 gradient checks, dtypes kept end to end, modes, and clear errors."""

import dlx
import numpy as np
import pytest
from dlx.gradcheck import gradient_check
from dlx.layers import (
    Affine,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dropout,
    Flatten,
    MaxPool2d,
    MeanSquaredError,
    ReLU,
    Sigmoid,
    SoftmaxWithLoss,
    Tanh,
)

F64 = np.float64


def away_from_zero(rng, shape):
    """Values with |x| >= 0.1, so ReLU's kink stays far from every finite difference."""
    x = rng.uniform(0.1, 1.0, shape)
    return x * rng.choice([-1.0, 1.0], shape)


def distinct(rng, shape):
    return (rng.permutation(int(np.prod(shape))) * 0.01).reshape(shape)


LAYER_CASES = {
    "ReLU": (lambda: ReLU(), away_from_zero, (4, 5)),
    "Sigmoid": (lambda: Sigmoid(), lambda r, s: r.standard_normal(s), (4, 5)),
    "Tanh": (lambda: Tanh(), lambda r, s: r.standard_normal(s), (4, 5)),
    "Affine": (lambda: Affine(6, 3, dtype=F64), lambda r, s: r.standard_normal(s), (4, 6)),
    "Affine-4d-input": (
        lambda: Affine(12, 3, dtype=F64),
        lambda r, s: r.standard_normal(s),
        (2, 3, 2, 2),
    ),
    "Flatten": (lambda: Flatten(), lambda r, s: r.standard_normal(s), (2, 3, 2, 2)),
    "Conv2d": (
        lambda: Conv2d(2, 3, 3, stride=2, padding=1, dtype=F64),
        lambda r, s: r.standard_normal(s),
        (2, 2, 5, 6),
    ),
    "Conv2d-same": (
        lambda: Conv2d(2, 3, (3, 5), padding="same", dtype=F64),
        lambda r, s: r.standard_normal(s),
        (2, 2, 5, 6),
    ),
    "Conv2d-1x1": (
        lambda: Conv2d(3, 2, 1, dtype=F64),
        lambda r, s: r.standard_normal(s),
        (2, 3, 4, 4),
    ),
    "Conv2d-no-bias": (
        lambda: Conv2d(2, 2, 2, bias=False, dtype=F64),
        lambda r, s: r.standard_normal(s),
        (2, 2, 4, 4),
    ),
    "MaxPool2d": (lambda: MaxPool2d(2), distinct, (2, 2, 4, 6)),
    "MaxPool2d-overlap": (lambda: MaxPool2d(3, stride=2, padding=1), distinct, (2, 2, 5, 5)),
    "AvgPool2d": (
        lambda: AvgPool2d((2, 3), stride=1),
        lambda r, s: r.standard_normal(s),
        (2, 2, 4, 6),
    ),
    "BatchNorm-2d": (lambda: BatchNorm(5, dtype=F64), lambda r, s: r.standard_normal(s), (6, 5)),
    "BatchNorm-4d": (
        lambda: BatchNorm(3, dtype=F64),
        lambda r, s: r.standard_normal(s),
        (2, 3, 3, 4),
    ),
    "Dropout": (
        lambda: Dropout(0.4, rng=np.random.default_rng(1)),
        lambda r, s: r.standard_normal(s),
        (4, 5),
    ),
}


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_layer_gradient_check(case):
    make, data, shape = LAYER_CASES[case]
    dlx.seed(0)
    layer = make()
    errors = gradient_check(layer, data(np.random.default_rng(3), shape))
    assert set(errors) == {"x", *layer.params}
    for name, error in errors.items():
        assert error < 1e-6, f"{case} {name}: relative error {error:.2e}"


def test_layer_params_and_grads_match():
    layer = Conv2d(2, 3, 3, dtype=F64)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    layer.backward(np.ones_like(layer.forward(x)))
    assert set(layer.grads) == set(layer.params) == {"W", "b"}
    for k in layer.params:
        assert layer.grads[k].shape == layer.params[k].shape
    assert ReLU().params == {} and ReLU().grads == {}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_through_every_layer(dtype):
    dlx.seed(0)
    net = dlx.models.deep_conv_net(input_shape=(1, 12, 12), batchnorm=True, dtype=dtype)
    x = np.random.default_rng(0).random((3, 1, 12, 12)).astype(dtype)
    for layer in net.layers:
        x = layer.forward(x, train=True)
        assert x.dtype == dtype, f"{type(layer).__name__} produced {x.dtype}"
    net.loss_layer.forward(x, np.array([0, 1, 2]))
    d = net.loss_layer.backward()
    assert d.dtype == dtype
    for layer in reversed(net.layers):
        d = layer.backward(d)
        assert d.dtype == dtype, f"{type(layer).__name__} backward produced {d.dtype}"
        for g in layer.grads.values():
            assert g.dtype == dtype


def test_batchnorm_4d_normalises_per_channel():
    # The textbook slip flattens (N, C, H, W) to (N, C*H*W): one mean per pixel, not per channel.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 4, 4)) * np.array([1.0, 5.0, 0.5])[None, :, None, None] + 3.0
    bn = BatchNorm(3, dtype=F64)
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-10)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-4)
    # Per-pixel means are not forced to zero, as they would be by per-activation statistics.
    assert np.abs(y.mean(axis=0)).max() > 0.05
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-10)


def test_batchnorm_eval_uses_running_statistics():
    bn = BatchNorm(2, dtype=F64)
    bn.buffers["running_mean"][:] = [1.0, -1.0]
    bn.buffers["running_var"][:] = [4.0, 0.25]
    x = np.array([[3.0, 0.0], [1.0, -1.0]])
    expected = (x - [1.0, -1.0]) / np.sqrt(np.array([4.0, 0.25]) + bn.eps)
    np.testing.assert_allclose(bn.forward(x, train=False), expected)
    np.testing.assert_array_equal(bn.buffers["running_mean"], [1.0, -1.0])  # eval does not update


def test_dropout_eval_is_identity_and_train_is_inverted():
    x = np.ones((200, 50))
    drop = Dropout(0.3, rng=np.random.default_rng(0))
    assert drop.forward(x, train=False) is x
    y = drop.forward(x, train=True)
    survivors = y[y != 0]
    np.testing.assert_allclose(survivors, 1 / 0.7)  # scaled up, not down at test time
    assert abs((y == 0).mean() - 0.3) < 0.02
    assert abs(y.mean() - 1.0) < 0.03
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), y)  # mask reused


def test_dropout_is_reproducible_with_dlx_seed():
    x = np.ones((4, 6), np.float32)
    dlx.seed(7)
    a = Dropout(0.5).forward(x)
    dlx.seed(7)
    b = Dropout(0.5).forward(x)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32


def test_affine_restores_input_shape():
    layer = Affine(12, 2, dtype=F64)
    x = np.ones((3, 3, 2, 2))
    layer.forward(x)
    assert layer.backward(np.ones((3, 2))).shape == x.shape


def test_one_hot_and_label_targets_give_the_same_loss_and_gradient():
    x = np.random.default_rng(0).standard_normal((4, 3))
    t = np.array([0, 2, 1, 2])
    a, b = SoftmaxWithLoss(), SoftmaxWithLoss()
    assert a.forward(x, t) == pytest.approx(b.forward(x, np.eye(3)[t]))
    np.testing.assert_allclose(a.backward(), b.backward())


def test_softmax_with_loss_gradient():
    x = np.random.default_rng(1).standard_normal((4, 3))
    t = np.array([0, 2, 1, 2])
    layer = SoftmaxWithLoss()
    layer.forward(x, t)
    numeric = dlx.gradcheck.numerical_gradient(
        lambda a: SoftmaxWithLoss().forward(a, t), x.copy(), h=1e-6
    )
    np.testing.assert_allclose(layer.backward(), numeric, rtol=1e-6, atol=1e-9)


def test_mean_squared_error_gradient():
    y, t = np.random.default_rng(2).standard_normal((4, 3)), np.zeros((4, 3))
    layer = MeanSquaredError()
    layer.forward(y, t)
    numeric = dlx.gradcheck.numerical_gradient(
        lambda a: MeanSquaredError().forward(a, t), y.copy(), h=1e-6
    )
    np.testing.assert_allclose(layer.backward(), numeric, rtol=1e-6)


@pytest.mark.parametrize(
    ("layer", "x", "error", "match"),
    [
        (
            lambda: Affine(4, 2),
            np.ones((3, 5), np.float32),
            ValueError,
            r"Affine expects 4 features per sample, got shape \(3, 5\)",
        ),
        (
            lambda: Affine(4, 2),
            np.ones((3, 4), np.float64),
            TypeError,
            r"float32 parameters but got float64 input",
        ),
        (lambda: Affine(4, 2), np.ones(4, np.float32), ValueError, r"Affine input must be"),
        (
            lambda: Conv2d(3, 2, 3),
            np.ones((1, 2, 5, 5), np.float32),
            ValueError,
            r"Conv2d expects 3 input channels, got shape \(1, 2, 5, 5\)",
        ),
        (
            lambda: Conv2d(3, 2, 3),
            np.ones((2, 5, 5), np.float32),
            ValueError,
            r"Conv2d input must be \(N, 3, H, W\), got shape \(2, 5, 5\)",
        ),
        (
            lambda: MaxPool2d(2),
            np.ones((2, 5, 5)),
            ValueError,
            r"MaxPool2d input must be \(N, C, H, W\)",
        ),
        (
            lambda: BatchNorm(3),
            np.ones((2, 4), np.float32),
            ValueError,
            r"BatchNorm expects 3 features, got shape \(2, 4\)",
        ),
        (lambda: ReLU(), [1.0, -1.0], TypeError, r"ReLU input must be a numpy.ndarray, got list"),
        (
            lambda: ReLU(),
            np.array([1, 2]),
            TypeError,
            r"ReLU input must be floating point, got dtype int64",
        ),
    ],
    ids=[
        "affine-features",
        "affine-dtype",
        "affine-1d",
        "conv-channels",
        "conv-3d",
        "pool-3d",
        "bn-features",
        "relu-list",
        "relu-int",
    ],
)
def test_wrong_input_gets_a_clear_error(layer, x, error, match):
    with pytest.raises(error, match=match):
        layer().forward(x)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: Conv2d(1, 1, 2, padding="same"),
            r"padding='same' needs an odd kernel and stride 1",
        ),
        (lambda: Conv2d(1, 1, 3, stride=2, padding="same"), r"padding='same' needs an odd kernel"),
        (
            lambda: Conv2d(1, 1, 3, padding="full"),
            r"padding must be an int, a pair, 'valid' or 'same'",
        ),
        (lambda: Conv2d(0, 1, 3), r"in_channels must be >= 1, got 0"),
        (lambda: Affine(0, 2), r"in_features must be a positive int, got 0"),
        (lambda: Dropout(1.0), r"p must be a probability in \[0, 1\), got 1.0"),
        (lambda: BatchNorm(3, momentum=1.5), r"momentum must lie in \[0, 1\)"),
        (lambda: MaxPool2d(2, padding=2), r"pad \(2, 2\) must be at most half of kernel_size"),
        (
            lambda: Affine(2, 2, weight_init="orthogonal"),
            r"weight_init must be 'he', 'lecun', 'glorot', 'xavier', 'uniform' or a positive, "
            r"finite std, got 'orthogonal'",
        ),
    ],
)
def test_bad_layer_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_padding_valid_and_same():
    x = np.ones((1, 1, 7, 7), np.float32)
    assert Conv2d(1, 1, 5, padding="same").forward(x).shape == (1, 1, 7, 7)
    assert Conv2d(1, 1, 5, padding="valid").forward(x).shape == (1, 1, 3, 3)


def test_layer_repr_shows_its_arguments():
    assert repr(Conv2d(1, 8, 3, padding="same")) == (
        "Conv2d(in_channels=1, out_channels=8, kernel_size=3, stride=1, padding='same', "
        "weight_init='he', bias=True, dtype='float32')"
    )
