"""The random number generator dlx draws from: one ``dlx.seed(n)`` makes a run reproducible.

Layers draw their initial weights, Dropout its masks and the Trainer its shuffles from the
generator returned by :func:`get_rng`, unless they are handed a generator of their own.
"""

from __future__ import annotations

import numpy as np

from .errors import DlxTypeError

_rng = np.random.default_rng()


def seed(n: int) -> None:
    """Reset dlx's generator to seed ``n``: the same seed gives the same initialisation,
    shuffles and dropout masks."""
    global _rng
    _rng = np.random.default_rng(n)


def get_rng() -> np.random.Generator:
    """The generator dlx draws from (replaced, not mutated, by :func:`seed`)."""
    return _rng


def rng_or_default(rng: object, name: str = "rng") -> np.random.Generator:
    """``rng`` if it is a numpy Generator, dlx's generator if it is None."""
    if rng is None:
        return _rng
    if not isinstance(rng, np.random.Generator):
        raise DlxTypeError(
            f"{name} must be a numpy.random.Generator or None, got {type(rng).__name__}"
        )
    return rng
