"""Builders of the classic networks of the course."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .errors import DlxValueError
from .layers import (
    Add,
    Affine,
    BatchNorm,
    Conv2d,
    Dropout,
    GlobalAvgPool2d,
    Input,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from .layers.base import Layer
from .layers.node import Node
from .model import Model
from .network import Sequential

__all__ = ["deep_conv_net", "mlp", "resnet", "simple_conv_net"]

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


def _conv_bn(x: Node, name: str, c_in: int, c_out: int, k: int, stride: int, **kw) -> Node:
    """Conv (no bias: the BatchNorm after it would cancel one) then BatchNorm."""
    h = Conv2d(c_in, c_out, k, stride, k // 2, bias=False, **kw)(x, name=f"{name}.conv")
    return BatchNorm(c_out, dtype=kw["dtype"])(h, name=f"{name}.bn")


def _basic_block(x: Node, name: str, c_in: int, c_out: int, stride: int, **kw) -> Node:
    """Two 3x3 convolutions and a shortcut, added before the last ReLU. Where the block
    changes the shape (stride 2, more channels), the shortcut is a 1x1 convolution."""
    h = ReLU()(_conv_bn(x, f"{name}.1", c_in, c_out, 3, stride, **kw), name=f"{name}.relu1")
    h = _conv_bn(h, f"{name}.2", c_out, c_out, 3, 1, **kw)
    if stride == 1 and c_in == c_out:
        shortcut = x
    else:
        shortcut = _conv_bn(x, f"{name}.shortcut", c_in, c_out, 1, stride, **kw)
    return ReLU()(Add()(h, shortcut, name=f"{name}.add"), name=f"{name}.relu2")


def resnet(
    depth: int = 20,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
    width: int = 16,
    weight_init="he",
    weight_decay: float = 0.0,
    dtype=np.float32,
) -> Model:
    """The CIFAR ResNet of He et al. (2016): depth = 6n + 2 layers with weights on the main
    path. A 3x3 convolution, then three stages of n basic blocks with width, 2 x width and 4 x
    width channels (the second and third start with stride 2 and a 1x1 projection shortcut,
    the paper's option B), global average pooling and one Affine layer. ``resnet(20)`` is ResNet-20 (n = 3, 0.27 M
    parameters at width 16). Parameters are named by place: ``stage2.block1.1.conv.W``."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise DlxValueError(
            f"depth must be 6n + 2 for n >= 1 (8, 14, 20, 32, 56, ...), got {depth!r}"
        )
    blocks = (depth - 2) // 6
    x = Input(input_shape, name="image")
    kw = {"weight_init": weight_init, "dtype": dtype}
    h = ReLU()(_conv_bn(x, "stem", input_shape[0], width, 3, 1, **kw), name="stem.relu")
    channels = width
    for stage in (1, 2, 3):
        out = width * 2 ** (stage - 1)
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            h = _basic_block(h, f"stage{stage}.block{block}", channels, out, stride, **kw)
            channels = out
    h = GlobalAvgPool2d()(h, name="pool")
    y = Affine(channels, num_classes, **kw)(h, name="fc")
    return Model(x, y, weight_decay=weight_decay)
