"""NumPy reference implementations of every dlx kernel, written to be read.

These are the functions the C++ backend is tested against, and the ones to read next to the
C++ when learning how a CNN layer computes. They follow the notation of "Deep Learning from
Scratch" and Chainer's ``utils/conv.py``:

    x    (N, C, H, W)        input images
    w    (FN, C, KH, KW)     filters
    y    (N, FN, OH, OW)     output, OH = (H + 2*PH - KH) // SH + 1, OW likewise
    col  (N*OH*OW, C*KH*KW)  one row per output position, one column per window element

Only the loops over the kernel window are Python loops; everything else is sliced at once.
Arguments are trusted here: :mod:`dlx.ops` checks them before it calls either backend.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "adam_step",
    "add",
    "avg_pool2d",
    "avg_pool2d_backward",
    "batch_norm_apply",
    "batch_norm_backward",
    "batch_norm_inference",
    "batch_norm_stats",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "conv_output_size",
    "im2col",
    "linear",
    "linear_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
]


def _pair(v):
    return (v, v) if isinstance(v, (int, np.integer)) else tuple(v)


def conv_output_size(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    """Output length of a window op: (size + 2*pad - kernel) // stride + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def _unfold(x, kernel_size, stride, pad, fill=0.0):
    """The windows of x as a 6-D array (N, C, KH, KW, OH, OW), padding filled with ``fill``.

    ``windows[n, c, i, j, oh, ow]`` is the input under kernel offset (i, j) of the window at
    output position (oh, ow). One slice per kernel offset copies all N*C*OH*OW of them at once.
    """
    n, c, h, w = x.shape
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride)
    ph, pw = _pair(pad)
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)

    img = np.pad(x, [(0, 0), (0, 0), (ph, ph), (pw, pw)], constant_values=fill)
    windows = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            windows[:, :, i, j, :, :] = img[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw]
    return windows


def _fold(windows, x_shape, stride, pad):
    """The adjoint of :func:`_unfold`: adds every window entry back onto its input position."""
    n, c, h, w = x_shape
    _, _, kh, kw, oh, ow = windows.shape
    sh, sw = _pair(stride)
    ph, pw = _pair(pad)

    # sh - 1 extra rows (and sw - 1 columns) let every slice below end inside the array.
    img = np.zeros((n, c, h + 2 * ph + sh - 1, w + 2 * pw + sw - 1), dtype=windows.dtype)
    for i in range(kh):
        for j in range(kw):
            img[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += windows[:, :, i, j, :, :]
    return np.ascontiguousarray(img[:, :, ph : ph + h, pw : pw + w])


def im2col(x, kernel_size, stride=1, pad=0):
    """x (N, C, H, W) -> col (N*OH*OW, C*KH*KW)."""
    n, c = x.shape[:2]
    windows = _unfold(x, kernel_size, stride, pad)
    _, _, kh, kw, oh, ow = windows.shape
    return windows.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)


def col2im(col, x_shape, kernel_size, stride=1, pad=0):
    """col (N*OH*OW, C*KH*KW) -> x (N, C, H, W), summing where windows overlap."""
    n, c, h, w = x_shape
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride)
    ph, pw = _pair(pad)
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    windows = col.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    return _fold(windows, x_shape, stride, pad)


def conv2d(x, w, b=None, stride=1, pad=0):
    """y = x * w + b as one matrix product: col (N*OH*OW, C*KH*KW) @ w^T (C*KH*KW, FN)."""
    n, c, h, wd = x.shape
    fn, _, kh, kw = w.shape
    sh, sw = _pair(stride)
    ph, pw = _pair(pad)
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(wd, kw, sw, pw)

    col = im2col(x, (kh, kw), stride, pad)
    y = col @ w.reshape(fn, c * kh * kw).T
    if b is not None:
        y += b
    return np.ascontiguousarray(y.reshape(n, oh, ow, fn).transpose(0, 3, 1, 2))


def conv2d_algorithms(x, w, stride=1, pad=0):
    """The algorithm of each product of :func:`conv2d` and :func:`conv2d_backward`: here
    always the column matrix of :func:`im2col`."""
    return {"forward": "im2col", "grad_weight": "im2col", "grad_input": "im2col"}


