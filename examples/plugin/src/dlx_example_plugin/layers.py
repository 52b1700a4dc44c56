"""Two activation layers for dlx, each a forward and a backward on one screen, and the
ONNX nodes that compute its forward (``to_onnx``, used by ``dlx.onnx.export``)."""

from __future__ import annotations

import math

import dlx
import numpy as np
from dlx.layers.base import check_input

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELU(dlx.Layer):
    """Gaussian error linear unit, tanh approximation:

    y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
    dy/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    """

    def __init__(self) -> None:
        super().__init__()
        self.x: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        c = x.dtype.type(_SQRT_2_OVER_PI)
        self.x = x
        self.t = np.tanh(c * (x + x.dtype.type(0.044715) * x**3))
        return x.dtype.type(0.5) * x * (1 + self.t)

    def backward(self, dout):
        x, t = self.x, self.t
        c = x.dtype.type(_SQRT_2_OVER_PI)
        du = c * (1 + x.dtype.type(3 * 0.044715) * x**2)
        return dout * x.dtype.type(0.5) * ((1 + t) + x * (1 - t**2) * du)

    def to_onnx(self, graph, inputs):
        # The same formula in ONNX operators (opset 17 has no Gelu): 0.5 x (1 + tanh(u)).
        (x,) = inputs
        cube = graph.node("Mul", [graph.node("Mul", [x, x]), x])
        inner = graph.node("Add", [x, graph.node("Mul", [graph.constant(0.044715), cube])])
        t = graph.node("Tanh", [graph.node("Mul", [graph.constant(_SQRT_2_OVER_PI), inner])])
        half_x = graph.node("Mul", [graph.constant(0.5), x])
        return graph.node("Mul", [half_x, graph.node("Add", [graph.constant(1.0), t])])


class LeakyReLU(dlx.Layer):
    """y = x where x > 0, else negative_slope * x; the gradient is 1 or negative_slope."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if not isinstance(negative_slope, (int, float)) or not 0 <= negative_slope < 1:
            raise ValueError(f"negative_slope must lie in [0, 1), got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self.scale: np.ndarray | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        self.scale = np.where(x > 0, x.dtype.type(1), x.dtype.type(self.negative_slope))
        return x * self.scale

    def backward(self, dout):
        return dout * self.scale

    def to_onnx(self, graph, inputs):
        return graph.node("LeakyRelu", inputs, alpha=self.negative_slope)
