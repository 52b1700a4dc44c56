"""dlx -> ONNX: every builder's export is valid ONNX that ONNX Runtime runs with dlx's
predictions, and dlx -> ONNX -> dlx gives the same model back."""

import subprocess
import sys

import dlx
import dlx.onnx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from dlx.layers import (
    Add,
    Affine,
    AvgPool2d,
    BatchNorm,
    Concat,
    Conv2d,
    Flatten,
    GlobalAvgPool2d,
    MaxPool2d,
    Mul,
    ReLU,
    Sigmoid,
    Tanh,
)


def randomized(net, seed=0):
    """The model with every weight and BatchNorm statistic drawn at random, so that an export
    that mixed up gamma and beta, or mean and variance, shows."""
    rng = np.random.default_rng(seed)
    for key, value in {**net.params, **net.buffers}.items():
        if key.endswith("running_var"):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
        else:
            value[...] = rng.normal(0, 0.3, value.shape)
    return net


def small_graph():
    """Fan-out, a shared layer called twice, Concat, Mul, Add, pooling and activations."""
    x = dlx.Input((3, 8, 8), name="image")
    conv = Conv2d(3, 4, 3, padding="same")
    a = ReLU()(conv(x, name="left"))
    b = Tanh()(BatchNorm(4)(Conv2d(3, 4, 1)(x), name="bn"))
    gate = Sigmoid()(Conv2d(3, 4, 3, padding=1)(x))
    h = Concat(axis=1)(Mul()(a, gate), Add()(a, b, b), name="joined")
    h = AvgPool2d(2, padding=1)(MaxPool2d(3, stride=1, padding=1)(h))
    shared = Affine(8 * 5 * 5, 8)
    y = Affine(8, 3)(ReLU()(shared(Flatten()(h))))
    return dlx.Model(x, y)


def with_shared_layer():
    x = dlx.Input((6,))
    shared = Affine(6, 6)
    h = shared(ReLU()(shared(x)))
    return dlx.Model(x, Affine(6, 2)(h))


