"""Graph networks (dlx.Input, dlx.Model, merge layers): backprop over branches, shared
layers, configs, errors at construction, and a Sequential as a special case."""

import json

import dlx
import dlx.layers as L
import dlx.ops as ops
import numpy as np
import pytest
from dlx.gradcheck import gradient_check
from dlx.testing import check_layer


def as_model(seq: dlx.Sequential) -> dlx.Model:
    x = dlx.Input((1, 28, 28))
    h = x
    for layer in seq.layers:
        h = layer(h)
    return dlx.Model(x, h, weight_decay=seq.weight_decay)


@pytest.mark.parametrize(
    "build",
    [
        lambda: dlx.models.simple_conv_net(dtype=np.float64, weight_decay=0.01),
        lambda: dlx.models.deep_conv_net(batchnorm=True, dtype=np.float64),
    ],
    ids=["simple", "deep-bn-dropout"],
)
def test_a_sequential_as_a_model_gives_bit_identical_losses_and_gradients(rng, build):
    dlx.seed(0)
    seq = build()
    model = as_model(seq)
    x = rng.standard_normal((4, 1, 28, 28))
    t = rng.integers(0, 10, 4)
    for _ in range(2):  # BatchNorm's running statistics and Dropout's masks move on alike
        dlx.seed(1)
        loss_seq, grads = seq.loss_and_gradient(x, t)
        grads_seq = [g.copy() for g in grads.values()]
        dlx.seed(1)
        loss_model, grads_model = model.loss_and_gradient(x, t)
        assert loss_seq == loss_model
        assert len(grads_seq) == len(grads_model)
        for a, b in zip(grads_seq, grads_model.values()):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(seq.predict(x), model.predict(x))


def branching_model():
    """Fan-out, a layer called twice, Add of three, Concat, and a Mul gate."""
    x = dlx.Input((3, 6, 6))
    a = L.Conv2d(3, 3, 3, padding=1, dtype=np.float64)(x, name="conv_a")
    b = L.ReLU()(a)
    shared = L.Conv2d(3, 3, 3, padding=1, dtype=np.float64)
    added = L.Add()(shared(b, name="shared"), shared(a), b)
    joined = L.Concat()(added, a)
    gate = L.Sigmoid()(L.Conv2d(6, 6, 1, dtype=np.float64)(joined))
    out = L.Affine(216, 4, dtype=np.float64)(L.Flatten()(L.Mul()(joined, gate)))
    return dlx.Model(x, out)


def test_whole_graph_gradient_check(rng):
    model = branching_model()
    assert list(model.params)[:4] == ["conv_a.W", "conv_a.b", "shared.W", "shared.b"]
    errors = gradient_check(model, rng.standard_normal((2, 3, 6, 6)), rng.integers(0, 4, 2))
    assert set(errors) == set(model.params)
    assert max(errors.values()) < 1e-6


def test_a_shared_layers_gradient_sums_both_calls(rng):
    x = dlx.Input((4,))
    shared = L.Affine(4, 4, dtype=np.float64)
    y = L.Affine(4, 2, dtype=np.float64)(shared(shared(x)))
    model = dlx.Model(x, y)
    assert list(model.params) == ["affine_1.W", "affine_1.b", "affine_3.W", "affine_3.b"]
    errors = gradient_check(model, rng.standard_normal((3, 4)), rng.integers(0, 2, 3))
    assert max(errors.values()) < 1e-6


@pytest.mark.parametrize(
    ("layer", "shapes"),
    [
        (L.Add, [(2, 3, 4), (2, 3, 4)]),
        (L.Add, [(2, 5), (2, 5), (2, 5)]),
        (L.Mul, [(2, 3, 4), (2, 3, 4)]),
        (lambda: L.Concat(1), [(2, 3, 4, 4), (2, 5, 4, 4)]),
        (lambda: L.Concat(3), [(2, 3, 4, 1), (2, 3, 4, 2)]),
    ],
)
def test_merge_layers_pass_the_conformance_kit(layer, shapes):
    errors = check_layer(lambda dtype: layer(), shapes)
    assert set(errors) == {f"x{i}" for i in range(len(shapes))}


def test_global_avg_pool_passes_the_conformance_kit():
    check_layer(lambda d: L.GlobalAvgPool2d(), (2, 3, 4, 5), bad_input_shapes=[(2, 3, 4)])


