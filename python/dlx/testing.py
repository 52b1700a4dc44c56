"""A conformance check for layer authors: one call that tests what dlx relies on.

In a plugin's own test suite::

    from dlx.testing import check_layer

    def test_gelu_conforms():
        check_layer(lambda dtype: GELU(), input_shape=(4, 7))

It raises ``AssertionError`` with a message saying what failed, and returns the relative
gradient errors it measured.
"""

from __future__ import annotations

import inspect
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .checkpoint import load, save
from .errors import DlxTypeError
from .gradcheck import gradient_check
from .layers.base import Layer
from .network import Sequential
from .registry import build_layer, name_of

__all__ = ["check_layer"]


def _make(factory: Callable[..., Layer], dtype) -> Layer:
    layer = factory(dtype)
    assert isinstance(layer, Layer), f"the factory returned {type(layer).__name__}, not a dlx.Layer"
    for name, p in layer.params.items():
        assert p.dtype == dtype, (
            f"parameter {name!r} is {p.dtype}, the factory was asked for {np.dtype(dtype)}"
        )
    return layer


def _check_inference_claims(layer: Layer, x: np.ndarray, y: np.ndarray) -> None:
    """What a layer declares about its inference output (see :class:`dlx.Layer`) must hold,
    or a network would overwrite arrays it does not own."""
    name = type(layer).__name__
    if layer.fresh_inference_output:
        owned = [("the input", x)] + [
            (f"{kind} {key!r}", a)
            for kind, arrays in (("parameter", layer.params), ("buffer", layer.buffers))
            for key, a in arrays.items()
        ]
        for what, a in owned:
            assert not np.shares_memory(y, a), (
                f"{name} declares fresh_inference_output, but its output shares memory with {what}"
            )
        kept = [k for k, v in vars(layer).items() if isinstance(v, np.ndarray) and v is y]
        assert not kept, f"{name} declares fresh_inference_output, but keeps its output as {kept}"
    if layer.infers_in_place:
        inside = x.copy()
        result = layer.forward(inside, train=False, inplace=True)
        assert result is inside, f"{name} declares infers_in_place, but did not return its input"
        np.testing.assert_array_equal(
            inside, y, err_msg=f"{name}'s in-place inference computes something else"
        )


def _check_merge_layer(factory, shapes, tolerance, rng) -> dict[str, float]:
    """check_layer for a layer of several inputs: each input gets its gradient back."""
    from .layers.node import Input
    from .model import Model

    bases = [rng.standard_normal(s) + 0.1 for s in shapes]
    for dtype in (np.float32, np.float64):
        layer = _make(factory, dtype)
        xs = [b.astype(dtype) for b in bases]
        y = layer.forward(*xs, train=True)
        assert isinstance(y, np.ndarray) and y.dtype == dtype, f"forward gave {y!r:.60}"
        dxs = layer.backward(np.ones_like(y))
        assert isinstance(dxs, tuple) and len(dxs) == len(xs), (
            f"backward must return one gradient per input ({len(xs)}), got {type(dxs).__name__}"
        )
        for i, (dx, x) in enumerate(zip(dxs, xs)):
            assert dx.shape == x.shape and dx.dtype == dtype, (
                f"the gradient of input {i} is {dx.shape} {dx.dtype}, the input {x.shape} {dtype}"
            )
        y_eval = layer.forward(*xs, train=False)
        assert y_eval.shape == y.shape and y_eval.dtype == dtype
        if layer.fresh_inference_output:
            for i, x in enumerate(xs):
                assert not np.shares_memory(y_eval, x), (
                    f"{type(layer).__name__} declares fresh_inference_output, but its output "
                    f"shares memory with input {i}"
                )
    errors = gradient_check(_make(factory, np.float64), [b.copy() for b in bases])
    for name, error in errors.items():
        assert error < tolerance, f"gradient of {name!r} is wrong: relative error {error:.2e}"
    layer = _make(factory, np.float32)
    config = layer.to_config()
    rebuilt = build_layer(json.loads(json.dumps(config)))
    assert type(rebuilt) is type(layer) and rebuilt.to_config() == config
    inputs = [Input(s[1:]) for s in shapes]
    model = Model(inputs, layer(*inputs))
    xs = [b.astype(np.float32) for b in bases]
    with tempfile.TemporaryDirectory() as folder:
        loaded = load(save(model, Path(folder) / "layer.npz"))
    np.testing.assert_array_equal(loaded.predict(xs), model.predict(xs))
    return errors


