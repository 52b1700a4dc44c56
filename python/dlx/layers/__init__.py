"""Network layers. Each derives from :class:`Layer`: ``forward(x, train)``, ``backward(dout)``,
``params`` and ``grads``."""

from .activation import ReLU, Sigmoid, Tanh
from .base import Layer
from .conv import AvgPool2d, Conv2d, GlobalAvgPool2d, MaxPool2d
from .dropout import Dropout
from .linear import Affine, Flatten
from .loss import Loss, MeanSquaredError, SoftmaxWithLoss
from .merge import Add, Concat, Merge, Mul
from .node import Input, Node
from .normalization import BatchNorm

__all__ = [
    "Add",
    "Affine",
    "AvgPool2d",
    "BatchNorm",
    "Concat",
    "Conv2d",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2d",
    "Input",
    "Layer",
    "Loss",
    "MaxPool2d",
    "MeanSquaredError",
    "Merge",
    "Mul",
    "Node",
    "ReLU",
    "Sigmoid",
    "SoftmaxWithLoss",
    "Tanh",
]