def test_a_residual_block_against_the_same_block_in_ops_calls(rng):
    x = dlx.Input((4, 5, 5))
    conv1, bn, conv2 = (
        L.Conv2d(4, 4, 3, padding=1, dtype=np.float64),
        L.BatchNorm(4, dtype=np.float64),
        L.Conv2d(4, 4, 3, padding=1, dtype=np.float64),
    )
    h = conv2(L.ReLU()(bn(conv1(x))))
    model = dlx.Model(x, L.ReLU()(L.Add()(h, x)), loss="MeanSquaredError")
    xb = rng.standard_normal((2, 4, 5, 5))
    t = rng.standard_normal((2, 4, 5, 5))
    with ops.use_backend("numpy"):
        loss, grads = model.loss_and_gradient(xb, t)
        w1, b1, w2, b2 = conv1.params["W"], conv1.params["b"], conv2.params["W"], conv2.params["b"]
        gamma, beta = bn.params["gamma"], bn.params["beta"]
        # forward, by hand
        c1 = ops.conv2d(xb, w1, b1, 1, 1)
        mean, var = ops.batch_norm_stats(c1)
        inv_std = (1 / np.sqrt(var + 1e-5)).astype(np.float64)
        n1 = ops.batch_norm_apply(c1, mean, inv_std, gamma, beta)
        r1 = ops.relu(n1)
        c2 = ops.conv2d(r1, w2, b2, 1, 1)
        y = ops.relu(c2 + xb)
        want_loss = 0.5 * np.sum((y - t) ** 2) / 2
        # backward, by hand: the sum's gradient goes to both of its inputs
        dy = ops.relu_backward((y - t) / 2, y)
        dr1, dw2, db2 = ops.conv2d_backward(dy, r1, w2, 1, 1)
        dn1 = ops.relu_backward(dr1, r1)
        dc1, dgamma, dbeta = ops.batch_norm_backward(dn1, c1, mean, inv_std, gamma)
        _, dw1, db1 = ops.conv2d_backward(dc1, xb, w1, 1, 1)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    want = [dw1, db1, dgamma, dbeta, dw2, db2]
    for (key, got), expected in zip(grads.items(), want):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=key)


class ReLUWrittenOut(L.ReLU):
    """ReLU with a forward of its own: the same numbers, but no claim to fusion."""

    def forward(self, x, train=True, inplace=False):
        return super().forward(x, train, inplace)


def residual_block(relu, rng):
    x = dlx.Input((4, 5, 5))
    conv1 = L.Conv2d(4, 4, 3, padding=1, dtype=np.float64)
    conv2 = L.Conv2d(4, 4, 3, padding=1, dtype=np.float64)
    bn1, bn2 = L.BatchNorm(4, dtype=np.float64), L.BatchNorm(4, dtype=np.float64)
    h = bn2(conv2(relu()(bn1(conv1(x)))))
    wide = L.Conv2d(4, 2, 1, dtype=np.float64)(relu()(L.Add()(h, x)))
    shared = L.BatchNorm(2, dtype=np.float64)(wide)  # read by a ReLU and by the Add below
    out = L.Add()(relu()(shared), shared)
    model = dlx.Model(x, L.Affine(50, 3, dtype=np.float64)(L.Flatten()(out)))
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape)
    return model


def test_a_fused_add_of_inputs_in_another_memory_layout(rng):
    """Inputs in Fortran order, whose NumPy sum keeps that layout, give the fused sum of
    C-ordered copies of them."""
    a, b = dlx.Input((2, 3, 3)), dlx.Input((2, 3, 3))
    y = L.ReLU()(L.Add()(a, b))
    model = dlx.Model([a, b], L.Affine(18, 2, dtype=np.float64)(L.Flatten()(y)))
    xa, xb = (np.asfortranarray(rng.standard_normal((4, 2, 3, 3))) for _ in range(2))
    assert not (xa + xb).flags.c_contiguous
    out = model.predict([xa, xb], train=True)
    np.testing.assert_array_equal(out, model.predict([xa.copy(), xb.copy()], train=True))


def test_gradients_that_disagree_at_a_branching_node_are_an_error(rng):
    """Where a node feeds two layers their gradients are summed; one that comes back in
    another dtype is named, not cast."""

    class Float64Backward(L.Layer):
        def forward(self, x, train=True):
            return x

        def backward(self, dout):
            return dout.astype(np.float64)

    x = dlx.Input((3,))
    h = L.Affine(3, 3)(x)
    model = dlx.Model(x, L.Add()(Float64Backward()(h), L.Affine(3, 3)(h)), loss="MeanSquaredError")
    xb = rng.standard_normal((2, 3)).astype(np.float32)
    with pytest.raises(dlx.errors.DlxValueError, match=r"gradients that reach Node\(Affine"):
        model.gradient(xb, np.zeros((2, 3), np.float32))


