"""Inference (train=False): the outputs of the training path's kernels, nothing kept for
backward, the caller's arrays never written, and NumPy's thread settings left alone."""

import json
import os
import subprocess
import sys

import dlx
import dlx.layers as L
import dlx.ops as ops
import numpy as np
import pytest
from conftest import DTYPES


def eval_by_training_kernels(net, x):
    """What inference gave before it had a path of its own: each layer's training-path kernel
    on the running statistics, a fresh array at every step."""
    for layer in net.layers:
        p = layer.params
        if isinstance(layer, L.Conv2d):
            x = ops.conv2d(x, p["W"], p.get("b"), layer.stride, layer.pad)
        elif isinstance(layer, L.Affine):
            x = ops.linear(x.reshape(len(x), -1), p["W"], p["b"])
        elif isinstance(layer, L.BatchNorm):
            var = layer.buffers["running_var"]
            inv_std = (1.0 / np.sqrt(var + var.dtype.type(layer.eps))).astype(var.dtype)
            x = ops.batch_norm_apply(
                x, layer.buffers["running_mean"], inv_std, p["gamma"], p["beta"]
            )
        elif isinstance(layer, L.MaxPool2d):
            x = ops.max_pool2d(x, layer.kernel_size, layer.stride, layer.pad)[0]
        elif isinstance(layer, L.ReLU):
            x = ops.relu(x)
        else:
            assert isinstance(layer, L.Dropout)
    return x


BUILDERS = {
    "mlp-bn-dropout": lambda dtype: dlx.models.mlp(
        784, [50, 40], 10, batchnorm=True, dropout=0.3, dtype=dtype
    ),
    "simple": lambda dtype: dlx.models.simple_conv_net(dtype=dtype),
    "deep": lambda dtype: dlx.models.deep_conv_net(dtype=dtype),
    "deep-bn": lambda dtype: dlx.models.deep_conv_net(batchnorm=True, dtype=dtype),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("builder", list(BUILDERS))
def test_predict_gives_the_training_kernels_outputs(rng, backend, builder, dtype):
    dlx.seed(0)
    net = BUILDERS[builder](dtype)
    for layer in net.layers:
        for name, buffer in layer.buffers.items():
            buffer[...] = rng.uniform(0.5, 1.5, buffer.shape) * (1 if "var" in name else 0.3)
    x = rng.standard_normal((3, 1, 28, 28)).astype(dtype)
    original = x.copy()
    expected = eval_by_training_kernels(net, x)
    y = net.predict(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(x, original)  # the caller's input is never overwritten
    np.testing.assert_array_equal(net.predict(x), expected)  # and a second call agrees


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [L.ReLU(), L.BatchNorm(4), L.ReLU()],
        lambda: [L.Dropout(0.5), L.ReLU()],
        lambda: [L.Flatten(), L.ReLU()],
        lambda: [L.BatchNorm(4), L.Dropout(0.2), L.ReLU(), L.BatchNorm(4)],
    ],
    ids=["relu-first", "after-dropout", "after-flatten", "batchnorm-dropout-relu"],
)
def test_inference_never_writes_arrays_it_did_not_make(backend, rng, layers):
    net = dlx.Sequential(layers())
    x = rng.standard_normal((5, 4)).astype(np.float32)
    original = x.copy()
    y = net.predict(x)
    np.testing.assert_array_equal(x, original)
    np.testing.assert_array_equal(y, eval_by_training_kernels_any(net, original))


def eval_by_training_kernels_any(net, x):
    """Layer by layer at train=False, each on a copy: what an in-place-free run gives."""
    for layer in net.layers:
        x = layer.forward(x.copy(), train=False)
    return x


def test_inference_takes_inputs_in_any_memory_order(backend, rng):
    """Tanh keeps its input's memory order, so its fresh output of an NHWC array transposed
    to NCHW is not C-contiguous: BatchNorm after it must not be asked to work in place."""
    net = dlx.Sequential([L.Tanh(), L.BatchNorm(3), L.ReLU(), L.Sigmoid(), L.ReLU()])
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(net.predict(x), eval_by_training_kernels_any(net, x))


CLAIMS = {
    # layer: (fresh_inference_output, infers_in_place)
    L.Conv2d: (True, False),
    L.Affine: (True, False),
    L.BatchNorm: (True, True),
    L.ReLU: (True, True),
    L.Sigmoid: (True, False),
    L.Tanh: (True, False),
    L.MaxPool2d: (True, False),
    L.AvgPool2d: (True, False),
    L.Dropout: (False, False),
    L.Flatten: (False, False),
}


def test_built_in_layers_make_the_inference_claims_they_should():
    got = {cls: (cls.fresh_inference_output, cls.infers_in_place) for cls in CLAIMS}
    assert got == CLAIMS


