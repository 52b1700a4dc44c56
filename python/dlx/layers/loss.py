"""Loss layers: the last step of a network, from scores and targets to one number."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..errors import DlxValueError


class Loss:
    """A loss takes the network's output y and the targets t and returns a scalar;
    ``backward(dout=1)`` returns dL/dy."""

    def forward(self, y: np.ndarray, t: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self, dout: float = 1.0) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, y, t):
        return self.forward(y, t)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SoftmaxWithLoss(Loss):
    """Softmax followed by cross-entropy, averaged over the batch.

    Targets are integer labels (N,) or one-hot rows (N, K). Together the two have the
    simple gradient (softmax(x) - t) / N, which is why they form one layer. The loss is
    computed from log_softmax, so it stays finite however confident the scores.
    """

    def __init__(self) -> None:
        self.probs: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x, t):
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            raise DlxValueError(
                f"SoftmaxWithLoss expects scores (N, K), got {getattr(x, 'shape', x)}"
            )
        self.t = F._targets(t, x)
        self.probs = F.softmax(x)
        return float(F.nll_loss(F.log_softmax(x), self.t))

    def backward(self, dout=1.0):
        n = self.probs.shape[0]
        dx = self.probs.copy()
        if self.t.ndim == 2:
            dx -= self.t
        else:
            dx[np.arange(n), self.t] -= 1
        return dx * dx.dtype.type(dout / max(n, 1))


class MeanSquaredError(Loss):
    """0.5 * sum((y - t)^2) / N: the book's squared error averaged over the batch."""

    def __init__(self) -> None:
        self.diff: np.ndarray | None = None

    def forward(self, y, t):
        t = np.asarray(t, dtype=y.dtype)
        if t.shape != y.shape:
            raise DlxValueError(f"MeanSquaredError needs t of shape {y.shape}, got {t.shape}")
        self.diff = y - t
        return float(0.5 * np.sum(self.diff**2) / max(y.shape[0], 1))

    def backward(self, dout=1.0):
        return self.diff * self.diff.dtype.type(dout / max(self.diff.shape[0], 1))
