"""Activation layers: ReLU, Sigmoid, Tanh."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import ops
from .base import Layer, cached, check_input


class ReLU(Layer):
    """y = max(0, x); the gradient passes where x > 0 and is 0 elsewhere.

    Forward keeps y itself rather than a mask: y > 0 exactly where x > 0. Both passes run
    on :mod:`dlx.ops` (a parallel C++ loop by default). At inference a network may let it
    overwrite its input (``inplace=True``) when that input is a temporary of its own.
    """

    fresh_inference_output = True
    infers_in_place = True

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x, train=True, inplace=False):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        y = ops.relu(x, inplace=inplace and not train)
        self.out = y if train else None
        return y

    def forward_applied(self, y):
        """The training forward pass when the layer before has applied max(0, .) already
        (a network fuses the two where this ReLU alone reads that layer's output, see
        ``Layer.applies_relu``): keeps y, which the network hands to that layer's backward
        pass, and returns it."""
        self.out = y
        return y

    def backward(self, dout):
        return ops.relu_backward(dout, cached(self, self.out))


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y), so forward keeps y."""

    fresh_inference_output = True

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        y = F.sigmoid(x)
        self.out = y if train else None
        return y

    def backward(self, dout):
        out = cached(self, self.out)
        return dout * out * (1 - out)


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y^2."""

    fresh_inference_output = True

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        y = np.tanh(x)
        self.out = y if train else None
        return y

    def backward(self, dout):
        return dout * (1 - cached(self, self.out) ** 2)
