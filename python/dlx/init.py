"""Weight initialisation: plain normal, LeCun, Glorot (Xavier), He, and PyTorch's uniform default.

The scale of the initial weights decides whether activations keep a useful spread through
many layers: LeCun and Glorot suit symmetric activations (sigmoid, tanh), He suits ReLU. Behind
BatchNorm the scale of a layer's weights no longer changes its output, but it still sets how
far a fixed-size optimizer step (Adam's) turns them: smaller weights learn faster.

Two names are easily confused. The book's "Xavier initialisation" uses std 1/sqrt(n) with n
the fan-in: that is LeCun's, :func:`lecun`. Glorot and Bengio's own (the one frameworks call
Xavier) averages fan-in and fan-out, std sqrt(2 / (fan_in + fan_out)): :func:`glorot`, also
available as :func:`xavier`. The two agree when fan_in == fan_out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._random import get_rng
from .errors import DlxValueError

__all__ = ["glorot", "he", "initializer", "lecun", "normal", "uniform", "xavier"]


def normal(shape, std: float = 0.01, *, rng=None, dtype=np.float32, **_fans) -> np.ndarray:
    """Gaussian weights with a fixed standard deviation (the book's ``0.01 * randn``)."""
    rng = get_rng() if rng is None else rng
    return (rng.standard_normal(shape) * std).astype(dtype)


def lecun(shape, fan_in: int, fan_out: int = 0, *, rng=None, dtype=np.float32) -> np.ndarray:
    """LeCun normal: std = 1 / sqrt(fan_in), for sigmoid and tanh (the book's "Xavier")."""
    return normal(shape, np.sqrt(1.0 / fan_in), rng=rng, dtype=dtype)


def glorot(shape, fan_in: int, fan_out: int, *, rng=None, dtype=np.float32) -> np.ndarray:
    """Glorot (Xavier) normal: std = sqrt(2 / (fan_in + fan_out)), for sigmoid and tanh.

    It keeps the variance of the activations (fan-in) and of the gradients (fan-out) as
    close to constant as one scale can; with fan_in == fan_out it equals :func:`lecun`.
    """
    return normal(shape, np.sqrt(2.0 / (fan_in + fan_out)), rng=rng, dtype=dtype)


xavier = glorot  # the name most frameworks use; existing configs say "xavier"


def he(shape, fan_in: int, fan_out: int = 0, *, rng=None, dtype=np.float32) -> np.ndarray:
    """He normal: std = sqrt(2 / fan_in), for ReLU."""
    return normal(shape, np.sqrt(2.0 / fan_in), rng=rng, dtype=dtype)


def uniform(shape, fan_in: int, fan_out: int = 0, *, rng=None, dtype=np.float32) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear and Conv2d weights
    (kaiming_uniform with a = sqrt(5)), std = 1/sqrt(3 * fan_in)."""
    rng = get_rng() if rng is None else rng
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(dtype)


# The names a layer's ``weight_init`` accepts; "xavier" is an alias of "glorot".
INITIALIZERS = {"he": he, "lecun": lecun, "glorot": glorot, "xavier": xavier, "uniform": uniform}


def initializer(spec) -> Callable[..., np.ndarray]:
    """The init function a layer's ``weight_init`` names: "he", "lecun", "glorot" (alias
    "xavier"), "uniform", or a float std."""
    if isinstance(spec, str) and spec in INITIALIZERS:
        return INITIALIZERS[spec]
    if isinstance(spec, (int, float)) and not isinstance(spec, bool) and 0 < spec < float("inf"):
        std = float(spec)
        return lambda shape, fan_in, fan_out, *, rng=None, dtype=np.float32: normal(
            shape, std, rng=rng, dtype=dtype
        )
    names = ", ".join(repr(name) for name in INITIALIZERS)
    raise DlxValueError(f"weight_init must be {names} or a positive, finite std, got {spec!r}")
