"""Activation layers: ReLU, Sigmoid, Tanh."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import ops
from .base import Layer, check_input


class ReLU(Layer):
    """y = max(0, x); the gradient passes where x > 0 and is 0 elsewhere.

    Forward keeps y itself rather than a mask: y > 0 exactly where x > 0. Both passes run
    on :mod:`dlx.ops` (a parallel C++ loop by default).
    """

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        self.out = ops.relu(x)
        return self.out

    def backward(self, dout):
        return ops.relu_backward(dout, self.out)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y), so forward keeps y."""

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        self.out = F.sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out**2)
