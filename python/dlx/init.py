"""Weight initialisation: plain normal, Xavier (Glorot), He, and PyTorch's uniform default.

The scale of the initial weights decides whether activations keep a useful spread through
many layers: Xavier suits symmetric activations (sigmoid, tanh), He suits ReLU. Behind
BatchNorm the scale of a layer's weights no longer changes its output, but it still sets how
far a fixed-size optimizer step (Adam's) turns them: smaller weights learn faster.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._random import get_rng
from .errors import DlxValueError

__all__ = ["he", "initializer", "normal", "uniform", "xavier"]


def normal(shape, std: float = 0.01, *, rng=None, dtype=np.float32, **_fans) -> np.ndarray:
    """Gaussian weights with a fixed standard deviation (the book's ``0.01 * randn``)."""
    rng = get_rng() if rng is None else rng
    return (rng.standard_normal(shape) * std).astype(dtype)


def xavier(shape, fan_in: int, fan_out: int, *, rng=None, dtype=np.float32) -> np.ndarray:
    """Glorot normal: std = sqrt(2 / (fan_in + fan_out)), for sigmoid and tanh."""
    return normal(shape, np.sqrt(2.0 / (fan_in + fan_out)), rng=rng, dtype=dtype)


def he(shape, fan_in: int, fan_out: int = 0, *, rng=None, dtype=np.float32) -> np.ndarray:
    """He normal: std = sqrt(2 / fan_in), for ReLU."""
    return normal(shape, np.sqrt(2.0 / fan_in), rng=rng, dtype=dtype)


def uniform(shape, fan_in: int, fan_out: int = 0, *, rng=None, dtype=np.float32) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear and Conv2d weights
    (kaiming_uniform with a = sqrt(5)), std = 1/sqrt(3 * fan_in)."""
    rng = get_rng() if rng is None else rng
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(dtype)


INITIALIZERS = {"he": he, "xavier": xavier, "uniform": uniform}


def initializer(spec) -> Callable[..., np.ndarray]:
    """The init function a layer's ``weight_init`` names: "he", "xavier", "uniform", or a
    float std."""
    if isinstance(spec, str) and spec in INITIALIZERS:
        return INITIALIZERS[spec]
    if isinstance(spec, (int, float)) and not isinstance(spec, bool) and 0 < spec < float("inf"):
        std = float(spec)
        return lambda shape, fan_in, fan_out, *, rng=None, dtype=np.float32: normal(
            shape, std, rng=rng, dtype=dtype
        )
    raise DlxValueError(
        f"weight_init must be 'he', 'xavier', 'uniform' or a positive, finite std, got {spec!r}"
    )
