"""The C++ backend: dlx._core behind the same signatures as :mod:`dlx.ops.reference`."""

from __future__ import annotations

import os
import warnings

# Loads libscipy_openblas into the process with its symbols global: the extension is not
# linked against it (see CMakeLists.txt) and finds its BLAS there, so it must come first.
import scipy_openblas32  # noqa: F401

from dlx import _core

from ..errors import DlxValueError

# GNU OpenMP's thread pool does not survive fork(): a child that entered a parallel region
# would wait forever for threads it does not have. A forked child therefore runs the kernels
# on its own thread; processes started with "spawn" or "forkserver" keep every core.
os.register_at_fork(after_in_child=lambda: _core.set_num_threads(1))

# The three products of a convolution, as its plan names them.
PRODUCTS = ("forward", "grad_weight", "grad_input")

# The CPU levels the kernels are compiled for, lowest first (see csrc/dispatch.h).
CPU_CAPABILITIES = ("baseline", "avx2", "avx512")


def _choose_cpu_capability(requested: str) -> None:
    """Run the kernels of ``requested`` (one of CPU_CAPABILITIES), or of the widest level below
    it that this CPU and build support, with a warning saying why."""
    supported = _core.supported_capabilities()
    if requested in supported:
        _core.set_cpu_capability(requested)
        return
    rank = CPU_CAPABILITIES.index
    below = [name for name in supported if rank(name) <= rank(requested)]
    choice = below[-1] if below else supported[0]
    reason = (
        "this CPU cannot run those kernels"
        if requested in _core.compiled_capabilities()
        else "this build of dlx does not have those kernels"
    )
    warnings.warn(
        f"DLX_CPU_CAPABILITY={requested}: {reason} (it runs {', '.join(supported)}); "
        f"using the {choice} kernels",
        RuntimeWarning,
        stacklevel=3,
    )
    _core.set_cpu_capability(choice)


def _apply_cpu_capability_from_env() -> None:
    value = os.environ.get("DLX_CPU_CAPABILITY", "").strip()
    if not value:
        return
    name = value.lower()
    if name not in CPU_CAPABILITIES:
        raise DlxValueError(
            f"DLX_CPU_CAPABILITY must be one of {', '.join(CPU_CAPABILITIES)}, got {value!r}"
        )
    _choose_cpu_capability(name)


def cpu_capability():
    return _core.cpu_capability()


def cpu_capabilities():
    return tuple(_core.supported_capabilities())


def _apply_workspace_budget_from_env() -> None:
    value = os.environ.get("DLX_WORKSPACE_MB", "").strip()
    if not value:
        return
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = -1.0
    if not 0 <= megabytes < 2**40:
        raise DlxValueError(
            f"DLX_WORKSPACE_MB must be a number of MiB >= 0 (and finite), got {value!r}"
        )
    _core.set_workspace_budget(int(megabytes * 2**20))


def _apply_environment() -> None:
    """DLX_CPU_CAPABILITY and DLX_WORKSPACE_MB (dlx.ops applies them at import)."""
    _apply_cpu_capability_from_env()
    _apply_workspace_budget_from_env()


def im2col(x, kernel_size, stride, pad):
    return _core.im2col(x, *kernel_size, *stride, *pad)


def col2im(col, x_shape, kernel_size, stride, pad):
    return _core.col2im(col, tuple(x_shape), *kernel_size, *stride, *pad)


def conv2d(x, w, b, stride, pad):
    return _core.conv2d_forward(x, w, b, *stride, *pad)


def conv2d_plan(x, w, stride, pad):
    return _core.conv2d_plan(x, w, *stride, *pad)


def conv2d_algorithms(x, w, stride, pad):
    plan = conv2d_plan(x, w, stride, pad)
    return {product: plan[product]["algorithm"] for product in PRODUCTS}


def conv2d_backward(dy, x, w, stride, pad, input_grad=True, bias_grad=True):
    return _core.conv2d_backward(dy, x, w, *stride, *pad, input_grad, bias_grad)


def max_pool2d(x, kernel_size, stride, pad, return_indices=True):
    if not return_indices:
        return _core.max_pool2d_values(x, *kernel_size, *stride, *pad)
    return _core.max_pool2d_forward(x, *kernel_size, *stride, *pad)


def max_pool2d_backward(dy, argmax, x_shape, kernel_size, stride, pad):
    return _core.max_pool2d_backward(dy, argmax, tuple(x_shape), *kernel_size, *stride, *pad)


def avg_pool2d(x, kernel_size, stride, pad):
    return _core.avg_pool2d_forward(x, *kernel_size, *stride, *pad)


def avg_pool2d_backward(dy, x_shape, kernel_size, stride, pad):
    return _core.avg_pool2d_backward(dy, tuple(x_shape), *kernel_size, *stride, *pad)


def relu(x, inplace=False):
    return _core.relu_inplace(x) if inplace else _core.relu_forward(x)


def relu_backward(dy, y):
    return _core.relu_backward(dy, y)


def add(a, b, relu=False):
    return _core.add_forward(a, b, relu)


def batch_norm_stats(x):
    return _core.batch_norm_stats(x)


def batch_norm_apply(x, mean, inv_std, gamma, beta, relu=False):
    return _core.batch_norm_apply(x, mean, inv_std, gamma, beta, relu)


def batch_norm_inference(x, mean, var, gamma, beta, eps, inplace=False):
    return _core.batch_norm_inference(x, mean, var, gamma, beta, eps, inplace)


def linear(x, w, b=None):
    return _core.linear_forward(x, w, b)


def linear_backward(dy, x, w, input_grad=True):
    return _core.linear_backward(dy, x, w, input_grad)


def batch_norm_backward(dy, x, mean, inv_std, gamma, relu_output=None):
    return _core.batch_norm_backward(dy, x, mean, inv_std, gamma, relu_output)


def adam_step(param, grad, m, v, beta1, beta2, lr_t, v_scale, eps):
    _core.adam_step(param, grad, m, v, beta1, beta2, lr_t, v_scale, eps)