BUILDERS = {
    "mlp": (lambda: dlx.models.mlp(20, [16, 8], 4), (20,)),
    "mlp-bn-dropout": (
        lambda: dlx.models.mlp(20, [16], 4, batchnorm=True, dropout=0.3, activation="tanh"),
        (20,),
    ),
    "simpleconvnet": (lambda: dlx.models.simple_conv_net((1, 12, 12), filters=6), (1, 12, 12)),
    "deepconvnet": (lambda: dlx.models.deep_conv_net((1, 28, 28)), (1, 28, 28)),
    "deepconvnet-bn": (lambda: dlx.models.deep_conv_net((1, 28, 28), batchnorm=True), (1, 28, 28)),
    "resnet8": (lambda: dlx.models.resnet(8, (1, 12, 12), width=4), (1, 12, 12)),
    "graph": (small_graph, (3, 8, 8)),
    "shared-layer": (with_shared_layer, (6,)),
    "avgpool-sigmoid": (
        lambda: dlx.Sequential(
            [Conv2d(2, 3, 3, stride=2, padding=1), Sigmoid(), AvgPool2d(2), GlobalAvgPool2d()]
        ),
        (2, 9, 9),
    ),
}


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def assert_matches(actual, expected, rtol=1e-5):
    scale = float(np.max(np.abs(expected)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.fixture(params=list(BUILDERS))
def built(request):
    dlx.seed(0)
    build, shape = BUILDERS[request.param]
    return randomized(build()), shape


def test_export_is_valid_onnx_that_onnxruntime_runs_with_dlx_predictions(built, tmp_path):
    net, shape = built
    path = dlx.onnx.export(net, tmp_path / "m.onnx", input_shape=shape)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    rng = np.random.default_rng(1)
    for batch in (1, 7):  # the batch dimension is dynamic
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        (y,) = run_onnx(path, x)
        assert_matches(y, net.predict(x))


def test_round_trip_gives_the_same_config_and_bit_identical_predictions(built, tmp_path):
    net, shape = built
    back = dlx.onnx.load(dlx.onnx.export(net, tmp_path / "m.onnx", input_shape=shape))
    assert type(back) is type(net)
    assert back.to_config() == net.to_config()
    assert back.params.keys() == net.params.keys()
    x = np.random.default_rng(2).standard_normal((5, *shape)).astype(np.float32)
    assert np.array_equal(back.predict(x), net.predict(x))


def test_a_round_trip_model_trains_and_saves(tmp_path):
    dlx.seed(0)
    net = dlx.models.resnet(8, (1, 8, 8), width=4, num_classes=3)
    back = dlx.onnx.load(dlx.onnx.export(net, tmp_path / "m.onnx"))
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((30, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 30)
    first = back.loss(x, t)
    dlx.Trainer(back, "adam", epochs=10, batch_size=10, progress=False).fit(x, t)
    assert back.loss(x, t) < first
    again = dlx.load(dlx.save(back, tmp_path / "m.npz"))
    assert np.array_equal(again.predict(x), back.predict(x))


@pytest.mark.parametrize("name", ["deepconvnet-bn", "resnet8", "mlp-bn-dropout"])
def test_folding_batchnorm_gives_the_same_outputs_without_batchnorm_nodes(name, tmp_path):
    dlx.seed(0)
    build, shape = BUILDERS[name]
    net = randomized(build())
    path = dlx.onnx.export(net, tmp_path / "m.onnx", input_shape=shape, fold_batchnorm=True)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") + ops.count("Gemm") == sum(
        isinstance(layer, (Conv2d, Affine)) for layer in net.layers
    )
    x = np.random.default_rng(3).standard_normal((4, *shape)).astype(np.float32)
    (y,) = run_onnx(path, x)
    assert_matches(y, net.predict(x))
    assert_matches(dlx.onnx.load(path).predict(x), net.predict(x))


def test_batchnorm_that_another_layer_also_reads_is_not_folded(tmp_path):
    x = dlx.Input((4,))
    h = Affine(4, 4)(x)
    y = Add()(BatchNorm(4)(h), h)
    net = randomized(dlx.Model(x, y, loss="MeanSquaredError"))
    path = dlx.onnx.export(net, tmp_path / "m.onnx", fold_batchnorm=True)
    assert "BatchNormalization" in [n.op_type for n in onnx.load(path).graph.node]
    xs = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert_matches(run_onnx(path, xs)[0], net.predict(xs))


def test_softmax_adds_the_probabilities_as_a_second_output(tmp_path):
    dlx.seed(0)
    net = randomized(dlx.models.mlp(6, [5], 3))
    path = dlx.onnx.export(net, tmp_path / "m.onnx", softmax=True)
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    scores, probabilities = run_onnx(path, x)
    assert_matches(scores, net.predict(x))
    assert_matches(probabilities, dlx.functional.softmax(net.predict(x)))
    back = dlx.onnx.load(path)  # the probabilities are the loss's part: dlx predicts scores
    assert np.array_equal(back.predict(x), net.predict(x))


def test_float64_models_export_as_double(tmp_path):
    dlx.seed(0)
    net = randomized(dlx.models.mlp(5, [4], 3, dtype=np.float64))
    path = dlx.onnx.export(net, tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((3, 5))
    (y,) = run_onnx(path, x)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, net.predict(x), rtol=1e-12)


def test_tensor_names_follow_dlx_names(tmp_path):
    dlx.seed(0)
    net = dlx.models.resnet(8, (1, 8, 8), width=4)
    graph = onnx.load(dlx.onnx.export(net, tmp_path / "m.onnx")).graph
    names = {t.name for t in graph.initializer}
    assert set(net.params) | set(net.buffers) <= names
    assert [i.name for i in graph.input] == ["image"] and [o.name for o in graph.output] == ["fc"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [1, 8, 8]


def test_a_layer_without_an_onnx_form_is_a_clear_error(tmp_path):
    class Swish(dlx.Layer):
        def forward(self, x, train=True):
            return x / (1 + np.exp(-x))

    class MyReLU(ReLU):  # a subclass does not inherit its parent's ONNX form
        def forward(self, x, train=True, inplace=False):
            return np.maximum(x, 0.5)

    for layer in (Swish(), MyReLU()):
        net = dlx.Sequential([Affine(3, 3), layer])
        with pytest.raises(
            dlx.onnx.OnnxError, match=f"{type(layer).__name__} has no ONNX form.*to_onnx"
        ):
            dlx.onnx.export(net, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_plugin_style_layer_exports_with_its_to_onnx(tmp_path):
    class Swish(dlx.Layer):
        def forward(self, x, train=True):
            return x / (1 + np.exp(-x))

        def to_onnx(self, graph, inputs):
            return graph.node("Mul", [inputs[0], graph.node("Sigmoid", inputs)])

    net = randomized(dlx.Sequential([Affine(3, 4), Swish(), Affine(4, 2)]))
    path = dlx.onnx.export(net, tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    assert_matches(run_onnx(path, x)[0], net.predict(x))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"opset": 12}, ValueError, r"opset must lie in \[13, "),
        ({"opset": "17"}, TypeError, "opset must be an int"),
        ({"fold_batchnorm": 1}, TypeError, "fold_batchnorm must be True or False"),
        ({"input_shape": (1, 0, 28)}, ValueError, "input_shape must be a tuple of positive sizes"),
        ({"input_shape": (1, 20, 20)}, ValueError, r"layer 3 \(Affine\) cannot take"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, error, match, tmp_path):
    dlx.seed(0)
    net = dlx.models.simple_conv_net((1, 28, 28))
    kwargs = {"input_shape": (1, 28, 28), **kwargs}
    with pytest.raises(error, match=match):
        dlx.onnx.export(net, tmp_path / "m.onnx", **kwargs)


def test_a_sequential_of_convolutions_needs_its_input_shape(tmp_path):
    dlx.seed(0)
    with pytest.raises(ValueError, match="input_shape is needed .* first layer is Conv2d"):
        dlx.onnx.export(dlx.models.simple_conv_net(), tmp_path / "m.onnx")
    x = dlx.Input((1, 28, 28))
    model = dlx.Model(x, Affine(784, 2)(Flatten()(x)))
    with pytest.raises(ValueError, match="differs from the model's own input shapes"):
        dlx.onnx.export(model, tmp_path / "m.onnx", input_shape=(1, 14, 14))


def test_softmax_needs_a_classifier(tmp_path):
    net = dlx.Sequential([Affine(3, 2)], loss="MeanSquaredError")
    with pytest.raises(ValueError, match="softmax=True adds the probabilities of a classifier"):
        dlx.onnx.export(net, tmp_path / "m.onnx", softmax=True)


def test_without_the_onnx_package_the_error_names_the_extra():
    code = (
        "import sys; sys.modules['onnx'] = None\n"
        "import dlx, dlx.onnx\n"
        "try:\n"
        "    dlx.onnx.export(dlx.models.mlp(4, [3], 2), 'm.onnx')\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        'MissingExtraError dlx.onnx needs the onnx package: pip install "dlx-scratch[onnx]"'
    )


def test_a_node_named_like_a_weight_is_a_clear_error(tmp_path):
    x = dlx.Input((3,))
    h = Affine(3, 3)(x, name="a")
    y = ReLU()(h, name="a.W")
    with pytest.raises(
        dlx.onnx.OnnxError, match="the node name 'a.W' is also the name of a weight"
    ):
        dlx.onnx.export(dlx.Model(x, y), tmp_path / "m.onnx")
