"""Numerical differentiation, gradient descent, and checking backprop against both.

Central differences, (f(x + h) - f(x - h)) / 2h, have an error of order h^2 and need two
evaluations per element: far too slow to train with, exactly right for checking that a
backward pass is correct.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._random import get_rng
from .errors import DlxTypeError
from .layers.base import Layer

__all__ = [
    "gradient_check",
    "gradient_descent",
    "numerical_diff",
    "numerical_gradient",
    "relative_error",
]


def numerical_diff(f: Callable[[float], float], x: float, h: float = 1e-4) -> float:
    """f'(x) by the central difference (f(x + h) - f(x - h)) / 2h."""
    return (f(x + h) - f(x - h)) / (2 * h)


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4
) -> np.ndarray:
    """df/dx for an array x of any shape, one element at a time.

    ``f`` is called with ``x`` itself, changed in place by +-h at one element; every element
    is restored exactly afterwards.
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        got = f"an array of {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DlxTypeError(f"x must be a floating-point numpy.ndarray, got {got}")
    values = _numeric_at(lambda: f(x), x, list(np.ndindex(x.shape)), h)
    return values.reshape(x.shape).astype(x.dtype)


def gradient_descent(
    f: Callable[[np.ndarray], float], init_x: np.ndarray, lr: float = 0.01, step_num: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise f from init_x with ``step_num`` steps x -= lr * numerical gradient.

    Returns the final x and the path, an array (step_num + 1, *x.shape) starting at init_x.
    """
    x = np.array(init_x, dtype=np.float64)
    path = [x.copy()]
    for _ in range(step_num):
        x -= lr * numerical_gradient(f, x)
        path.append(x.copy())
    return x, np.array(path)


def relative_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = 1e-8) -> float:
    """||a - n|| / max(||a||, ||n||, floor): 0 for equal arrays, about 1 for unrelated ones.

    The floor keeps two gradients that are both zero up to rounding noise from counting
    as different.
    """
    scale = max(float(np.linalg.norm(analytic)), float(np.linalg.norm(numeric)), floor)
    return float(np.linalg.norm(analytic - numeric)) / scale


class _FrozenRandomness:
    """Replays the same random draws (Dropout masks) at every evaluation, and puts back
    the buffers (BatchNorm running statistics) that training-mode forwards update."""

    def __init__(self, layers: list[Layer]) -> None:
        self.generators = [get_rng()] + [
            layer.rng
            for layer in layers
            if isinstance(getattr(layer, "rng", None), np.random.Generator)
        ]
        self.states = [g.bit_generator.state for g in self.generators]
        self.buffers = [
            (layer, {k: v.copy() for k, v in layer.buffers.items()}) for layer in layers
        ]

    def rewind(self) -> None:
        for generator, state in zip(self.generators, self.states):
            generator.bit_generator.state = state

    def restore_buffers(self) -> None:
        for layer, saved in self.buffers:
            for k, v in saved.items():
                layer.buffers[k][...] = v


def _check_float64(arrays: dict[str, np.ndarray]) -> None:
    for name, a in arrays.items():
        if a.dtype != np.float64:
            raise DlxTypeError(
                f"gradient checks need float64 (central differences in float32 are too coarse); "
                f"{name} is {a.dtype}: build the model with dtype=np.float64"
            )


def _entries(shape: tuple[int, ...], max_entries: int | None, rng: np.random.Generator):
    total = int(np.prod(shape))
    if max_entries is None or total <= max_entries:
        return list(np.ndindex(shape))
    picks = rng.choice(total, size=max_entries, replace=False)
    return [np.unravel_index(int(i), shape) for i in np.sort(picks)]


def _numeric_at(loss: Callable[[], float], a: np.ndarray, entries, h: float) -> np.ndarray:
    values = np.empty(len(entries))
    for k, index in enumerate(entries):
        saved = a[index]
        a[index] = saved + h
        plus = loss()
        a[index] = saved - h
        minus = loss()
        a[index] = saved
        values[k] = (plus - minus) / (2 * h)
    return values


def network_numerical_gradient(net, x, t, h: float = 1e-4) -> dict[str, np.ndarray]:
    """Numerical gradient of ``net.loss(x, t)`` for every parameter (training mode)."""
    frozen = _FrozenRandomness(net.layers)

    def loss():
        frozen.rewind()
        return net.loss(x, t, train=True)

    grads = {}
    for name, p in net.params.items():
        entries = list(np.ndindex(p.shape))
        grads[name] = _numeric_at(loss, p, entries, h).reshape(p.shape)
    frozen.rewind()
    frozen.restore_buffers()
    return grads


def gradient_check(
    model: Any,
    x: np.ndarray,
    t: np.ndarray | None = None,
    h: float = 1e-6,
    max_entries: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Relative error between backprop and central differences, for each parameter.

    ``model`` is a :class:`~dlx.Sequential` (scored by its loss on targets ``t``) or a single
    :class:`~dlx.Layer` (scored by ``sum(layer(x) * r)`` for a fixed random ``r``; its
    input gradient is reported as ``"x"``). Everything must be float64. ``max_entries``
    checks only that many randomly chosen entries of each array, for large models. Errors
    below about 1e-7 mean the backward pass is right.
    """
    rng = np.random.default_rng(seed)
    if not isinstance(model, Layer) and all(
        hasattr(model, a) for a in ("layers", "params", "gradient", "loss")
    ):  # a network (Sequential or Model): duck-typed, so this module needs not import them
        layers = model.layers
        inputs = x if isinstance(x, (list, tuple)) else [x]
        _check_float64({**{f"x{i}": a for i, a in enumerate(inputs)}, **model.params})
        frozen = _FrozenRandomness(layers)
        frozen.rewind()
        analytic = {k: v.copy() for k, v in model.gradient(x, t).items()}
        targets = dict(model.params)

        def loss() -> float:
            frozen.rewind()
            return model.loss(x, t, train=True)

    elif isinstance(model, Layer):
        layers = [model]
        # A merge layer takes a list of inputs, reported as "x0", "x1", ...
        xs = [np.array(a, dtype=a.dtype, copy=True) for a in (x if model.merges else [x])]
        names = [f"x{i}" for i in range(len(xs))] if model.merges else ["x"]
        _check_float64({**dict(zip(names, xs)), **model.params})
        frozen = _FrozenRandomness(layers)
        frozen.rewind()
        r = rng.standard_normal(model.forward(*xs, train=True).shape)
        frozen.rewind()
        model.forward(*xs, train=True)
        dxs = model.backward(r.copy())
        analytic = dict(zip(names, dxs if model.merges else [dxs]))
        analytic.update({k: v.copy() for k, v in model.grads.items()})
        targets = {**dict(zip(names, xs)), **model.params}

        def loss() -> float:
            frozen.rewind()
            return float(np.sum(model.forward(*xs, train=True) * r))

    else:
        raise DlxTypeError(f"model must be a dlx network or dlx.Layer, got {type(model).__name__}")

    errors = {}
    for name, array in targets.items():
        entries = _entries(array.shape, max_entries, rng)
        numeric = _numeric_at(loss, array, entries, h)
        got = np.array([analytic[name][index] for index in entries])
        errors[name] = relative_error(got, numeric)
    frozen.restore_buffers()
    return errors
