"""Batch normalisation."""

from __future__ import annotations

import numpy as np

from ..ops import _checks
from .base import Layer, check_input


class BatchNorm(Layer):
    """Normalise each feature over the batch, then scale by gamma and shift by beta.

    Input (N, D) is normalised per feature; input (N, C, H, W) per channel, over N, H and W
    together (the statistics of a convolution's channel, not of each pixel).

    Training uses the batch's mean and (biased) variance and updates the running statistics
    as ``running = momentum * running + (1 - momentum) * batch``; ``train=False`` uses the
    running statistics instead.
    """

    def __init__(
        self, num_features: int, momentum: float = 0.9, eps: float = 1e-5, dtype=np.float32
    ) -> None:
        super().__init__()
        self.num_features = _checks.integer(num_features, "num_features", 1)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.momentum, self.eps = float(momentum), float(eps)
        dtype = np.dtype(dtype)
        self.params["gamma"] = np.ones(num_features, dtype=dtype)
        self.params["beta"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=dtype)
        self.cache: tuple | None = None

    def _as_rows(self, x: np.ndarray) -> np.ndarray:
        """(N, D) as is; (N, C, H, W) as (N*H*W, C), one row per pixel."""
        if x.ndim == 2:
            return x
        return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])

    def _from_rows(self, rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if len(shape) == 2:
            return rows
        n, c, h, w = shape
        return np.ascontiguousarray(rows.reshape(n, h, w, c).transpose(0, 3, 1, 2))

    def forward(self, x, train=True):
        x = check_input(self, x, (2, 4), f"(N, {self.num_features}) or (N, {self.num_features}, H, W)")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm expects {self.num_features} features, got shape {x.shape}")
        rows = self._as_rows(x)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if train:
            if rows.shape[0] == 0:
                raise ValueError("BatchNorm cannot compute batch statistics of an empty batch")
            mean = rows.mean(axis=0)
            centred = rows - mean
            var = np.mean(centred**2, axis=0)
            std = np.sqrt(var + self.eps)
            normed = centred / std
            self.cache = (normed, std, x.shape)
            m = self.momentum
            self.buffers["running_mean"] *= m
            self.buffers["running_mean"] += (1 - m) * mean
            self.buffers["running_var"] *= m
            self.buffers["running_var"] += (1 - m) * var
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
            normed = (rows - mean) / np.sqrt(var + self.eps)
        return self._from_rows(gamma * normed + beta, x.shape)

    def backward(self, dout):
        normed, std, shape = self.cache
        d_rows = self._as_rows(dout)
        n = d_rows.shape[0]
        self.grads["beta"] = d_rows.sum(axis=0)
        self.grads["gamma"] = np.sum(normed * d_rows, axis=0)
        d_normed = self.params["gamma"] * d_rows
        # The three paths from x to the loss: through x directly, the mean and the variance.
        dx = (n * d_normed - d_normed.sum(axis=0) - normed * np.sum(d_normed * normed, axis=0))
        return self._from_rows(dx / (n * std), shape)
