"""Builders of the classic networks of the course."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .errors import DlxValueError
from .layers import Affine, BatchNorm, Conv2d, Dropout, MaxPool2d, ReLU, Sigmoid, Tanh
from .layers.base import Layer
from .network import Sequential

__all__ = ["deep_conv_net", "mlp", "simple_conv_net"]

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}
# He suits ReLU; Xavier suits the symmetric, saturating activations.
DEFAULT_INIT = {"relu": "he", "sigmoid": "xavier", "tanh": "xavier"}


def _shape_after(layers: Sequence[Layer], input_shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    for layer in layers:
        shape = layer.output_shape(shape)
    return shape


def mlp(
    input_size: int,
    hidden_sizes: Sequence[int],
    output_size: int,
    activation: str = "relu",
    weight_init=None,
    batchnorm: bool = False,
    dropout: float = 0.0,
    weight_decay: float = 0.0,
    dtype=np.float32,
) -> Sequential:
    """A multi-layer perceptron: [Affine - (BatchNorm) - activation - (Dropout)] per hidden
    layer, then Affine to ``output_size`` scores, scored by SoftmaxWithLoss."""
    if activation not in ACTIVATIONS:
        raise DlxValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    weight_init = DEFAULT_INIT[activation] if weight_init is None else weight_init
    layers: list[Layer] = []
    sizes = [input_size, *hidden_sizes]
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers.append(Affine(fan_in, fan_out, weight_init=weight_init, dtype=dtype))
        if batchnorm:
            layers.append(BatchNorm(fan_out, dtype=dtype))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Affine(sizes[-1], output_size, weight_init=weight_init, dtype=dtype))
    return Sequential(layers, weight_decay=weight_decay)


def simple_conv_net(
    input_shape: tuple[int, int, int] = (1, 28, 28),
    filters: int = 30,
    kernel_size: int = 5,
    stride: int = 1,
    padding: int = 0,
    hidden_size: int = 100,
    output_size: int = 10,
    weight_init="he",
    weight_decay: float = 0.0,
    dtype=np.float32,
) -> Sequential:
    """The book's SimpleConvNet: Conv(30 5x5) - ReLU - MaxPool 2x2 - Affine(100) - ReLU -
    Affine(10), scored by SoftmaxWithLoss."""
    features = [
        Conv2d(
            input_shape[0],
            filters,
            kernel_size,
            stride,
            padding,
            weight_init=weight_init,
            dtype=dtype,
        ),
        ReLU(),
        MaxPool2d(2),
    ]
    flat = int(np.prod(_shape_after(features, input_shape)))
    return Sequential(
        [
            *features,
            Affine(flat, hidden_size, weight_init=weight_init, dtype=dtype),
            ReLU(),
            Affine(hidden_size, output_size, weight_init=weight_init, dtype=dtype),
        ],
        weight_decay=weight_decay,
    )


def deep_conv_net(
    input_shape: tuple[int, int, int] = (1, 28, 28),
    output_size: int = 10,
    hidden_size: int = 50,
    dropout: float = 0.5,
    batchnorm: bool = False,
    weight_init="he",
    weight_decay: float = 0.0,
    dtype=np.float32,
) -> Sequential:
    """The book's DeepConvNet: six 3x3 convolutions (16, 16, 32, 32, 64, 64 filters) with
    ReLU and a 2x2 max pool after every second one, then Affine(50) - ReLU - Dropout -
    Affine(10). The fourth convolution pads by 2, as in the book, so 28x28 inputs end at
    4x4. ``batchnorm=True`` adds BatchNorm after every convolution (whose bias it
    makes redundant, so those convolutions have none). ``weight_init`` applies to every
    convolution and Affine layer (see :mod:`dlx.init`)."""
    layers: list[Layer] = []
    channels = input_shape[0]
    for i, (filters, pad) in enumerate([(16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)]):
        layers.append(
            Conv2d(
                channels,
                filters,
                3,
                1,
                pad,
                weight_init=weight_init,
                bias=not batchnorm,
                dtype=dtype,
            )
        )
        if batchnorm:
            layers.append(BatchNorm(filters, dtype=dtype))
        layers.append(ReLU())
        if i % 2 == 1:
            layers.append(MaxPool2d(2))
        channels = filters
    flat = int(np.prod(_shape_after(layers, input_shape)))
    layers += [Affine(flat, hidden_size, weight_init=weight_init, dtype=dtype), ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Affine(hidden_size, output_size, weight_init=weight_init, dtype=dtype))
    return Sequential(layers, weight_decay=weight_decay)
