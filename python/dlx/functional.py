"""Activation functions, output functions and losses, vectorised and dtype-preserving.

Every function accepts a batch (leading axis N) as well as a single sample, and returns the
input's floating dtype. Classes index the last axis.
"""

from __future__ import annotations

import numpy as np

from .errors import DlxTypeError, DlxValueError

__all__ = [
    "cross_entropy",
    "identity",
    "log_softmax",
    "mse",
    "nll_loss",
    "relu",
    "rmse",
    "sigmoid",
    "softmax",
    "step",
    "tanh",
]


def _float(x) -> np.ndarray:
    """x as an array; integer input becomes float64, floating input keeps its dtype."""
    x = np.asarray(x)
    if x.dtype.kind in "fc":
        return x
    if x.dtype.kind in "biu":
        return x.astype(np.float64)
    raise DlxTypeError(f"expected a numeric array, got dtype {x.dtype}")


def step(x):
    """1 where x > 0, else 0 (the perceptron's activation), in x's dtype."""
    x = _float(x)
    return (x > 0).astype(x.dtype)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed as exp(-log(1 + exp(-x))) so no |x| overflows.

    sigmoid(-inf) = 0, sigmoid(inf) = 1, and NaN stays NaN.
    """
    x = _float(x)
    with np.errstate(invalid="ignore"):  # NaN in, NaN out, without a warning
        return np.exp(-np.logaddexp(0, -x))


def tanh(x):
    """Hyperbolic tangent, symmetric around 0 (unlike the sigmoid)."""
    return np.tanh(_float(x))


def relu(x):
    """max(0, x) elementwise."""
    return np.maximum(_float(x), 0)


def identity(x):
    """x unchanged: the output function for regression."""
    return _float(x)


def _shifted(x: np.ndarray) -> np.ndarray:
    """x minus its row maximum, so that exp never overflows.

    A row whose maximum is +inf is taken to the limit instead: its +inf entries become 0 and
    every other entry -inf, so they share the probability. A row holding NaN stays NaN.
    """
    top = np.max(x, axis=-1, keepdims=True)
    infinite = np.isposinf(top)
    # A difference that overflows to -inf is exact enough: exp of it is 0 either way.
    with np.errstate(over="ignore", invalid="ignore"):
        if not infinite.any():
            return x - top
        limit = np.where(np.isposinf(x), x.dtype.type(0), x.dtype.type(-np.inf))
        return np.where(infinite, limit, x - top)


def softmax(x):
    """exp(x) / sum(exp(x)) over the last axis.

    The row maximum is subtracted first: it cancels in the ratio and keeps exp from
    overflowing, so finite inputs never warn. A row holding NaN gives NaN; a row holding
    +inf splits the probability among its +inf entries; a row of only -inf gives NaN (it
    describes no distribution).
    """
    x = _float(x)
    with np.errstate(invalid="ignore"):
        e = np.exp(_shifted(x))
        return e / np.sum(e, axis=-1, keepdims=True)


def log_softmax(x):
    """log(softmax(x)) as x - logsumexp(x): finite wherever softmax would round to 0.

    The same special values as :func:`softmax`, in log form.
    """
    x = _float(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        shifted = _shifted(x)
        return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def mse(y, t, reduction: str = "half_sum"):
    """Mean squared error between prediction y and target t (same shape).

    ``reduction="half_sum"`` is the book's ``0.5 * sum((y - t)**2)``, whose gradient is
    simply ``y - t``; ``"mean"`` is ``mean((y - t)**2)``.
    """
    y, t = _float(y), _float(t)
    if y.shape != t.shape:
        raise DlxValueError(f"y and t must have the same shape, got {y.shape} and {t.shape}")
    if reduction == "half_sum":
        return 0.5 * np.sum((y - t) ** 2)
    if reduction == "mean":
        if y.size == 0:
            raise DlxValueError(
                f"the mean squared error of empty arrays is undefined, got shape {y.shape}"
            )
        return np.mean((y - t) ** 2)
    raise DlxValueError(f"reduction must be 'half_sum' or 'mean', got {reduction!r}")


def rmse(y, t):
    """Root mean squared error ``sqrt(mean((y - t)**2))``, in the units of y.

    The mean runs over every element; for an (N, K) array, scikit-learn's
    ``root_mean_squared_error`` averages the K per-column RMSEs instead.
    """
    return np.sqrt(mse(y, t, reduction="mean"))


def _targets(t, y: np.ndarray) -> np.ndarray:
    """Targets t for scores y (N, K): integer labels (N,), or rows (N, K) of one-hot or soft
    probabilities (returned as an (N, K) float array)."""
    t = np.asarray(t)
    n, k = y.shape
    if t.shape == (n, k) or (n == 1 and k > 1 and t.shape == (k,)):
        return t.reshape(n, k).astype(y.dtype, copy=False)
    if t.dtype.kind not in "iu":
        raise DlxTypeError(
            f"t must hold integer labels of shape ({n},) or one-hot rows of shape {y.shape}, "
            f"got dtype {t.dtype} and shape {t.shape}"
        )
    t = t.reshape(1) if t.ndim == 0 else t
    if t.shape != (n,):
        raise DlxValueError(f"t must have shape ({n},) or {y.shape}, got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= k):
        raise DlxValueError(f"labels in t must lie in [0, {k}), got [{t.min()}, {t.max()}]")
    return t


def _batch(y) -> np.ndarray:
    y = _float(y)
    if y.ndim == 1:
        return y[None, :]
    if y.ndim != 2:
        raise DlxValueError(f"expected scores of shape (N, K) or (K,), got shape {y.shape}")
    return y


def nll_loss(log_probs, t):
    """Negative log-likelihood: -mean over the batch of log_probs[i, t_i] (NaN if any
    log-probability is NaN)."""
    log_probs = _batch(log_probs)
    t = _targets(t, log_probs)
    n = log_probs.shape[0]
    if np.isnan(log_probs).any():  # a NaN anywhere means the scores are broken: say so
        return log_probs.dtype.type(np.nan)
    if t.ndim == 2:
        return -np.sum(t * log_probs) / max(n, 1)
    return -np.sum(log_probs[np.arange(n), t]) / max(n, 1)


def cross_entropy(y, t, eps: float = 1e-7):
    """Cross-entropy of probabilities y (N, K) or (K,) against labels or one-hot (or soft) rows t.

    Averaged over the batch. Probabilities below ``eps`` are raised to it first, so a
    confident wrong answer costs at most -log(eps) instead of infinity. A NaN anywhere in y
    gives a NaN loss: it is never silently replaced by a number.
    """
    y = _batch(y)
    t = _targets(t, y)
    n = y.shape[0]
    if np.isnan(y).any():  # a NaN anywhere means the probabilities are broken: say so
        return y.dtype.type(np.nan)
    log_y = np.log(np.maximum(y, y.dtype.type(eps)))
    if t.ndim == 2:
        return -np.sum(t * log_y) / max(n, 1)
    return -np.sum(log_y[np.arange(n), t]) / max(n, 1)
