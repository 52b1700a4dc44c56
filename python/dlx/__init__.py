"""dlx: deep learning from scratch, readable NumPy layers on fast C++ kernels.

The pieces, in the order a course meets them:

- :mod:`dlx.functional`: activations, softmax, losses
- :mod:`dlx.gradcheck`: numerical differentiation, gradient descent, gradient checks
- :mod:`dlx.graph`: Add and Mul nodes of a computational graph
- :mod:`dlx.layers`: layers with forward and backward (``dlx.Layer`` is their base)
- :mod:`dlx.optim` and :mod:`dlx.init`: optimizers and weight initialisation
- :class:`dlx.Sequential`, :class:`dlx.Model` (graphs wired from :func:`dlx.Input`),
  :mod:`dlx.models` and :class:`dlx.Trainer`: networks and training
- :mod:`dlx.ops`: the convolution and pooling kernels (C++, with a NumPy reference)
- :mod:`dlx.onnx`: export to ONNX and import from it
- :mod:`dlx.distributed`: data-parallel training over MPI
- :func:`dlx.show_config`: the version, the CPU level the kernels run at, the build and BLAS
- :mod:`dlx.errors`: :class:`dlx.DlxError`, the base of the errors dlx raises for a mistake
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import (
    config,
    datasets,
    distributed,
    errors,
    functional,
    gradcheck,
    graph,
    init,
    layers,
    models,
    onnx,
    ops,
    optim,
    testing,
    threads,
    tune,
)
from ._random import get_rng, seed
from .checkpoint import CheckpointError, load, save
from .config import show_config
from .errors import DlxError
from .layers import Input, Layer
from .model import Model
from .network import Network, Sequential
from .registry import build_layer, get_layer, list_layers, refresh_plugins, register_layer
from .trainer import Trainer

try:
    __version__ = version(config.DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "CheckpointError",
    "DlxError",
    "Input",
    "Layer",
    "Model",
    "Network",
    "Sequential",
    "Trainer",
    "__version__",
    "build_layer",
    "config",
    "datasets",
    "distributed",
    "errors",
    "functional",
    "get_layer",
    "get_rng",
    "gradcheck",
    "graph",
    "init",
    "layers",
    "list_layers",
    "load",
    "models",
    "onnx",
    "ops",
    "optim",
    "refresh_plugins",
    "register_layer",
    "save",
    "seed",
    "show_config",
    "testing",
    "threads",
    "tune",
]
