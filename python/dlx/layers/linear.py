"""Fully connected layers: Affine (y = x W + b) and Flatten."""

from __future__ import annotations

import math

import numpy as np

from .. import init as initializers
from .. import ops
from .._random import rng_or_default
from ..errors import DlxValueError
from ..ops import _checks
from .base import Layer, cached, check_input


class Affine(Layer):
    """y = x W + b, with x (N, in_features) or (N, ...) flattened per sample.

    Shapes: W (in_features, out_features), b (out_features,), y (N, out_features).
    Backward: dx = dout W^T (reshaped to x's shape), dW = x^T dout, db = sum_N dout.
    Both run on :func:`dlx.ops.linear` and :func:`dlx.ops.linear_backward`.
    """

    decay = ("W",)
    fresh_inference_output = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        weight_init="he",
        dtype=np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise DlxValueError(f"{name} must be a positive int, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = _checks.float_dtype(dtype)
        make = initializers.initializer(weight_init)
        self.params["W"] = make(
            (in_features, out_features),
            in_features,
            out_features,
            rng=rng_or_default(rng),
            dtype=dtype,
        )
        self.params["b"] = np.zeros(out_features, dtype=dtype)
        self.x: np.ndarray | None = None
        self.x_shape: tuple[int, ...] | None = None

    @classmethod
    def state_shapes(cls, args):
        w_in = _checks.integer(args["in_features"], "in_features", 1)
        w_out = _checks.integer(args["out_features"], "out_features", 1)
        return {"params": {"W": (w_in, w_out), "b": (w_out,)}, "buffers": {}}

    def multiply_adds(self, input_shape, output_shape):
        return self.in_features * self.out_features

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(2, 9)), f"(N, {self.in_features}) or (N, ...)")
        features = math.prod(x.shape[1:])
        if features != self.in_features:
            raise DlxValueError(
                f"Affine expects {self.in_features} features per sample, got shape {x.shape} "
                f"({features} features)"
            )
        # Contiguous once here, so that backward does not copy a strided input again.
        rows = np.ascontiguousarray(x.reshape(x.shape[0], features))
        self.x_shape, self.x = (x.shape, rows) if train else (None, None)
        return ops.linear(rows, self.params["W"], self.params["b"])

    def backward(self, dout):
        return self._backward(dout, input_grad=True).reshape(self.x_shape)

    def backward_params(self, dout):
        self._backward(dout, input_grad=False)

    def _backward(self, dout, input_grad):
        dx, self.grads["W"], self.grads["b"] = ops.linear_backward(
            dout, cached(self, self.x), self.params["W"], input_grad=input_grad
        )
        return dx


class Flatten(Layer):
    """(N, ...) -> (N, prod(...)); backward restores the shape."""

    def __init__(self) -> None:
        super().__init__()
        self.x_shape: tuple[int, ...] | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        self.x_shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dout):
        return dout.reshape(cached(self, self.x_shape))
