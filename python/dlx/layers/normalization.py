"""Batch normalisation."""

from __future__ import annotations

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
    """

    fresh_inference_output = True
    infers_in_place = True

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

    def forward(self, x, train=True, inplace=False):
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
            return ops.batch_norm_inference(x, mean, var, gamma, beta, self.eps, inplace=inplace)
        if x.shape[0] == 0:
            raise DlxValueError("BatchNorm cannot compute batch statistics of an empty batch")
        x = np.ascontiguousarray(x)
        mean, var = ops.batch_norm_stats(x)
        inv_std = self._inv_std(var)
        self.cache = (x, mean, inv_std)
        m = x.dtype.type(self.momentum)
        for name, batch in (("running_mean", mean), ("running_var", var)):
            running = self.buffers[name]
            running *= m
            running += (1 - m) * batch
        return ops.batch_norm_apply(x, mean, inv_std, gamma, beta)

    def backward(self, dout):
        x, mean, inv_std = cached(self, self.cache)
        dx, self.grads["gamma"], self.grads["beta"] = ops.batch_norm_backward(
            dout, x, mean, inv_std, self.params["gamma"]
        )
        return dx