def test_predict_runs_relu_in_place_after_each_fresh_output(monkeypatch, rng):
    calls = []
    relu = ops.relu

    def spy(x, *, inplace=False):
        calls.append(inplace)
        return relu(x, inplace=inplace)

    monkeypatch.setattr(ops, "relu", spy)
    net = dlx.Sequential(
        [
            L.ReLU(),  # the caller's input: not in place
            L.Conv2d(1, 2, 3, padding=1),
            L.ReLU(),
            L.MaxPool2d(2),
            L.ReLU(),
            L.AvgPool2d(2),
            L.ReLU(),
            L.Flatten(),
            L.ReLU(),  # a view of the pooled array: not in place
            L.Affine(8, 4),
            L.ReLU(),
            L.BatchNorm(4),
            L.ReLU(),
            L.Dropout(0.5),
            L.ReLU(),  # still the same temporary
        ]
    )
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    original = x.copy()
    net.predict(x)
    assert calls == [False, True, True, True, False, True, True, False]
    np.testing.assert_array_equal(x, original)
    calls.clear()
    net.loss(x, np.array([0, 1]))  # training never works in place
    assert calls == [False] * 8


def test_affine_runs_on_the_linear_kernels(monkeypatch, rng):
    used = []
    for name in ("linear", "linear_backward"):
        kernel = getattr(ops, name)
        monkeypatch.setattr(
            ops, name, lambda *a, _k=kernel, _n=name, **kw: used.append(_n) or _k(*a, **kw)
        )
    layer = L.Affine(6, 3)
    y = layer.forward(rng.standard_normal((4, 2, 3)).astype(np.float32))
    layer.backward(np.ones_like(y))
    assert used == ["linear", "linear_backward"]


def test_blas_single_threaded_is_deprecated():
    pytest.importorskip("threadpoolctl")
    with pytest.warns(DeprecationWarning, match="no longer needed"):
        limit = dlx.threads.blas_single_threaded()
    with limit:
        pass


def test_a_subclass_with_its_own_forward_makes_no_inference_claims(rng):
    class ShiftedReLU(L.ReLU):
        def forward(self, x, train=True):
            return super().forward(x, train) + 1

    assert (ShiftedReLU.infers_in_place, ShiftedReLU.fresh_inference_output) == (False, False)
    assert L.ReLU.infers_in_place and L.ReLU.fresh_inference_output
    net = dlx.Sequential([L.Affine(3, 4), ShiftedReLU(), ShiftedReLU()])
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h = np.maximum(x @ net.layers[0].params["W"] + net.layers[0].params["b"], 0) + 1
    np.testing.assert_allclose(net.predict(x), h + 1, rtol=1e-6)


LAYERS = {
    "Conv2d": (lambda: L.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 5)),
    "Affine": (lambda: L.Affine(8, 3), (2, 8)),
    "ReLU": (L.ReLU, (2, 8)),
    "Sigmoid": (L.Sigmoid, (2, 8)),
    "Tanh": (L.Tanh, (2, 8)),
    "BatchNorm": (lambda: L.BatchNorm(8), (2, 8)),
    "MaxPool2d": (lambda: L.MaxPool2d(2), (2, 2, 4, 4)),
    "AvgPool2d": (lambda: L.AvgPool2d(2), (2, 2, 4, 4)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_inference_keeps_nothing_for_backward(rng, name):
    make, shape = LAYERS[name]
    layer = make()
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer.forward(x, train=True)
    layer.backward(np.ones_like(y))  # a training forward keeps what backward needs
    layer.forward(x, train=False)
    cache = [k for k, v in vars(layer).items() if isinstance(v, np.ndarray)]
    assert cache == [], f"{name} kept {cache} after an inference forward"
    with pytest.raises(RuntimeError, match=rf"{name}.backward needs the cache of forward"):
        layer.backward(np.ones_like(y))


def test_a_step_and_a_prediction_leave_numpys_blas_threads_alone():
    """NumPy's BLAS keeps its own thread count through import, a hand-written step, Trainer
    (where it was once limited to one thread) and predict."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401  (loads NumPy's BLAS, if it has one of its own)

    if not any("numpy" in i["filepath"] for i in threadpoolctl.threadpool_info()):
        pytest.skip("this NumPy's BLAS is not a library of its own that threadpoolctl finds")
    script = """
import json, threadpoolctl, numpy as np

def numpy_blas():
    return sorted(
        (i["filepath"], i["num_threads"]) for i in threadpoolctl.threadpool_info()
        if i["user_api"] == "blas" and "numpy" in i["filepath"]
    )

seen = {"before import": numpy_blas()}
import dlx
seen["after import"] = numpy_blas()
rng = np.random.default_rng(0)
x = rng.random((40, 1, 28, 28), dtype=np.float32)
t = rng.integers(0, 10, 40)
net = dlx.models.simple_conv_net()
optimizer = dlx.optim.Adam()
optimizer.update(net.params, net.gradient(x, t))
net.predict(x)
seen["after a step"] = numpy_blas()
record = lambda epoch, _: seen.setdefault("inside Trainer.fit", numpy_blas())
dlx.Trainer(net, epochs=1, batch_size=20, progress=False, on_epoch_end=record).fit(x, t)
seen["after Trainer.fit"] = numpy_blas()
print(json.dumps(seen))
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    env.pop("OMP_NUM_THREADS", None)
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    seen = json.loads(run.stdout)
    before = seen.pop("before import")
    assert before and all(threads == 2 for _, threads in before), before
    for moment, blas in seen.items():
        assert blas == before, f"NumPy's BLAS {moment}: {blas}, before importing dlx: {before}"
