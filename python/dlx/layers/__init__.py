"""Network layers. Each derives from :class:`Layer`: ``forward(x, train)``, ``backward(dout)``,
``params`` and ``grads``."""

from .activation import ReLU, Sigmoid, Tanh
from .base import Layer
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .dropout import Dropout
from .linear import Affine, Flatten
from .loss import Loss, MeanSquaredError, SoftmaxWithLoss
from .normalization import BatchNorm

__all__ = [
    "Affine",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Layer",
    "Loss",
    "MaxPool2d",
    "MeanSquaredError",
    "ReLU",
    "Sigmoid",
    "SoftmaxWithLoss",
    "Tanh",
]