def test_a_subclass_with_its_own_passes_drops_the_fusion_claim():
    class LoggedBatchNorm(L.BatchNorm):
        def backward(self, dout):
            return super().backward(dout)

    class Scaled(L.Add):
        def forward(self, *xs, train=True):
            return 2 * super().forward(*xs, train=train)

    assert L.BatchNorm.applies_relu and L.Add.applies_relu
    assert not LoggedBatchNorm.applies_relu and not Scaled.applies_relu
    x = dlx.Input((2, 3, 3))
    h = L.ReLU()(LoggedBatchNorm(2, dtype=np.float64)(x))
    model = dlx.Model(x, L.Affine(18, 2, dtype=np.float64)(L.Flatten()(h)))
    grads = model.gradient(np.random.default_rng(0).standard_normal((4, 2, 3, 3)), [0, 1, 0, 1])
    assert set(grads) == set(model.params)


@pytest.mark.parametrize("synced", [False, True], ids=["local", "synced-stats"])
def test_relu_fused_into_batchnorm_and_add_gives_the_same_training_step(rng, monkeypatch, synced):
    """In training a ReLU that alone reads a BatchNorm's or an Add's output is applied in
    that layer's forward and backward passes: the loss and every gradient are bit for bit
    those of the same model with ReLUs that do not fuse, and only those two ReLUs fuse (not
    the one after a BatchNorm whose output an Add reads too). Also with BatchNorm's
    statistics summed over processes (a world of one)."""
    fused = residual_block(L.ReLU, np.random.default_rng(3))
    plain = residual_block(ReLUWrittenOut, np.random.default_rng(3))
    if synced:
        for layer in fused.layers + plain.layers:
            if isinstance(layer, L.BatchNorm):
                layer.sync = lambda a: a
    applied = []
    original = L.ReLU.forward_applied
    monkeypatch.setattr(
        L.ReLU, "forward_applied", lambda self, y: applied.append(y.shape) or original(self, y)
    )
    x = rng.standard_normal((3, 4, 5, 5))
    t = rng.integers(0, 3, 3)
    for _ in range(2):  # the running statistics move on alike
        loss_fused, grads_fused = fused.loss_and_gradient(x, t)
        loss_plain, grads_plain = plain.loss_and_gradient(x, t)
        assert loss_fused == loss_plain
        for key in grads_plain:
            np.testing.assert_array_equal(grads_fused[key], grads_plain[key], err_msg=key)
    assert applied == [(3, 4, 5, 5)] * 4  # two fused ReLUs, two steps
    np.testing.assert_array_equal(fused.predict(x), plain.predict(x))
    assert not applied[4:]  # inference runs each ReLU itself


def test_resnet_config_round_trip_save_and_load(tmp_path, rng):
    dlx.seed(0)
    net = dlx.models.resnet(8, width=4)
    x = rng.random((2, 1, 28, 28), dtype=np.float32)
    dlx.optim.Adam().update(net.params, net.gradient(x, np.array([1, 2])))  # move BN stats
    assert "stage2.block1.shortcut.conv.W" in net.params
    rebuilt = dlx.Model.from_config(json.loads(json.dumps(net.to_config())))
    assert list(rebuilt.params) == list(net.params)
    loaded = dlx.load(dlx.save(net, tmp_path / "resnet.npz"))
    assert isinstance(loaded, dlx.Model)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


def test_resnet_depths_and_a_trainer_run(rng):
    with pytest.raises(ValueError, match="depth must be 6n \\+ 2"):
        dlx.models.resnet(21)
    assert sum(p.size for p in dlx.models.resnet(20).params.values()) == 272_186
    dlx.seed(0)
    net = dlx.models.resnet(8, width=4)
    x = rng.random((60, 1, 28, 28), dtype=np.float32)
    t = (x[:, 0, :14].mean(axis=(1, 2)) > x[:, 0, 14:].mean(axis=(1, 2))).astype(np.int64)
    history = dlx.Trainer(net, dlx.optim.Adam(0.01), epochs=3, batch_size=20, progress=False).fit(
        x, t
    )
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_merge_shapes_are_checked_when_the_graph_is_wired():
    x = dlx.Input((3, 8, 8), name="image")
    wide = L.Conv2d(3, 4, 3, padding=1)(x, name="wide")
    with pytest.raises(
        ValueError, match=r"Add cannot take 'image' \(3, 8, 8\), 'wide' \(4, 8, 8\)"
    ):
        L.Add()(x, wide)
    with pytest.raises(
        ValueError, match=r"Concat\(axis=1\) needs inputs equal in every other axis"
    ):
        L.Concat()(x, L.MaxPool2d(2)(x))
    with pytest.raises(ValueError, match="Affine at node 'fc' cannot take 'image'"):
        L.Affine(10, 2)(x, name="fc")
    with pytest.raises(ValueError, match="ReLU takes one input, got 2 nodes"):
        L.ReLU()(x, wide)