def conv2d_backward(dy, x, w, stride=1, pad=0, input_grad=True, bias_grad=True):
    """Gradients of conv2d: dy (N, FN, OH, OW) -> (dx, dw, db); dx is None without
    ``input_grad``, db without ``bias_grad``."""
    n, c = x.shape[:2]
    fn, _, kh, kw = w.shape
    _, _, oh, ow = dy.shape

    dy_rows = dy.transpose(0, 2, 3, 1).reshape(n * oh * ow, fn)  # one row per output position
    col = im2col(x, (kh, kw), stride, pad)
    db = dy_rows.sum(axis=0) if bias_grad else None
    dw = (dy_rows.T @ col).reshape(fn, c, kh, kw)
    if not input_grad:
        return None, dw, db
    dcol = dy_rows @ w.reshape(fn, c * kh * kw)
    dx = col2im(dcol, x.shape, (kh, kw), stride, pad)
    return dx, dw, db


def _window_origins(out_size, stride, pad):
    return np.arange(out_size) * stride - pad


def max_pool2d(x, kernel_size, stride=None, pad=0, return_indices=True):
    """Max over each window -> (y, argmax), both (N, C, OH, OW); y alone without
    ``return_indices``.

    Padding is -inf, so it never wins. ``argmax`` is the index h*W + w of the winner in its
    input plane. np.argmax returns the first maximum, so the first of tied values wins, and a
    NaN (which np.argmax treats as the maximum) propagates to y.
    """
    n, c, h, w = x.shape
    kh, kw = _pair(kernel_size)
    stride = (kh, kw) if stride is None else _pair(stride)
    ph, pw = _pair(pad)

    windows = _unfold(x, (kh, kw), stride, (ph, pw), fill=-np.inf)
    oh, ow = windows.shape[4:]
    windows = windows.reshape(n, c, kh * kw, oh, ow)
    k = np.argmax(windows, axis=2)
    y = np.take_along_axis(windows, k[:, :, None], axis=2)[:, :, 0]

    # From the offset k inside the window to the position (row, column) in the input plane.
    rows = _window_origins(oh, stride[0], ph)[:, None] + k // kw
    cols = _window_origins(ow, stride[1], pw)[None, :] + k % kw
    # Only a window whose real values are all -inf can pick a padded cell; its winner is then
    # the first real cell, as in the C++ kernel.
    first_row = np.maximum(_window_origins(oh, stride[0], ph), 0)[:, None]
    first_col = np.maximum(_window_origins(ow, stride[1], pw), 0)[None, :]
    padded = (rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)
    rows = np.where(padded, first_row, rows)
    cols = np.where(padded, first_col, cols)
    argmax = (rows * w + cols).astype(np.int64)
    if not return_indices:
        return np.ascontiguousarray(y)
    return np.ascontiguousarray(y), argmax


def max_pool2d_backward(dy, argmax, x_shape, kernel_size, stride=None, pad=0):
    """Routes each dy to the input position that won its window (summing where they repeat)."""
    n, c, h, w = x_shape
    oh, ow = dy.shape[2:]
    dx = np.zeros((n * c, h * w), dtype=dy.dtype)
    planes = np.arange(n * c)[:, None]
    # np.add.at accumulates repeated indices, which overlapping windows produce.
    np.add.at(dx, (planes, argmax.reshape(n * c, oh * ow)), dy.reshape(n * c, oh * ow))
    return dx.reshape(n, c, h, w)


def avg_pool2d(x, kernel_size, stride=None, pad=0):
    """Mean over each window; zero padding counts, so the divisor is always KH*KW."""
    kh, kw = _pair(kernel_size)
    stride = (kh, kw) if stride is None else _pair(stride)
    windows = _unfold(x, (kh, kw), stride, pad)
    return np.ascontiguousarray(windows.sum(axis=(2, 3)) / x.dtype.type(kh * kw))


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, pad=0):
    """Spreads each dy evenly, dy / (KH*KW), over the cells of its window."""
    kh, kw = _pair(kernel_size)
    stride = (kh, kw) if stride is None else _pair(stride)
    n, c, oh, ow = dy.shape
    share = dy / dy.dtype.type(kh * kw)
    windows = np.broadcast_to(share[:, :, None, None], (n, c, kh, kw, oh, ow))
    return _fold(windows, x_shape, stride, pad)


def relu(x, inplace=False):
    """max(x, 0) elementwise (NaN stays NaN); into x itself with ``inplace``."""
    return np.maximum(x, x.dtype.type(0), out=x if inplace else None)


