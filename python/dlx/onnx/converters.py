"""The ONNX form of each built-in layer: a function that writes the layer's inference
computation as standard operators (opset 13 and later) with an :class:`OnnxGraph`.

Each converter takes ``(layer, graph, inputs)`` and returns its output tensor's name, like a
plugin layer's ``to_onnx`` method.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..layers import (
    Add,
    Affine,
    AvgPool2d,
    BatchNorm,
    Concat,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    MaxPool2d,
    Mul,
    ReLU,
    Sigmoid,
    Tanh,
)
from ..layers.base import Layer
from .graph import OnnxGraph

__all__ = ["CONVERTERS", "batchnorm_scale_shift"]


def _window(layer) -> dict[str, list[int]]:
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.pad
    return {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [ph, pw, ph, pw]}


def conv2d(layer: Conv2d, graph: OnnxGraph, inputs: list[str], weights=None) -> str:
    """Conv with explicit pads [top, left, bottom, right]; ``weights`` (W, b) replace the
    layer's own when a BatchNorm is folded in."""
    W, b = (None, None) if weights is None else weights
    operands = [inputs[0], graph.param("W", W)]
    if b is not None or "b" in layer.params:
        operands.append(graph.param("b", b))
    return graph.node("Conv", operands, dilations=[1, 1], group=1, **_window(layer))


def max_pool2d(layer: MaxPool2d, graph: OnnxGraph, inputs: list[str]) -> str:
    # ONNX pads a max pool with -inf, as dlx does: a padded cell never wins.
    return graph.node("MaxPool", inputs, **_window(layer))


def avg_pool2d(layer: AvgPool2d, graph: OnnxGraph, inputs: list[str]) -> str:
    # dlx divides by the whole window, padding included.
    return graph.node("AveragePool", inputs, count_include_pad=1, **_window(layer))


def global_avg_pool2d(layer: GlobalAvgPool2d, graph: OnnxGraph, inputs: list[str]) -> str:
    # GlobalAveragePool keeps the plane as 1x1: (N, C, 1, 1), flattened to dlx's (N, C).
    return graph.node("Flatten", [graph.node("GlobalAveragePool", inputs)], axis=1)


def affine(layer: Affine, graph: OnnxGraph, inputs: list[str], weights=None) -> str:
    """Gemm with W as (in, out), so no transpose; an input of several axes is flattened
    first, as Affine flattens it."""
    W, b = (None, None) if weights is None else weights
    x = inputs[0]
    if len(graph.shape(x)) != 1:
        x = graph.node("Flatten", [x], axis=1)
    return graph.node("Gemm", [x, graph.param("W", W), graph.param("b", b)], alpha=1.0, beta=1.0)


def flatten(layer: Flatten, graph: OnnxGraph, inputs: list[str]) -> str:
    return graph.node("Flatten", inputs, axis=1)


def batch_norm(layer: BatchNorm, graph: OnnxGraph, inputs: list[str]) -> str:
    """BatchNormalization in inference form (running statistics); ONNX's momentum means what
    dlx's does."""
    operands = [inputs[0], *(graph.param(k) for k in ("gamma", "beta"))]
    operands += [graph.param(k) for k in ("running_mean", "running_var")]
    return graph.node("BatchNormalization", operands, epsilon=layer.eps, momentum=layer.momentum)


def dropout(layer: Dropout, graph: OnnxGraph, inputs: list[str]) -> str:
    # At inference ONNX's Dropout is the identity, as dlx's; the node keeps the layer's p.
    return graph.node("Dropout", [inputs[0], graph.constant(layer.p)])


def _elementwise(op_type: str) -> Callable[[Layer, OnnxGraph, list[str]], str]:
    def convert(layer: Layer, graph: OnnxGraph, inputs: list[str]) -> str:
        y = inputs[0]
        for x in inputs[1:]:  # in dlx's order, ((x1 + x2) + x3) ..., for the same rounding
            y = graph.node(op_type, [y, x])
        return y

    return convert


def _activation(op_type: str) -> Callable[[Layer, OnnxGraph, list[str]], str]:
    def convert(layer: Layer, graph: OnnxGraph, inputs: list[str]) -> str:
        return graph.node(op_type, inputs)

    return convert


def concat(layer: Concat, graph: OnnxGraph, inputs: list[str]) -> str:
    return graph.node("Concat", inputs, axis=layer.axis)


CONVERTERS: dict[type[Layer], Callable[..., str]] = {
    Add: _elementwise("Add"),
    Affine: affine,
    AvgPool2d: avg_pool2d,
    BatchNorm: batch_norm,
    Concat: concat,
    Conv2d: conv2d,
    Dropout: dropout,
    Flatten: flatten,
    GlobalAvgPool2d: global_avg_pool2d,
    MaxPool2d: max_pool2d,
    Mul: _elementwise("Mul"),
    ReLU: _activation("Relu"),
    Sigmoid: _activation("Sigmoid"),
    Tanh: _activation("Tanh"),
}


def batchnorm_scale_shift(bn: BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm at inference as y = x * scale + shift per channel, in float64."""
    var = bn.buffers["running_var"].astype(np.float64)
    scale = bn.params["gamma"].astype(np.float64) / np.sqrt(var + bn.eps)
    shift = bn.params["beta"].astype(np.float64) - bn.buffers["running_mean"] * scale
    return scale, shift
