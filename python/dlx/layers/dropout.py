"""Dropout."""

from __future__ import annotations

import numpy as np

from .._random import get_rng, rng_or_default
from ..errors import DlxValueError
from .base import Layer, cached, check_input


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    survivors by 1 / (1 - p), so the expected output equals the input and inference
    (``train=False``) is the identity, with no rescaling.

    Masks come from ``rng`` if given, else from dlx's generator (see :func:`dlx.seed`).
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p < 1.0:
            raise DlxValueError(f"p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
        if rng is not None:
            rng_or_default(rng)  # refuses anything but a Generator now, not at the first batch
        self.rng = rng
        self.mask: np.ndarray | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, tuple(range(1, 9)), "an array with a batch axis")
        if not train or self.p == 0.0:
            self.mask = 1.0  # the identity: backward passes the gradient through
            return x
        rng = get_rng() if self.rng is None else self.rng
        keep = rng.random(x.shape, dtype=x.dtype if x.dtype == np.float32 else np.float64) >= self.p
        self.mask = keep * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self.mask

    def backward(self, dout):
        mask = cached(self, self.mask)
        return dout if isinstance(mask, float) else dout * mask
