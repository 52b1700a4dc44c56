"""Weight initialisation: plain normal, Xavier (Glorot) and He.

The scale of the initial weights decides whether activations keep a useful spread through
many layers: Xavier suits symmetric activations (sigmoid, tanh), He suits ReLU.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._random import get_rng

__all__ = ["he", "initializer", "normal", "xavier"]


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


def initializer(spec) -> Callable[..., np.ndarray]:
    """The init function a layer's ``weight_init`` names: "he", "xavier", or a float std."""
    if spec == "he":
        return he
    if spec == "xavier":
        return xavier
    if isinstance(spec, (int, float)) and not isinstance(spec, bool) and spec > 0:
        std = float(spec)
        return lambda shape, fan_in, fan_out, *, rng=None, dtype=np.float32: normal(
            shape, std, rng=rng, dtype=dtype
        )
    raise ValueError(f"weight_init must be 'he', 'xavier' or a positive std, got {spec!r}")
