"""Merge layers: several inputs, one output. They join the branches of a graph network
(:class:`dlx.Model`): Add for residual connections, Concat for channel concatenation, Mul for
gating. They are the computational graph's Add and Mul nodes (:mod:`dlx.graph`) grown into
layers: ``forward(*xs)`` takes every input, ``backward(dout)`` returns one gradient per input.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import DlxValueError
from ..ops import _checks
from .base import Layer, cached, check_input


class Merge(Layer):
    """Base class of the layers that take several inputs (two or more)."""

    merges = True

    def merged_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        """The output's sample shape for the inputs' sample shapes; raises DlxValueError
        naming the shapes where they cannot be merged."""
        raise NotImplementedError

    def output_shape(self, *input_shapes: tuple[int, ...]) -> tuple[int, ...]:
        return self.merged_shape([tuple(s) for s in input_shapes])

    def _one_shape(self, shapes):
        """The merged shape of layers whose inputs must all have one shape (Add, Mul)."""
        if len(set(shapes)) > 1:
            raise DlxValueError(f"{type(self).__name__} needs inputs of one shape, got {shapes}")
        return shapes[0]

    def _checked(self, xs) -> list[np.ndarray]:
        if len(xs) < 2:
            raise DlxValueError(f"{type(self).__name__} merges two or more inputs, got {len(xs)}")
        xs = [check_input(self, x, tuple(range(1, 9)), "an array with a batch axis") for x in xs]
        dtypes = {x.dtype for x in xs}
        if len(dtypes) > 1:
            raise DlxValueError(
                f"{type(self).__name__} inputs must share one dtype, got {sorted(map(str, dtypes))}"
            )
        if len({x.shape[0] for x in xs}) > 1:
            raise DlxValueError(
                f"{type(self).__name__} inputs must share the batch size, got shapes "
                f"{[x.shape for x in xs]}"
            )
        self.merged_shape([x.shape[1:] for x in xs])
        return xs


class Add(Merge):
    """y = x1 + x2 + ...: a residual connection. Each input receives dout unchanged (the Add
    node's rule), so where branches meet, their gradients flow back whole."""

    fresh_inference_output = True
    applies_relu = True

    def __init__(self) -> None:
        super().__init__()
        self.n_inputs: int | None = None

    merged_shape = Merge._one_shape

    def forward(self, *xs, train=True, relu=False):
        xs = self._checked(xs)
        self.n_inputs = len(xs) if train else None
        y = xs[0]
        for i, x in enumerate(xs[1:], start=2):  # a fused ReLU applies to the last sum only
            y = ops.add(y, x, relu=relu and i == len(xs))
        return y

    def backward(self, dout, relu_output=None):
        if relu_output is not None:
            dout = ops.relu_backward(dout, relu_output)
        return tuple(dout for _ in range(cached(self, self.n_inputs)))


class Mul(Merge):
    """y = x1 * x2 * ... elementwise (gating). Each input's gradient is dout times the
    product of the other inputs (the Mul node's rule)."""

    fresh_inference_output = True

    def __init__(self) -> None:
        super().__init__()
        self.xs: list[np.ndarray] | None = None

    merged_shape = Merge._one_shape

    def forward(self, *xs, train=True):
        xs = self._checked(xs)
        self.xs = xs if train else None
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y = y * x
        return y

    def backward(self, dout):
        xs = cached(self, self.xs)
        grads = []
        for i in range(len(xs)):
            g = dout
            for j, x in enumerate(xs):
                if j != i:
                    g = g * x
            grads.append(g)
        return tuple(grads)


class Concat(Merge):
    """Inputs joined along ``axis`` of the sample (1: channels, as in Inception and DenseNet;
    axis 0 is the batch and cannot be joined). Backward splits dout at the same places."""

    fresh_inference_output = True

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = _checks.integer(axis, "axis", 1)
        self.sizes: list[int] | None = None

    def merged_shape(self, shapes):
        a = self.axis - 1
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1 or a >= min(ranks):
            raise DlxValueError(
                f"Concat(axis={self.axis}) needs inputs of one rank with that axis, got {shapes}"
            )
        others = {s[:a] + s[a + 1 :] for s in shapes}
        if len(others) > 1:
            raise DlxValueError(
                f"Concat(axis={self.axis}) needs inputs equal in every other axis, got {shapes}"
            )
        joined = list(shapes[0])
        joined[a] = sum(s[a] for s in shapes)
        return tuple(joined)

    def forward(self, *xs, train=True):
        xs = self._checked(xs)
        self.sizes = [x.shape[self.axis] for x in xs] if train else None
        return np.concatenate(xs, axis=self.axis)

    def backward(self, dout):
        cuts = np.cumsum(cached(self, self.sizes))[:-1]
        return tuple(np.ascontiguousarray(g) for g in np.split(dout, cuts, axis=self.axis))
