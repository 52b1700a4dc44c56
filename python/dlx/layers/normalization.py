"""Batch normalisation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import ops
from ..errors import DlxValueError
from ..ops import _checks
from .base import Layer, cached, check_input


class BatchNorm(Layer):
    """Normalise each feature over the batch, then scale by gamma and shift by beta.

    Input (N, D) is normalised per feature; input (N, C, H, W) per channel, over N, H and W
    together (the statistics of a convolution's channel, not of each pixel).

    Training uses the batch's mean and (biased) variance and updates the running statistics
    as ``running = momentum * running + (1 - momentum) * batch``; ``train=False`` uses the
    running statistics instead, folded into one scale and shift per channel
    (``batch_norm_inference``). The per-channel sums run on :mod:`dlx.ops`
    (``batch_norm_stats``, ``batch_norm_apply``, ``batch_norm_backward``), whose NumPy
    reference spells out the formulas.

    In data-parallel training each process holds a shard of the batch. ``sync``, when set
    (``Trainer(..., sync_batchnorm=True)`` sets it), is a function that sums an array over
    the processes: the batch statistics and the sums backward needs are then those of the
    whole batch, as one process would compute them (synchronised BatchNorm).
    """

    fresh_inference_output = True
    infers_in_place = True
    applies_relu = True

    def __init__(
        self, num_features: int, momentum: float = 0.9, eps: float = 1e-5, dtype=np.float32
    ) -> None:
        super().__init__()
        self.num_features = _checks.integer(num_features, "num_features", 1)
        momentum = _checks.finite_number(momentum, "momentum")
        eps = _checks.finite_number(eps, "eps")
        if not 0.0 <= momentum < 1.0:
            raise DlxValueError(f"momentum must lie in [0, 1), got {momentum}")
        if not eps > 0:
            raise DlxValueError(f"eps must be positive, got {eps}")
        self.momentum, self.eps = momentum, eps
        dtype = _checks.float_dtype(dtype)
        self.params["gamma"] = np.ones(num_features, dtype=dtype)
        self.params["beta"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=dtype)
        self.cache: tuple | None = None
        self.sync: Callable[[np.ndarray], np.ndarray] | None = None

    @classmethod
    def state_shapes(cls, args):
        c = (_checks.integer(args["num_features"], "num_features", 1),)
        return {
            "params": {"gamma": c, "beta": c},
            "buffers": {"running_mean": c, "running_var": c},
        }

    def multiply_adds(self, input_shape, output_shape):
        return 0  # a scale and shift per element, not a product with the input (as in summary)

    def _inv_std(self, var: np.ndarray) -> np.ndarray:
        return (1.0 / np.sqrt(var + var.dtype.type(self.eps))).astype(var.dtype)

    def forward(self, x, train=True, inplace=False, relu=False):
        x = check_input(
            self, x, (2, 4), f"(N, {self.num_features}) or (N, {self.num_features}, H, W)"
        )
        if x.shape[1] != self.num_features:
            raise DlxValueError(
                f"BatchNorm expects {self.num_features} features, got shape {x.shape}"
            )
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not train:
            self.cache = None
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
            y = ops.batch_norm_inference(x, mean, var, gamma, beta, self.eps, inplace=inplace)
            return ops.relu(y, inplace=True) if relu else y
        if x.shape[0] == 0:
            raise DlxValueError("BatchNorm cannot compute batch statistics of an empty batch")
        x = np.ascontiguousarray(x)
        mean, var = ops.batch_norm_stats(x) if self.sync is None else self._synced_stats(x)
        inv_std = self._inv_std(var)
        self.cache = (x, mean, inv_std)
        m = x.dtype.type(self.momentum)
        for name, batch in (("running_mean", mean), ("running_var", var)):
            running = self.buffers[name]
            running *= m
            running += (1 - m) * batch
        return ops.batch_norm_apply(x, mean, inv_std, gamma, beta, relu=relu)

    def backward(self, dout, relu_output=None):
        x, mean, inv_std = cached(self, self.cache)
        if self.sync is not None:
            if relu_output is not None:
                dout = ops.relu_backward(dout, relu_output)
            return self._synced_backward(dout, x, mean, inv_std)
        dx, self.grads["gamma"], self.grads["beta"] = ops.batch_norm_backward(
            dout, x, mean, inv_std, self.params["gamma"], relu_output=relu_output
        )
        return dx

    # -- synchronised over processes: the formulas of ops.reference with global sums -------
    @staticmethod
    def _per_channel(v: np.ndarray, x: np.ndarray) -> np.ndarray:
        return v.reshape((1, -1) + (1,) * (x.ndim - 2))

    def _synced_stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and biased variance over every process's shard, in float64 and in two
        passes as one process computes them: the sums of x and the count (one message),
        then the sums of (x - mean)**2 (another)."""
        axes = (0, *range(2, x.ndim))
        x64 = x.astype(np.float64)
        total = self.sync(np.concatenate([x64.sum(axis=axes), [x.size / x.shape[1]]]))
        count = total[-1]
        mean = total[:-1] / count
        squares = ((x64 - self._per_channel(mean, x)) ** 2).sum(axis=axes)
        var = self.sync(squares) / count
        return mean.astype(x.dtype), var.astype(x.dtype)

    def _synced_backward(self, dout, x, mean, inv_std) -> np.ndarray:
        """dx = gamma * inv_std / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)) with M and the
        sums over every process; gamma's and beta's gradients stay this process's sums (the
        trainer sums gradients over the processes)."""
        axes = (0, *range(2, x.ndim))
        xhat = (x - self._per_channel(mean, x)) * self._per_channel(inv_std, x)
        dbeta = dout.sum(axis=axes)
        dgamma = (dout * xhat).sum(axis=axes)
        local = np.concatenate([dbeta, dgamma, [x.size / x.shape[1]]]).astype(np.float64)
        total = self.sync(local)
        c = x.shape[1]
        m = total[-1]
        sum_dy, sum_dy_xhat = (total[:c].astype(x.dtype), total[c : 2 * c].astype(x.dtype))
        scale = self._per_channel(self.params["gamma"] * inv_std / x.dtype.type(m), x)
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        return scale * (
            x.dtype.type(m) * dout
            - self._per_channel(sum_dy, x)
            - xhat * self._per_channel(sum_dy_xhat, x)
        )