def check_layer(
    factory: Callable[..., Layer],
    input_shape: Sequence[int],
    *,
    bad_input_shapes: Sequence[Sequence[int]] = (),
    tolerance: float = 1e-6,
    seed: int = 0,
) -> dict[str, float]:
    """Check the layer that ``factory(dtype)`` builds, on inputs of ``input_shape``.

    ``input_shape`` includes the batch axis; for a merge layer (``dlx.layers.Add``, ...) it
    is a list of shapes, one per input. ``factory`` receives ``np.float32`` or
    ``np.float64`` and returns a layer whose parameters have that dtype. Inputs are drawn from
    a standard normal (``seed``), shifted away from zero so that kinks at 0 (as in ReLU)
    stay outside the finite differences.

    Checked, in order: forward and backward shapes; ``grads`` matching ``params``;
    ``backward_params`` giving the same parameter gradients as ``backward``; the inference
    claims it makes (``fresh_inference_output``, ``infers_in_place``); float32 and float64 kept
    end to end; a float64 gradient check of the input and every parameter (below
    ``tolerance``); the config round trip through the registry; a save/load round trip giving
    identical outputs; and that each of ``bad_input_shapes`` raises ``ValueError`` or
    ``TypeError``.
    """
    if not callable(factory) or not inspect.signature(factory).parameters:
        raise DlxTypeError(
            "factory must be a callable taking a dtype, e.g. lambda dtype: MyLayer(dtype=dtype)"
        )
    rng = np.random.default_rng(seed)
    if _make(factory, np.float64).merges:
        return _check_merge_layer(factory, [tuple(s) for s in input_shape], tolerance, rng)
    shape = tuple(input_shape)
    base = rng.standard_normal(shape)
    base += np.where(base >= 0, 0.1, -0.1)

    for dtype in (np.float32, np.float64):
        layer = _make(factory, dtype)
        x = base.astype(dtype)
        y = layer.forward(x, train=True)
        assert isinstance(y, np.ndarray), f"forward returned {type(y).__name__}, not an array"
        assert y.dtype == dtype, f"forward turned {np.dtype(dtype)} input into {y.dtype}"
        assert y.shape[:1] == shape[:1], f"forward changed the batch axis: {shape} -> {y.shape}"
        dx = layer.backward(np.ones_like(y))
        assert isinstance(dx, np.ndarray) and dx.shape == shape, (
            f"backward must return dx of the input's shape {shape}, got {getattr(dx, 'shape', dx)}"
        )
        assert dx.dtype == dtype, f"backward turned {np.dtype(dtype)} into {dx.dtype}"
        assert set(layer.grads) == set(layer.params), (
            f"grads has keys {sorted(layer.grads)}, params has {sorted(layer.params)}"
        )
        for name, g in layer.grads.items():
            assert g.shape == layer.params[name].shape and g.dtype == dtype, (
                f"grad {name!r} is {g.shape} {g.dtype}, its parameter {layer.params[name].shape} {np.dtype(dtype)}"
            )
        grads = {name: g.copy() for name, g in layer.grads.items()}
        layer.backward_params(np.ones_like(y))  # from the same forward pass
        for name, g in grads.items():
            np.testing.assert_allclose(
                layer.grads[name],
                g,
                rtol=1e-5 if dtype == np.float32 else 1e-12,
                err_msg=f"backward_params gave another gradient of {name!r} than backward",
            )
        y_eval = layer.forward(x, train=False)
        assert y_eval.shape == y.shape and y_eval.dtype == dtype, (
            "train=False changed the output shape or dtype"
        )
        _check_inference_claims(layer, x, y_eval)

    errors = gradient_check(_make(factory, np.float64), base.copy(), seed=seed)
    for name, error in errors.items():
        assert error < tolerance, (
            f"gradient of {name!r} is wrong: relative error {error:.2e} (tolerance {tolerance:.0e})"
        )

    layer = _make(factory, np.float32)
    config = layer.to_config()
    assert config["type"] == name_of(type(layer))
    text = json.dumps(config)
    rebuilt = build_layer(json.loads(text))
    assert type(rebuilt) is type(layer), f"the config rebuilt a {type(rebuilt).__name__}"
    assert rebuilt.to_config() == config, (
        f"config round trip changed {config} into {rebuilt.to_config()}"
    )

    model = Sequential([layer])
    x32 = base.astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = save(model, Path(folder) / "layer.npz")
        loaded = load(path)
    np.testing.assert_array_equal(
        loaded.predict(x32), model.predict(x32), err_msg="the loaded layer computes something else"
    )

    for bad in bad_input_shapes:
        bad_x = np.ones(tuple(bad), np.float32)
        try:
            _make(factory, np.float32).forward(bad_x)
        except (ValueError, TypeError):
            continue
        raise AssertionError(
            f"input of shape {tuple(bad)} was accepted; it should raise ValueError"
        )
    return errors