def test_graph_errors_at_construction():
    x, unused = dlx.Input((4,), name="x"), dlx.Input((4,), name="unused")
    y = L.Affine(4, 2)(x)
    with pytest.raises(ValueError, match="the input 'unused' is not used by any output"):
        dlx.Model([x, unused], y)
    with pytest.raises(
        ValueError, match=r"depend on 'x' \(4,\), which is not among the model's inputs"
    ):
        dlx.Model(unused, y)
    with pytest.raises(ValueError, match="two nodes are named 'same'"):
        dlx.Model(x, L.Add()(L.ReLU()(x, name="same"), L.Tanh()(x, name="same")))
    with pytest.raises(TypeError, match="inputs must be dlx.Input nodes or layer outputs"):
        dlx.Model(np.zeros(4), y)
    with pytest.raises(TypeError, match="name= names a node of a graph"):
        L.ReLU()(np.zeros((1, 4)), name="r")


def test_a_config_cannot_make_a_cycle_or_dangle():
    config = branching_model().to_config()
    nodes = config["nodes"]
    cyclic = {**config, "nodes": [nodes[0], {**nodes[1], "inputs": [nodes[2]["name"]]}, *nodes[2:]]}
    with pytest.raises(
        ValueError, match=r"nodes\[1\] \('conv_a'\) takes \['relu_1'\], which are not earlier nodes"
    ):
        dlx.Model.from_config(cyclic)
    with pytest.raises(ValueError, match="'outputs' must list names of nodes"):
        dlx.Model.from_config({**config, "outputs": ["nowhere"]})


def test_several_inputs_and_outputs(rng):
    a, b = dlx.Input((3,), name="a"), dlx.Input((3,), name="b")
    total = L.Add()(a, b)
    model = dlx.Model([a, b], [total, L.ReLU()(total)])
    xa, xb = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    s, r = model.predict([xa, xb])
    np.testing.assert_array_equal(s, xa + xb)
    np.testing.assert_array_equal(r, np.maximum(xa + xb, 0))
    with pytest.raises(ValueError, match="the model has 2 inputs, got 1 arrays"):
        model.predict(xa)
    with pytest.raises(ValueError, match="a loss needs a model with one output"):
        model.loss([xa, xb], np.array([0, 1]))


def test_inference_frees_and_reuses_temporaries_without_touching_inputs(rng):
    model = branching_model()
    x = rng.standard_normal((2, 3, 6, 6))
    original = x.copy()
    np.testing.assert_array_equal(model.predict(x), model.predict(x, train=False))
    np.testing.assert_array_equal(x, original)
    dlx.seed(0)
    trained = model.predict(x, train=True)
    np.testing.assert_allclose(model.predict(x), trained, rtol=1e-12)  # no BN, no Dropout


def test_summary_of_a_graph_counts_a_shared_layer_once():
    text = branching_model().summary((3, 6, 6), batch_size=2)
    assert text.splitlines()[-1].split()[1:] == ["1,078", "21,816"]
    assert "shared Conv2d" in text


def test_inference_never_overwrites_an_array_a_branch_still_reads(rng):
    """Dropout (the identity at inference) and Flatten (a view) hand on their input itself:
    a ReLU beside them must not write over it."""
    for make in (lambda: L.Dropout(0.5), lambda: L.Flatten()):
        x = dlx.Input((4,))
        a = L.Affine(4, 4, dtype=np.float64)(x)
        y = L.Add()(make()(a), L.ReLU()(a))
        model = dlx.Model(x, y)
        xb = rng.standard_normal((3, 4))
        h = xb @ model.params["affine_1.W"] + model.params["affine_1.b"]
        np.testing.assert_allclose(model.predict(xb), h + np.maximum(h, 0), rtol=1e-12)


def test_wiring_refuses_odd_graphs():
    x = dlx.Input((4,))
    with pytest.raises(ValueError, match="Add merges two or more nodes, got 1"):
        L.Add()(x)
    with pytest.raises(ValueError, match="a node name is letters, digits"):
        L.ReLU()(x, name="a/b")
    with pytest.raises(ValueError, match="more than 67,108,864 values"):
        dlx.Input((1, 40000, 40000))
