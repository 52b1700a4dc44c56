"""Shuffling, hold-out and k-fold splits, and mini-batch iteration."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .._random import get_rng
from ..errors import DlxValueError

__all__ = ["iterate_minibatches", "kfold_indices", "shuffle", "train_val_split"]


def _check_pair(x, t):
    if len(x) != len(t):
        raise DlxValueError(f"x has {len(x)} samples but t has {len(t)}")


def shuffle(x, t, rng: np.random.Generator | None = None):
    """x and t in the same random order."""
    _check_pair(x, t)
    order = (get_rng() if rng is None else rng).permutation(len(x))
    return x[order], t[order]


def train_val_split(x, t, val_fraction: float = 0.2, rng: np.random.Generator | None = None):
    """``(x_train, t_train), (x_val, t_val)`` after a shuffle: hold out ``val_fraction``."""
    _check_pair(x, t)
    if not 0.0 < val_fraction < 1.0:
        raise DlxValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    x, t = shuffle(x, t, rng)
    n_val = max(1, round(len(x) * val_fraction))
    if n_val >= len(x):
        raise DlxValueError(f"cannot hold out {n_val} of {len(x)} samples")
    return (x[n_val:], t[n_val:]), (x[:n_val], t[:n_val])


def kfold_indices(
    n: int, k: int, rng: np.random.Generator | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train indices, validation indices) pairs; every sample validates exactly once."""
    if not isinstance(k, int) or k < 2 or k > n:
        raise DlxValueError(f"k must be an int in [2, n={n}], got {k!r}")
    order = (get_rng() if rng is None else rng).permutation(n)
    folds = np.array_split(order, k)
    return [(np.concatenate(folds[:i] + folds[i + 1 :]), folds[i]) for i in range(k)]


def iterate_minibatches(
    x, t, batch_size: int, shuffle: bool = True, rng: np.random.Generator | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Mini-batches of ``batch_size`` (the last may be smaller), each sample once."""
    _check_pair(x, t)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DlxValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    order = (
        (get_rng() if rng is None else rng).permutation(len(x)) if shuffle else np.arange(len(x))
    )
    for start in range(0, len(x), batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], t[idx]
