"""The C++ backend: dlx._core behind the same signatures as :mod:`dlx.ops.reference`."""

from __future__ import annotations

import os

# Loads libscipy_openblas into the process, where the extension's BLAS dependency finds it.
import scipy_openblas32  # noqa: F401

from dlx import _core

# GNU OpenMP's thread pool does not survive fork(): a child that entered a parallel region
# would wait forever for threads it does not have. A forked child therefore runs the kernels
# on its own thread; processes started with "spawn" or "forkserver" keep every core.
os.register_at_fork(after_in_child=lambda: _core.set_num_threads(1))


def im2col(x, kernel_size, stride, pad):
    return _core.im2col(x, *kernel_size, *stride, *pad)


def col2im(col, x_shape, kernel_size, stride, pad):
    return _core.col2im(col, tuple(x_shape), *kernel_size, *stride, *pad)


def conv2d(x, w, b, stride, pad):
    return _core.conv2d_forward(x, w, b, *stride, *pad)


def conv2d_algorithms(x, w, stride, pad):
    return _core.conv2d_algorithms(x, w, *stride, *pad)


def conv2d_backward(dy, x, w, stride, pad, input_grad=True):
    return _core.conv2d_backward(dy, x, w, *stride, *pad, input_grad)


def max_pool2d(x, kernel_size, stride, pad):
    return _core.max_pool2d_forward(x, *kernel_size, *stride, *pad)


def max_pool2d_backward(dy, argmax, x_shape, kernel_size, stride, pad):
    return _core.max_pool2d_backward(dy, argmax, tuple(x_shape), *kernel_size, *stride, *pad)


def avg_pool2d(x, kernel_size, stride, pad):
    return _core.avg_pool2d_forward(x, *kernel_size, *stride, *pad)


def avg_pool2d_backward(dy, x_shape, kernel_size, stride, pad):
    return _core.avg_pool2d_backward(dy, tuple(x_shape), *kernel_size, *stride, *pad)


def relu(x):
    return _core.relu_forward(x)


def relu_backward(dy, y):
    return _core.relu_backward(dy, y)


def batch_norm_stats(x):
    return _core.batch_norm_stats(x)


def batch_norm_apply(x, mean, inv_std, gamma, beta):
    return _core.batch_norm_apply(x, mean, inv_std, gamma, beta)


def batch_norm_backward(dy, x, mean, inv_std, gamma):
    return _core.batch_norm_backward(dy, x, mean, inv_std, gamma)


def adam_step(param, grad, m, v, beta1, beta2, lr_t, v_scale, eps):
    _core.adam_step(param, grad, m, v, beta1, beta2, lr_t, v_scale, eps)