def relu_backward(dy, y):
    """The gradient passes where the output y is positive, and is 0 elsewhere."""
    return np.where(y > 0, dy, dy.dtype.type(0))


def add(a, b, relu=False):
    """a + b elementwise (a residual connection's sum); then max(0, .) with ``relu``."""
    y = a + b
    return np.maximum(y, y.dtype.type(0), out=y) if relu else y  # relu(y, inplace=True)


def _channel_axes(x):
    """The axes a BatchNorm statistic runs over: the batch, and the pixels of an image."""
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(v, x):
    """A (C,) vector shaped to broadcast against x (N, C) or (N, C, H, W)."""
    return v if x.ndim == 2 else v[None, :, None, None]


def batch_norm_stats(x):
    """Mean and (biased) variance of every channel, over the batch and the pixels."""
    axes = _channel_axes(x)
    mean = x.mean(axis=axes)
    return mean, ((x - _per_channel(mean, x)) ** 2).mean(axis=axes)


def batch_norm_apply(x, mean, inv_std, gamma, beta, relu=False):
    """gamma * (x - mean) / std + beta, channel by channel; then max(0, .) with ``relu``."""
    xhat = (x - _per_channel(mean, x)) * _per_channel(inv_std, x)
    y = _per_channel(gamma, x) * xhat + _per_channel(beta, x)
    return np.maximum(y, y.dtype.type(0), out=y) if relu else y  # relu(y, inplace=True)


def batch_norm_inference(x, mean, var, gamma, beta, eps, inplace=False):
    """batch_norm_apply with the running statistics: inv_std = 1 / sqrt(var + eps)."""
    inv_std = (1.0 / np.sqrt(var + var.dtype.type(eps))).astype(var.dtype)
    y = batch_norm_apply(x, mean, inv_std, gamma, beta)
    if not inplace:
        return y
    x[...] = y
    return x


def batch_norm_backward(dy, x, mean, inv_std, gamma, relu_output=None):
    """Gradients of batch_norm_apply when mean and inv_std came from this batch.

    With M values per channel and xhat = (x - mean) * inv_std, the three paths from x to the
    loss (directly, through the mean, through the variance) add up to
    dx = gamma * inv_std / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)).
    With ``relu_output`` (of batch_norm_apply with relu) dy is the gradient at that output,
    first taken back through the ReLU.
    """
    if relu_output is not None:
        dy = relu_backward(dy, relu_output)
    axes = _channel_axes(x)
    m = x.size // x.shape[1] if x.shape[1] else 0
    xhat = (x - _per_channel(mean, x)) * _per_channel(inv_std, x)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    scale = _per_channel(gamma * inv_std / x.dtype.type(m), x)
    dx = scale * (m * dy - _per_channel(dbeta, x) - xhat * _per_channel(dgamma, x))
    return dx, dgamma, dbeta


def linear(x, w, b=None):
    """The fully connected layer: y = x w + b, x (N, IN), w (IN, OUT), b (OUT,)."""
    y = x @ w
    return y if b is None else y + b


def linear_backward(dy, x, w, input_grad=True):
    """Gradients of linear for dy (N, OUT): dx = dy w^T, dw = x^T dy, db = sum over N of dy."""
    dx = dy @ w.T if input_grad else None
    return dx, x.T @ dy, dy.sum(axis=0)


def decay(state, rate):
    """``state *= rate`` in place, then what fell below the smallest normal float set to 0
    (see :meth:`dlx.optim.Optimizer._decay`: subnormal moments make every later step slow)."""
    state *= rate
    np.copyto(state, 0, where=np.abs(state) < np.finfo(state.dtype).tiny)


def adam_step(param, grad, m, v, beta1, beta2, lr_t, v_scale, eps):
    """Adam's update, in place: the moments m and v move towards the gradient and its square,
    then param steps by lr_t * m / (sqrt(v * v_scale) + eps). lr_t holds the first moment's
    bias correction, v_scale the second's. Every operation is in param's dtype."""
    dtype = param.dtype.type
    beta1, beta2 = dtype(beta1), dtype(beta2)
    decay(m, beta1)
    m += (1 - beta1) * grad
    decay(v, beta2)
    v += (1 - beta2) * grad * grad
    step = np.sqrt(v * dtype(v_scale))
    step += dtype(eps)
    param -= dtype(lr_t) * m / step
