"""Convolution and pooling layers on the kernels of :mod:`dlx.ops` (C++ by default)."""

from __future__ import annotations

import numpy as np

from .. import init as initializers
from .. import ops
from .._random import rng_or_default
from ..errors import DlxValueError
from ..ops import _checks
from .base import Layer, cached, check_input


def _resolve_padding(padding, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """An int or (h, w) pad from ``padding``, which may also be "valid" or "same"."""
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        if stride != (1, 1) or kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
            raise DlxValueError(
                f"padding='same' needs an odd kernel and stride 1, got kernel_size {kernel} "
                f"and stride {stride}"
            )
        return (kernel[0] // 2, kernel[1] // 2)
    if isinstance(padding, str):
        raise DlxValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return _checks.pair(padding, "padding", 0)


class Conv2d(Layer):
    """2-D convolution: x (N, C, H, W) -> y (N, FN, OH, OW).

    W (FN, C, KH, KW), b (FN,); OH = (H + 2*PH - KH) // SH + 1, OW likewise.
    ``padding`` is an int, an (h, w) pair, "valid" (0) or "same" (odd kernels, stride 1).
    ``bias=False`` drops b, as before a BatchNorm, which would cancel it anyway.
    """

    decay = ("W",)
    fresh_inference_output = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        weight_init="he",
        bias: bool = True,
        dtype=np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = _checks.integer(in_channels, "in_channels", 1)
        self.out_channels = _checks.integer(out_channels, "out_channels", 1)
        self.kernel_size = _checks.pair(kernel_size, "kernel_size", 1)
        self.stride = _checks.pair(stride, "stride", 1)
        self.pad = _resolve_padding(padding, self.kernel_size, self.stride)
        dtype = _checks.float_dtype(dtype)
        _checks.boolean(bias, "bias")
        kh, kw = self.kernel_size
        make = initializers.initializer(weight_init)
        self.params["W"] = make(
            (out_channels, in_channels, kh, kw),
            in_channels * kh * kw,
            out_channels * kh * kw,
            rng=rng_or_default(rng),
            dtype=dtype,
        )
        if bias:
            self.params["b"] = np.zeros(out_channels, dtype=dtype)
        self.x: np.ndarray | None = None

    @classmethod
    def state_shapes(cls, args):
        c = _checks.integer(args["in_channels"], "in_channels", 1)
        fn = _checks.integer(args["out_channels"], "out_channels", 1)
        kh, kw = _checks.pair(args["kernel_size"], "kernel_size", 1)
        params = {"W": (fn, c, kh, kw)}
        if _checks.boolean(args["bias"], "bias"):
            params["b"] = (fn,)
        return {"params": params, "buffers": {}}

    def multiply_adds(self, input_shape, output_shape):
        """FN * OH * OW * C * KH * KW: each output element is a dot product over a window."""
        fn, c, kh, kw = self.params["W"].shape
        return fn * output_shape[1] * output_shape[2] * c * kh * kw

    def forward(self, x, train=True):
        x = check_input(self, x, 4, f"(N, {self.in_channels}, H, W)")
        if x.shape[1] != self.in_channels:
            raise DlxValueError(
                f"Conv2d expects {self.in_channels} input channels, got shape {x.shape}"
            )
        self.x = x if train else None
        return ops.conv2d(x, self.params["W"], self.params.get("b"), self.stride, self.pad)

    def backward(self, dout):
        return self._backward(dout, input_grad=True)

    def backward_params(self, dout):
        self._backward(dout, input_grad=False)

    def _backward(self, dout, input_grad):
        dx, self.grads["W"], db = ops.conv2d_backward(
            dout,
            cached(self, self.x),
            self.params["W"],
            self.stride,
            self.pad,
            input_grad=input_grad,
            bias_grad="b" in self.params,
        )
        if db is not None:
            self.grads["b"] = db
        return dx


class _Pool2d(Layer):
    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size = _checks.pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _checks.pair(stride, "stride", 1)
        self.pad = _checks.pair(padding, "padding", 0)
        _checks.pool_pad(self.kernel_size, self.pad)
        self.x_shape: tuple[int, ...] | None = None


class MaxPool2d(_Pool2d):
    """Max over each window: x (N, C, H, W) -> (N, C, OH, OW); the gradient goes to the
    winner of each window (its index is kept from forward). ``stride`` defaults to the
    kernel size."""

    fresh_inference_output = True

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__(kernel_size, stride, padding)
        self.argmax: np.ndarray | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, 4, "(N, C, H, W)")
        if not train:  # the argmax is only for backward
            self.x_shape = self.argmax = None
            return ops.max_pool2d(x, self.kernel_size, self.stride, self.pad, return_indices=False)
        self.x_shape = x.shape
        y, self.argmax = ops.max_pool2d(x, self.kernel_size, self.stride, self.pad)
        return y

    def backward(self, dout):
        return ops.max_pool2d_backward(
            dout, cached(self, self.argmax), self.x_shape, self.kernel_size, self.stride, self.pad
        )


class GlobalAvgPool2d(Layer):
    """The mean of each channel's plane: x (N, C, H, W) -> (N, C), as ResNet's head uses it in
    place of a large fully connected layer. Backward spreads dout / (H*W) over the plane."""

    fresh_inference_output = True

    def __init__(self) -> None:
        super().__init__()
        self.x_shape: tuple[int, ...] | None = None

    def forward(self, x, train=True):
        x = check_input(self, x, 4, "(N, C, H, W)")
        if x.shape[2] * x.shape[3] == 0:
            raise DlxValueError(f"GlobalAvgPool2d needs H and W >= 1, got shape {x.shape}")
        self.x_shape = x.shape if train else None
        return x.mean(axis=(2, 3))

    def backward(self, dout):
        n, c, h, w = cached(self, self.x_shape)
        share = dout / dout.dtype.type(h * w)
        return np.ascontiguousarray(np.broadcast_to(share[:, :, None, None], (n, c, h, w)))


class AvgPool2d(_Pool2d):
    """Mean over each window (zero padding counted): x (N, C, H, W) -> (N, C, OH, OW)."""

    fresh_inference_output = True

    def forward(self, x, train=True):
        x = check_input(self, x, 4, "(N, C, H, W)")
        self.x_shape = x.shape if train else None
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.pad)

    def backward(self, dout):
        return ops.avg_pool2d_backward(
            dout, cached(self, self.x_shape), self.kernel_size, self.stride, self.pad
        )
