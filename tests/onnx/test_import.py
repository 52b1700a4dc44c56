"""ONNX -> dlx: files in the form PyTorch's exporter writes load, predict what ONNX Runtime
computes on them, and train; anything outside what dlx computes is refused by name."""

import json

import dlx
import dlx.onnx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def weight(*shape, dtype=np.float32):
    return (RNG.standard_normal(shape) * 0.3).astype(dtype)


def make(
    nodes,
    weights,
    inputs=(("x", [None, 1, 8, 8]),),
    outputs=(("y", None),),
    opset=17,
    dtype=TensorProto.FLOAT,
):
    graph = helper.make_graph(
        nodes,
        "torch_jit",
        [helper.make_tensor_value_info(n, dtype, ["batch", *s[1:]]) for n, s in inputs],
        [helper.make_tensor_value_info(n, dtype, s) for n, s in outputs],
        initializer=[numpy_helper.from_array(a, name) for name, a in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def save(model, tmp_path, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, path)
    return path


def residual_cnn():
    """Conv-BN-ReLU, a residual Add, MaxPool, GlobalAveragePool, Flatten and Gemm with
    transB=1, as torch.onnx.export writes a small ResNet-like network in eval mode."""
    nodes = [
        helper.make_node(
            "Conv",
            ["x", "conv1.weight", "conv1.bias"],
            ["c1"],
            name="/conv1/Conv",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[1, 1],
            dilations=[1, 1],
            group=1,
        ),
        helper.make_node(
            "BatchNormalization",
            ["c1", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
            ["b1"],
            name="/bn/BatchNormalization",
            epsilon=1e-5,
            momentum=0.9,
        ),
        helper.make_node("Relu", ["b1"], ["r1"], name="/relu/Relu"),
        helper.make_node(
            "Conv",
            ["r1", "conv2.weight"],
            ["c2"],
            name="/conv2/Conv",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Add", ["c2", "r1"], ["a"], name="/Add"),
        helper.make_node("Relu", ["a"], ["r2"], name="/relu_1/Relu"),
        helper.make_node(
            "MaxPool",
            ["r2"],
            ["p"],
            name="/pool/MaxPool",
            kernel_shape=[2, 2],
            strides=[2, 2],
            pads=[0, 0, 0, 0],
        ),
        helper.make_node(
            "Conv",
            ["p", "conv3.weight", "conv3.bias"],
            ["c3"],
            name="/conv3/Conv",
            kernel_shape=[1, 1],
            strides=[2, 2],
        ),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"], name="/gap/GlobalAveragePool"),
        helper.make_node("Flatten", ["g"], ["f"], name="/Flatten", axis=1),
        helper.make_node(
            "Gemm",
            ["f", "fc.weight", "fc.bias"],
            ["y"],
            name="/fc/Gemm",
            alpha=1.0,
            beta=1.0,
            transB=1,
        ),
    ]
    weights = {
        "conv1.weight": weight(4, 1, 3, 3),
        "conv1.bias": weight(4),
        "bn.weight": weight(4) + 1,
        "bn.bias": weight(4),
        "bn.running_mean": weight(4),
        "bn.running_var": np.abs(weight(4)) + 0.5,
        "conv2.weight": weight(4, 4, 3, 3),
        "conv3.weight": weight(6, 4, 1, 1),
        "conv3.bias": weight(6),
        "fc.weight": weight(3, 6),
        "fc.bias": weight(3),
    }
    return make(nodes, weights, outputs=(("y", ["batch", 3]),))


def lenet_chain():
    """A chain: Conv, Relu, AveragePool with padding, Reshape to (N, -1) from a Constant,
    Gemm, Sigmoid, Dropout, Gemm, Tanh, and a final Softmax."""
    nodes = [
        helper.make_node(
            "Conv",
            ["x", "c.w", "c.b"],
            ["c"],
            name="/c/Conv",
            kernel_shape=[3, 3],
            auto_pad="SAME_UPPER",
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node(
            "AveragePool",
            ["r"],
            ["p"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            count_include_pad=1,
        ),
        helper.make_node(
            "Constant", [], ["shape"], value=numpy_helper.from_array(np.array([0, -1], np.int64))
        ),
        helper.make_node("Reshape", ["p", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc1.w", "fc1.b"], ["h"], transB=1),
        helper.make_node("Sigmoid", ["h"], ["s"]),
        helper.make_node("Dropout", ["s", "ratio"], ["d"]),
        helper.make_node("Gemm", ["d", "fc2.w"], ["z"]),
        helper.make_node("Tanh", ["z"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["y"], axis=1),
    ]
    weights = {
        "c.w": weight(3, 1, 3, 3),
        "c.b": weight(3),
        "fc1.w": weight(5, 3 * 4 * 4),
        "fc1.b": weight(5),
        "ratio": np.array(0.25, np.float32),
        "fc2.w": weight(5, 4),
    }
    return make(nodes, weights, outputs=(("y", ["batch", 4]),))


def concat_mul_graph():
    nodes = [
        helper.make_node("Conv", ["x", "a.w"], ["a"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["x", "b.w"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["b"], ["gate"]),
        helper.make_node("Mul", ["a", "gate"], ["m"]),
        helper.make_node("Sum", ["a", "m", "a"], ["s"]),
        helper.make_node("Concat", ["s", "x"], ["y"], axis=-3),
        helper.make_node("Identity", ["y"], ["out"]),
    ]
    return make(
        nodes,
        {"a.w": weight(2, 1, 1, 1), "b.w": weight(2, 1, 3, 3)},
        outputs=(("out", ["batch", 3, 8, 8]),),
    )


def onnxruntime_outputs(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    ("build", "kind"),
    [(residual_cnn, dlx.Model), (lenet_chain, dlx.Sequential), (concat_mul_graph, dlx.Model)],
)
def test_imported_models_match_onnxruntime(build, kind, tmp_path):
    model = build()
    onnx.checker.check_model(model, full_check=True)
    net = dlx.onnx.load(save(model, tmp_path))
    assert type(net) is kind
    for batch in (1, 6):
        x = RNG.standard_normal((batch, 1, 8, 8)).astype(np.float32)
        expected = onnxruntime_outputs(model, x)
        scores = net.predict(x)
        if build is lenet_chain:  # the final Softmax is the loss's: dlx predicts the scores
            scores = dlx.functional.softmax(scores)
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_an_imported_model_trains_and_saves(tmp_path):
    net = dlx.onnx.load(save(residual_cnn(), tmp_path))
    x, t = RNG.standard_normal((40, 1, 8, 8)).astype(np.float32), RNG.integers(0, 3, 40)
    first = net.loss(x, t)
    dlx.Trainer(net, "adam", epochs=10, batch_size=20, progress=False).fit(x, t)
    assert net.loss(x, t) < first
    again = dlx.load(dlx.save(net, tmp_path / "m.npz"))
    assert np.array_equal(again.predict(x), net.predict(x))


def test_weights_arrive_in_dlx_layout(tmp_path):
    model = residual_cnn()
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    net = dlx.onnx.load(save(model, tmp_path))
    fc = next(layer for layer in net.layers if isinstance(layer, dlx.layers.Affine))
    assert np.array_equal(fc.params["W"], weights["fc.weight"].T)  # Gemm transB=1: (out, in)
    bn = next(layer for layer in net.layers if isinstance(layer, dlx.layers.BatchNorm))
    assert np.array_equal(bn.buffers["running_var"], weights["bn.running_var"])
    assert np.array_equal(bn.params["gamma"], weights["bn.weight"])


# -- refusals: each names the node and what dlx cannot do ---------------------------------
def one_node_model(node, weights=None, **kw):
    return make([node], weights or {}, **kw)


def conv(**attrs):
    return helper.make_node("Conv", ["x", "w"], ["y"], name="the_conv", **attrs)


REFUSED = {
    "unknown op": (
        one_node_model(helper.make_node("Elu", ["x"], ["y"], name="act")),
        "node 'act' is a Elu, which dlx does not import",
    ),
    "dilation": (
        one_node_model(conv(kernel_shape=[3, 3], dilations=[2, 2]), {"w": weight(2, 1, 3, 3)}),
        r"node 'the_conv' \(Conv\): dilations \[2, 2\]",
    ),
    "groups": (
        one_node_model(conv(kernel_shape=[1, 1], group=2), {"w": weight(2, 1, 1, 1)}),
        r"node 'the_conv' \(Conv\): group 2",
    ),
    "asymmetric pads": (
        one_node_model(conv(kernel_shape=[3, 3], pads=[0, 0, 1, 1]), {"w": weight(2, 1, 3, 3)}),
        "asymmetric pads",
    ),
    "float16 weight": (
        one_node_model(conv(kernel_shape=[1, 1]), {"w": weight(2, 1, 1, 1, dtype=np.float16)}),
        "is of type FLOAT16",
    ),
    "int input": (
        one_node_model(helper.make_node("Relu", ["x"], ["y"]), dtype=TensorProto.INT32),
        "input 'x' is not float32 or float64",
    ),
    "unknown attribute": (
        one_node_model(helper.make_node("Relu", ["x"], ["y"], name="r", extra=1)),
        r"node 'r' \(Relu\) has the attribute 'extra'",
    ),
    "count_include_pad 0": (
        one_node_model(
            helper.make_node(
                "AveragePool", ["x"], ["y"], name="p", kernel_shape=[2, 2], pads=[1, 1, 1, 1]
            )
        ),
        "count_include_pad 0 with padding",
    ),
    "ceil_mode": (
        one_node_model(
            helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], ceil_mode=1)
        ),
        "ceil_mode 1",
    ),
    "add of a constant": (
        one_node_model(
            helper.make_node("Add", ["x", "c"], ["y"], name="bias_add"), {"c": weight(1, 8, 8)}
        ),
        r"node 'bias_add' \(Add\): its input 'c' is a weight",
    ),
    "softmax inside": (
        make(
            [
                helper.make_node("Softmax", ["x"], ["s"], name="sm"),
                helper.make_node("Relu", ["s"], ["y"]),
            ],
            {},
        ),
        r"node 'sm' \(Softmax\): dlx reads a Softmax only as the last step",
    ),
    "other domain": (make([helper.make_node("Relu", ["x"], ["y"])], {}, opset=17), None),
    "old opset": (
        one_node_model(helper.make_node("Relu", ["x"], ["y"]), opset=11),
        "the model's opset is 11",
    ),
    "huge input": (
        one_node_model(
            helper.make_node("Relu", ["x"], ["y"]), inputs=(("x", [None, 100000, 100000, 100000]),)
        ),
        "holds more than",
    ),
    "dynamic sample size": (
        one_node_model(helper.make_node("Relu", ["x"], ["y"]), inputs=(("x", [None, 1, "H", 8]),)),
        "needs fixed sizes after the batch axis",
    ),
    "reshape to 3-D": (
        make(
            [helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")],
            {"s": np.array([0, 8, -1], np.int64)},
        ),
        r"node 'rs' \(Reshape\): shape \[0, 8, -1\]",
    ),
    "pool pad past half the kernel": (
        one_node_model(
            helper.make_node(
                "MaxPool", ["x"], ["y"], name="big_pad", kernel_shape=[2, 2], pads=[2, 2, 2, 2]
            )
        ),
        r"node 'big_pad' \(MaxPool\): pad \(2, 2\) must be at most half",
    ),
    "conv without weight": (
        one_node_model(helper.make_node("Conv", ["x"], ["y"], name="c", kernel_shape=[1, 1])),
        r"node 'c' \(Conv\): it lacks its input 1",
    ),
    "node without input": (
        one_node_model(helper.make_node("Relu", [], ["y"], name="r")),
        r"node 'r' \(Relu\): it has no input",
    ),
    "dropout ratio not a number": (
        one_node_model(
            helper.make_node("Dropout", ["x", "ratio"], ["y"], name="d"),
            {"ratio": np.array([0.1, 0.2], np.float32)},
        ),
        r"node 'd' \(Dropout\): its input 'ratio' must be one number",
    ),
}
REFUSED["other domain"][0].opset_import.append(helper.make_opsetid("com.microsoft", 1))
REFUSED["other domain"] = (REFUSED["other domain"][0], "operators of the domain 'com.microsoft'")


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused(case, tmp_path):
    model, match = REFUSED[case]
    with pytest.raises(dlx.onnx.OnnxError, match=match):
        dlx.onnx.load(save(model, tmp_path))


def test_a_truncated_file_is_refused(tmp_path):
    data = residual_cnn().SerializeToString()
    for cut in (len(data) // 3, len(data) - 7, 5):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(dlx.onnx.OnnxError):
            dlx.onnx.load(path)


def test_a_tensor_declaring_more_values_than_it_holds_is_refused(tmp_path):
    model = one_node_model(conv(kernel_shape=[1, 1]), {"w": weight(2, 1, 1, 1)})
    model.graph.initializer[0].dims[:] = [2000000, 1000, 1, 1]
    with pytest.raises(dlx.onnx.OnnxError, match="needs 8000000000 bytes, the file holds 8"):
        dlx.onnx.load(save(model, tmp_path))
    model.graph.initializer[0].dims[:] = [2**40, 2**40, 1, 1]
    with pytest.raises(dlx.onnx.OnnxError, match="declares the shape"):
        dlx.onnx.load(save(model, tmp_path))


def external(model, location, tmp_path):
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    tensor.external_data.add(key="location", value=location)
    return save(model, tmp_path)


def test_external_data_is_read_from_the_models_folder_only(tmp_path):
    w = weight(2, 1, 1, 1)
    (tmp_path / "weights.bin").write_bytes(w.tobytes())
    model = one_node_model(conv(kernel_shape=[1, 1]), {"w": w})
    net = dlx.onnx.load(external(model, "weights.bin", tmp_path))
    assert np.array_equal(net.layers[0].params["W"], w)

    outside = tmp_path.parent / "secret.bin"
    outside.write_bytes(w.tobytes())
    for location in ("../secret.bin", str(outside)):
        model = one_node_model(conv(kernel_shape=[1, 1]), {"w": w})
        with pytest.raises(dlx.onnx.OnnxError, match="outside the model's folder"):
            dlx.onnx.load(external(model, location, tmp_path))
    (tmp_path / "short.bin").write_bytes(b"\0" * 4)
    model = one_node_model(conv(kernel_shape=[1, 1]), {"w": w})
    with pytest.raises(dlx.onnx.OnnxError, match="which does not hold them"):
        dlx.onnx.load(external(model, "short.bin", tmp_path))


def exported_with_metadata(tmp_path):
    dlx.seed(0)
    net = dlx.models.mlp(4, [3], 2)
    return onnx.load(dlx.onnx.export(net, tmp_path / "dlx.onnx"))


def test_nodes_that_differ_from_their_layer_config_are_refused(tmp_path):
    model = exported_with_metadata(tmp_path)
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    gemm.attribute.append(helper.make_attribute("transB", 1))
    with pytest.raises(dlx.onnx.OnnxError, match="differ from the nodes it exports"):
        dlx.onnx.load(save(model, tmp_path))


def test_a_layer_config_declaring_other_shapes_than_the_weights_is_refused(tmp_path):
    model = exported_with_metadata(tmp_path)
    first = model.graph.node[0]
    for prop in first.metadata_props:
        if prop.key == "dlx.config":
            config = json.loads(prop.value)
            config["out_features"] = 10**6  # would allocate a 4 x 1e6 layer
            prop.value = json.dumps(config)
    with pytest.raises(dlx.onnx.OnnxError, match=r"declare W of shape \(4, 1000000\)"):
        dlx.onnx.load(save(model, tmp_path))


def test_a_deeply_nested_config_is_refused(tmp_path):
    model = exported_with_metadata(tmp_path)
    for prop in model.graph.node[0].metadata_props:
        if prop.key == "dlx.config":
            prop.value = "[" * 200_000 + "]" * 200_000
    with pytest.raises(dlx.onnx.OnnxError, match="carry a config that is not JSON"):
        dlx.onnx.load(save(model, tmp_path))


def test_an_unregistered_layer_type_says_to_install_its_package(tmp_path):
    model = exported_with_metadata(tmp_path)
    for prop in model.graph.node[0].metadata_props:
        if prop.key == "dlx.config":
            prop.value = json.dumps({"type": "Mystery"})
    with pytest.raises(dlx.onnx.OnnxError, match="'Mystery' layer, which is not registered here"):
        dlx.onnx.load(save(model, tmp_path))


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX file at"):
        dlx.onnx.load(tmp_path / "nope.onnx")


def test_a_config_cannot_make_dlx_allocate_weights_the_file_does_not_hold(tmp_path):
    model = exported_with_metadata(tmp_path)
    for prop in model.graph.node[0].metadata_props:
        if prop.key == "dlx.config":
            config = json.loads(prop.value)
            config["out_features"] = 40000
            config["in_features"] = 40000
            prop.value = json.dumps(config)
    for tensor in model.graph.initializer:  # dims that fit the config, with no bytes behind
        if tensor.name == "0.W":
            tensor.dims[:] = [40000, 40000]
        if tensor.name == "0.b":
            tensor.dims[:] = [40000]
    with pytest.raises(dlx.onnx.OnnxError, match="needs 6400000000 bytes, the file holds"):
        dlx.onnx.load(save(model, tmp_path))


@pytest.mark.parametrize(
    ("node", "weights", "match"),
    [
        (conv(kernel_shape=3), {"w": weight(2, 1, 3, 3)}, "kernel_shape must be a list of ints"),
        (
            helper.make_node("Sum", ["w"], ["y"], name="s"),
            {"w": weight(1, 8, 8)},
            r"node 's' \(Sum\): its input 'w' is not a computed tensor",
        ),
        (
            helper.make_node("Concat", ["x", "x"], ["y"], name="c", axis="a"),
            {},
            r"node 'c' \(Concat\): axis b?'a'",
        ),
        (
            helper.make_node("Gemm", ["x", "w"], ["y"], name="g"),
            {"w": np.zeros((0, 4), np.float32)},
            r"node 'g' \(Gemm\): its weight 'w' has shape \(0, 4\)",
        ),
    ],
)
def test_fields_of_the_wrong_kind_are_refused(node, weights, match, tmp_path):
    with pytest.raises(dlx.onnx.OnnxError, match=match):
        dlx.onnx.load(save(one_node_model(node, weights), tmp_path))


def test_a_final_softmax_is_dropped_only_for_a_softmax_classifier(tmp_path):
    model = make(
        [
            helper.make_node("Flatten", ["x"], ["f"]),
            helper.make_node("Softmax", ["f"], ["y"], name="sm"),
        ],
        {},
    )
    assert isinstance(dlx.onnx.load(save(model, tmp_path)), dlx.Sequential)
    model.metadata_props.add(key="dlx.loss", value="MeanSquaredError")
    with pytest.raises(dlx.onnx.OnnxError, match=r"node 'sm' \(Softmax\)"):
        dlx.onnx.load(save(model, tmp_path))


def test_an_external_location_that_is_not_a_path_is_refused(tmp_path):
    model = one_node_model(conv(kernel_shape=[1, 1]), {"w": weight(2, 1, 1, 1)})
    with pytest.raises(dlx.onnx.OnnxError, match="not a path"):
        dlx.onnx.load(external(model, "w\0.bin", tmp_path))
