"""The kernels (convolution, fully connected, pooling, ReLU, the residual sum, BatchNorm, the
Adam update): one checked front over two backends.

Every function here checks its arguments (raising ``TypeError`` or ``ValueError`` that name
the argument and what it got), then runs on the active backend:

- ``"cpp"`` (the default): dlx's C++ kernels, OpenMP over the batch.
- ``"numpy"``: :mod:`dlx.ops.reference`, the readable NumPy version of the same math.

Both take and return NCHW arrays of float32 or float64, and the output has the input's dtype:
nothing is ever cast. ``kernel_size``, ``stride`` and ``pad`` take an int or an (h, w) pair.

Shapes::

    x    (N, C, H, W)         w   (FN, C, KH, KW)       b (FN,)
    y    (N, FN, OH, OW)      OH = (H + 2*PH - KH) // SH + 1,  OW likewise
    col  (N*OH*OW, C*KH*KW)

Choose the backend for a block with ``with use_backend("numpy"):``, for the whole process
with :func:`set_backend` or the environment variable ``DLX_BACKEND``; :func:`backend` names
the active one.
"""

from __future__ import annotations

import os
import types
import warnings
from contextvars import ContextVar

import numpy as np

from ..errors import DlxTypeError, DlxValueError
from . import _checks, reference

__all__ = [
    "adam_step",
    "add",
    "avg_pool2d",
    "avg_pool2d_backward",
    "backend",
    "batch_norm_apply",
    "batch_norm_backward",
    "batch_norm_inference",
    "batch_norm_stats",
    "col2im",
    "conv2d",
    "conv2d_algorithms",
    "conv2d_backward",
    "conv2d_plan",
    "conv_output_size",
    "cpu_capabilities",
    "cpu_capability",
    "im2col",
    "linear",
    "linear_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "reference",
    "release_workspace",
    "relu",
    "relu_backward",
    "set_backend",
    "set_workspace_budget",
    "use_backend",
    "workspace_budget",
    "workspace_bytes",
]

BACKENDS = ("cpp", "numpy")

try:
    from . import _native
except ImportError as error:  # a source tree without the built extension
    _native = None
    _native_error: ImportError | None = error
else:
    _native_error = None

# A bad DLX_* setting is reported by the first op (and by every op after it), not by
# `import dlx`: the command line then shows it as one line, like any other mistake.
_environment_error: DlxValueError | None = None


def _apply_environment() -> None:
    global _environment_error
    from .. import threads

    try:
        if _native is not None:
            _native._apply_environment()
            threads._apply_environment()
    except DlxValueError as error:
        _environment_error = error


def _module_of(name: str) -> types.ModuleType:
    if _environment_error is not None:
        raise DlxValueError(str(_environment_error))
    if name == "numpy":
        return reference
    if _native is None:
        raise ImportError(
            "the C++ backend of dlx is not built (pip install dlx-scratch, or from a checkout: pip install .), "
            "or use the NumPy backend: dlx.ops.use_backend('numpy')"
        ) from _native_error
    return _native


_apply_environment()


def _backend_from_env() -> str:
    name = os.environ.get("DLX_BACKEND", "cpp").strip().lower() or "cpp"
    if name not in BACKENDS:
        raise DlxValueError(f"DLX_BACKEND must be one of {BACKENDS}, got {name!r}")
    return name


def _checked_backend(name: object) -> str:
    if name not in BACKENDS:
        raise DlxValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    _module_of(name)  # fail now, not at the first op, if it cannot run
    return name  # type: ignore[return-value]


# The process's backend (set_backend, DLX_BACKEND), and the one a `with use_backend(...)`
# block chose in this thread or task, which takes precedence inside the block.
try:
    _process_backend = _backend_from_env()
except DlxValueError as error:
    _process_backend, _environment_error = "cpp", error
_block_backend: ContextVar[str | None] = ContextVar("dlx_ops_backend", default=None)


def backend() -> str:
    """The name of the active backend: ``"cpp"`` or ``"numpy"``."""
    return _block_backend.get() or _process_backend


def set_backend(name: str) -> None:
    """Run the ops of the whole process on ``name`` (``"cpp"`` or ``"numpy"``) from now on,
    outside ``with use_backend(...)`` blocks."""
    global _process_backend
    _process_backend = _checked_backend(name)


class use_backend:
    """A ``with`` block whose ops run on ``name``; other threads, and asyncio tasks, keep
    theirs (the choice lives in a :class:`contextvars.ContextVar`). To switch the whole
    process, call :func:`set_backend`.

    >>> with use_backend("numpy"):
    ...     backend()
    'numpy'
    """

    def __init__(self, name: str) -> None:
        self.name = _checked_backend(name)
        self._token = None
        self._entered = False

    def __enter__(self) -> use_backend:
        self._entered = True
        self._token = _block_backend.set(self.name)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _block_backend.reset(self._token)

    def __del__(self) -> None:
        # Calling it without `with` once switched the process; now it would do nothing.
        if not getattr(self, "_entered", True):
            warnings.warn(
                f"use_backend({self.name!r}) switches the backend only inside a `with` block; "
                f"to switch the whole process, call dlx.ops.set_backend({self.name!r})",
                RuntimeWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"use_backend({self.name!r})"


def _run(name: str, *args):
    """Call ``name`` on the active backend, with every array argument made C-contiguous."""
    args = tuple(np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a for a in args)
    return getattr(_module_of(backend()), name)(*args)


def conv2d_plan(x: np.ndarray, w: np.ndarray, stride=1, pad=0) -> dict:
    """What the C++ kernels plan for :func:`conv2d` and :func:`conv2d_backward` on these
    arrays, with the current thread count and workspace budget.

    For each product (``"forward"``, ``"grad_weight"``, ``"grad_input"``) a dict of its
    ``algorithm`` (as :func:`conv2d_algorithms` names it), whether it runs ``parallel``, its
    ``items`` (the pieces of work the threads share: ``images`` whole images side by side, or
    ``blocks`` blocks of ``length`` positions an image; for the grad input, groups of
    ``length`` channels), the shifted route's register ``tile`` (rows, columns of the output;
    None for im2col) and each thread's ``workspace_bytes``. Also ``threads``, and the
    ``workspace_bytes`` each pass, forward or backward, leases from the workspace pool for all
    threads (see :func:`workspace_bytes`). docs/core.md explains how it is made.
    """
    x, w, stride, pad, _ = _conv_args(x, w, stride, pad)
    args = tuple(np.ascontiguousarray(a) for a in (x, w))
    return _module_of("cpp").conv2d_plan(*args, stride, pad)


def workspace_bytes() -> int:
    """Bytes of working memory the C++ kernels hold now.

    The convolution's buffers come from one pool, which keeps what it holds between calls
    within a budget (:func:`workspace_budget`) and frees the rest after each call: a large
    call is served, then trimmed back.
    """
    return _module_of("cpp")._core.workspace_bytes()


def release_workspace() -> None:
    """Free the idle working memory of the C++ kernels (the next call allocates afresh)."""
    _module_of("cpp")._core.release_workspace()


def workspace_budget() -> int:
    """Bytes the workspace pool may keep between calls (default 256 MiB, or
    ``DLX_WORKSPACE_MB``). The plans also divide it among the threads: a smaller budget splits
    a convolution into more, smaller items."""
    return _module_of("cpp")._core.workspace_budget()


def set_workspace_budget(megabytes: float) -> None:
    """Set :func:`workspace_budget`, in MiB."""
    if (
        isinstance(megabytes, bool)
        or not isinstance(megabytes, (int, float))
        or not 0 <= megabytes < 2**40
    ):
        raise DlxValueError(f"megabytes must be a finite number >= 0, got {megabytes!r}")
    _module_of("cpp")._core.set_workspace_budget(int(megabytes * 2**20))


def cpu_capability() -> str:
    """The CPU level whose C++ kernels run: ``"baseline"``, ``"avx2"`` or ``"avx512"``.

    dlx's kernels are compiled once per level (baseline x86-64 with SSE2; AVX2 + FMA; AVX-512
    F/BW/DQ/VL) and at import it picks the widest one this CPU and its operating system
    support. ``DLX_CPU_CAPABILITY=baseline|avx2|avx512`` asks for a lower one, for testing or
    debugging; asking for more than the CPU has warns and takes the best it can run. The
    NumPy backend does not depend on it.
    """
    return _module_of("cpp").cpu_capability()


def cpu_capabilities() -> tuple[str, ...]:
    """Every level :func:`cpu_capability` can be on this machine, lowest first."""
    return _module_of("cpp").cpu_capabilities()


def conv_output_size(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    """Output length of a convolution or pooling window along one axis.

    ``(size + 2*pad - kernel) // stride + 1``; a kernel larger than the padded input raises.
    """
    size = _checks.integer(size, "size", 0)
    kernel = _checks.integer(kernel, "kernel", 1)
    stride = _checks.integer(stride, "stride", 1)
    pad = _checks.integer(pad, "pad", 0)
    if kernel > size + 2 * pad:
        raise DlxValueError(f"kernel {kernel} is larger than the padded input {size + 2 * pad}")
    return reference.conv_output_size(size, kernel, stride, pad)


def _window(kernel_size, stride, pad):
    kernel = _checks.pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else _checks.pair(stride, "stride", 1)
    return kernel, stride, _checks.pair(pad, "pad", 0)


def im2col(x: np.ndarray, kernel_size, stride=1, pad=0) -> np.ndarray:
    """Unfold the windows of x (N, C, H, W) into col (N*OH*OW, C*KH*KW)."""
    x = _checks.float_array(x, "x", 4, "(N, C, H, W)")
    kernel, stride, pad = _window(kernel_size, stride, pad)
    oh, ow = _checks.output_hw(x.shape[2:], kernel, stride, pad)
    n, c = x.shape[:2]
    _checks.allocation((n * oh * ow, c * kernel[0] * kernel[1]), x.dtype, "col")
    return _run("im2col", x, kernel, stride, pad)


def col2im(col: np.ndarray, x_shape, kernel_size, stride=1, pad=0) -> np.ndarray:
    """Fold col (N*OH*OW, C*KH*KW) back into (N, C, H, W), summing overlapping windows.

    The adjoint of :func:`im2col`: ``<im2col(x), c> == <x, col2im(c)>``.
    """
    col = _checks.float_array(col, "col", 2, "(N*OH*OW, C*KH*KW)")
    x_shape = _checks.shape_of(x_shape, "x_shape")
    kernel, stride, pad = _window(kernel_size, stride, pad)
    n, c, h, w = x_shape
    oh, ow = _checks.output_hw((h, w), kernel, stride, pad)
    _checks.expect_shape(col, "col", (n * oh * ow, c * kernel[0] * kernel[1]))
    _checks.allocation(x_shape, col.dtype, "the output")
    return _run("col2im", col, x_shape, kernel, stride, pad)


def _conv_args(x, w, stride, pad):
    x = _checks.float_array(x, "x", 4, "(N, C, H, W)")
    w = _checks.float_array(w, "w", 4, "(FN, C, KH, KW)")
    _checks.same_dtype("w", w, "x", x)
    if w.shape[1] != x.shape[1]:
        raise DlxValueError(
            f"w has {w.shape[1]} input channels (shape {w.shape}) "
            f"but x has {x.shape[1]} (shape {x.shape})"
        )
    kernel, stride, pad = _window(w.shape[2:], stride, pad)
    oh, ow = _checks.output_hw(x.shape[2:], kernel, stride, pad)
    y_shape = (x.shape[0], w.shape[0], oh, ow)
    _checks.allocation(y_shape, x.dtype, "the output")
    return x, w, stride, pad, y_shape


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, pad=0):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    x (N, C, H, W), w (FN, C, KH, KW), b (FN,) or None -> y (N, FN, OH, OW).
    """
    x, w, stride, pad, _ = _conv_args(x, w, stride, pad)
    if b is not None:
        b = _checks.float_array(b, "b", 1, "(FN,)")
        _checks.same_dtype("b", b, "x", x)
        _checks.expect_shape(b, "b", (w.shape[0],))
    return _run("conv2d", x, w, b, stride, pad)


def conv2d_algorithms(x: np.ndarray, w: np.ndarray, stride=1, pad=0) -> dict[str, str]:
    """Which algorithm the active backend runs for each product of :func:`conv2d` and
    :func:`conv2d_backward` on these arrays, with the current thread count.

    Returns ``{"forward": ..., "grad_weight": ..., "grad_input": ...}``, each one of
    ``"im2col"`` (a column matrix and a GEMM; the NumPy backend's only algorithm),
    ``"pointwise"`` (a 1x1 kernel: the image is the column matrix), ``"shifted"`` (stride 1, or
    stride 2 through the image's stride phases: shifted slices of the padded image in a
    register-blocked kernel) or ``"shifted by
    positions"`` (the same, its tiles a run of output positions by a few filters, for images
    whose rows fill vectors poorly). docs/core.md explains each.
    """
    x, w, stride, pad, _ = _conv_args(x, w, stride, pad)
    return _run("conv2d_algorithms", x, w, stride, pad)


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride=1,
    pad=0,
    *,
    input_grad: bool = True,
    bias_grad: bool = True,
):
    """Gradients of :func:`conv2d` for dy (N, FN, OH, OW): returns (dx, dw, db).

    With ``input_grad=False`` dx is not computed and comes back as None: the first layer of
    a network needs only its weight gradients, and dx costs as much as the forward pass.
    With ``bias_grad=False`` db is None: a convolution without a bias (before a BatchNorm)
    skips a pass over dy.
    """
    x, w, stride, pad, y_shape = _conv_args(x, w, stride, pad)
    dy = _checks.float_array(dy, "dy", 4, "(N, FN, OH, OW)")
    _checks.same_dtype("dy", dy, "x", x)
    _checks.expect_shape(dy, "dy", y_shape)
    _checks.boolean(input_grad, "input_grad")
    _checks.boolean(bias_grad, "bias_grad")
    return _run("conv2d_backward", dy, x, w, stride, pad, input_grad, bias_grad)


def _pool_args(x_shape, kernel_size, stride, pad):
    kernel, stride, pad = _window(kernel_size, stride, pad)
    _checks.pool_pad(kernel, pad)
    if x_shape[2] < 1 or x_shape[3] < 1:
        raise DlxValueError(f"pooling needs H and W >= 1, got input shape {tuple(x_shape)}")
    oh, ow = _checks.output_hw(x_shape[2:], kernel, stride, pad)
    _checks.allocation(tuple(x_shape), np.float64, "the input gradient")
    _checks.allocation((*x_shape[:2], oh, ow), np.float64, "the output")
    return kernel, stride, pad, (*x_shape[:2], oh, ow)


def max_pool2d(x: np.ndarray, kernel_size, stride=None, pad=0, *, return_indices: bool = True):
    """Max pooling: x (N, C, H, W) -> (y, argmax), both (N, C, OH, OW), or y alone with
    ``return_indices=False`` (inference: the argmax is only needed by the backward pass).

    ``argmax`` holds int64 indices ``h*W + w`` into each flattened input plane (PyTorch's
    ``return_indices`` convention). Padding counts as -inf; the first of tied values wins; a
    NaN in a window propagates to the output. ``stride=None`` means the kernel size.
    """
    x = _checks.float_array(x, "x", 4, "(N, C, H, W)")
    kernel, stride, pad, _ = _pool_args(x.shape, kernel_size, stride, pad)
    _checks.boolean(return_indices, "return_indices")
    return _run("max_pool2d", x, kernel, stride, pad, return_indices)


def max_pool2d_backward(dy, argmax, x_shape, kernel_size, stride=None, pad=0) -> np.ndarray:
    """Gradient of :func:`max_pool2d`: dy and argmax (N, C, OH, OW) -> dx (N, C, H, W)."""
    x_shape = _checks.shape_of(x_shape, "x_shape")
    kernel, stride, pad, y_shape = _pool_args(x_shape, kernel_size, stride, pad)
    dy = _checks.float_array(dy, "dy", 4, "(N, C, OH, OW)")
    _checks.expect_shape(dy, "dy", y_shape)
    if not isinstance(argmax, np.ndarray) or argmax.dtype != np.int64:
        got = argmax.dtype if isinstance(argmax, np.ndarray) else type(argmax).__name__
        raise DlxTypeError(f"argmax must be an int64 numpy.ndarray, got {got}")
    _checks.expect_shape(argmax, "argmax", y_shape)
    if backend() == "numpy" and argmax.size:
        # The C++ kernel checks the range itself, inside its single pass.
        plane = x_shape[2] * x_shape[3]
        bad = (argmax < 0) | (argmax >= plane)
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            raise DlxValueError(
                f"argmax holds {argmax.flat[at]} at flat position {at}, "
                f"outside the input plane [0, {plane})"
            )
    return _run("max_pool2d_backward", dy, argmax, x_shape, kernel, stride, pad)


def avg_pool2d(x: np.ndarray, kernel_size, stride=None, pad=0) -> np.ndarray:
    """Average pooling: x (N, C, H, W) -> y (N, C, OH, OW).

    Zero padding counts in the divisor, which is always KH*KW. ``stride=None`` means the
    kernel size.
    """
    x = _checks.float_array(x, "x", 4, "(N, C, H, W)")
    kernel, stride, pad, _ = _pool_args(x.shape, kernel_size, stride, pad)
    return _run("avg_pool2d", x, kernel, stride, pad)


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, pad=0) -> np.ndarray:
    """Gradient of :func:`avg_pool2d`: dy (N, C, OH, OW) -> dx (N, C, H, W)."""
    x_shape = _checks.shape_of(x_shape, "x_shape")
    kernel, stride, pad, y_shape = _pool_args(x_shape, kernel_size, stride, pad)
    dy = _checks.float_array(dy, "dy", 4, "(N, C, OH, OW)")
    _checks.expect_shape(dy, "dy", y_shape)
    return _run("avg_pool2d_backward", dy, x_shape, kernel, stride, pad)


def relu(x: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """max(x, 0) elementwise, for an array of any shape; NaN stays NaN. With ``inplace`` the
    result is written into x (which must be C-contiguous and writeable) and x is returned."""
    x = _checks.float_array(x, "x")
    if not _checks.boolean(inplace, "inplace"):
        return _run("relu", x, False)
    _checks.updatable(x, "x")
    _run("relu", x, True)
    return x


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu` from its output y: dy where y > 0, else 0."""
    y = _checks.float_array(y, "y")
    dy = _checks.float_array(dy, "dy")
    _checks.same_dtype("dy", dy, "y", y)
    _checks.expect_shape(dy, "dy", y.shape)
    return _run("relu_backward", dy, y)


def add(a: np.ndarray, b: np.ndarray, *, relu: bool = False) -> np.ndarray:
    """a + b elementwise for two arrays of one shape and dtype (a residual connection's sum),
    in a new array; with ``relu``, max(a + b, 0) in the same pass (NaN stays NaN)."""
    a = _checks.float_array(a, "a")
    b = _checks.float_array(b, "b")
    _checks.same_dtype("b", b, "a", a)
    _checks.expect_shape(b, "b", a.shape)
    return _run("add", a, b, _checks.boolean(relu, "relu"))


def _bn_input(x, name="x"):
    x = _checks.float_array(x, name)
    if x.ndim not in (2, 4):
        raise DlxValueError(f"{name} must be (N, C) or (N, C, H, W), got shape {x.shape}")
    return x


def _bn_vectors(x, **vectors):
    out = []
    for name, v in vectors.items():
        v = _checks.float_array(v, name, 1, "(C,)")
        _checks.same_dtype(name, v, "x", x)
        _checks.expect_shape(v, name, (x.shape[1],))
        out.append(v)
    return out


def batch_norm_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance of x (N, C) or (N, C, H, W): each (C,)."""
    x = _bn_input(x)
    if x.shape[0] == 0 or x.size == 0:
        raise DlxValueError(
            f"batch statistics need at least one value per channel, got shape {x.shape}"
        )
    return _run("batch_norm_stats", x)


def batch_norm_apply(x, mean, inv_std, gamma, beta, *, relu: bool = False) -> np.ndarray:
    """gamma * (x - mean) * inv_std + beta per channel; every vector is (C,). With
    ``relu=True``, :func:`relu` of that in the same pass over x (a network fuses a ReLU that
    alone reads a BatchNorm's output this way)."""
    x = _bn_input(x)
    _checks.boolean(relu, "relu")
    vectors = _bn_vectors(x, mean=mean, inv_std=inv_std, gamma=gamma, beta=beta)
    return _run("batch_norm_apply", x, *vectors, relu)


def batch_norm_inference(x, mean, var, gamma, beta, eps: float = 1e-5, *, inplace: bool = False):
    """BatchNorm at inference, on running statistics: each channel scaled and shifted once,
    ``x * scale + shift`` with ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mean *
    scale`` (the same numbers as :func:`batch_norm_apply` with ``inv_std = 1 / sqrt(var +
    eps)``). With ``inplace`` the result is written into x (C-contiguous, writeable)."""
    x = _bn_input(x)
    vectors = _bn_vectors(x, mean=mean, var=var, gamma=gamma, beta=beta)
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.number)):
        raise DlxTypeError(f"eps must be a number, got {type(eps).__name__}")
    if not eps > 0:
        raise DlxValueError(f"eps must be positive, got {eps!r}")
    if not _checks.boolean(inplace, "inplace"):
        return _run("batch_norm_inference", x, *vectors, float(eps), False)
    _checks.updatable(x, "x")
    _run("batch_norm_inference", x, *vectors, float(eps), True)
    return x


def batch_norm_backward(dy, x, mean, inv_std, gamma, *, relu_output=None):
    """Gradients of :func:`batch_norm_apply` with batch statistics: (dx, dgamma, dbeta).

    With ``relu_output``, the output of ``batch_norm_apply(..., relu=True)``, dy is the
    gradient at that output: it is taken back through the ReLU (:func:`relu_backward`) in the
    same passes."""
    x = _bn_input(x)
    if x.shape[0] == 0 or x.size == 0:
        raise DlxValueError(
            f"batch statistics need at least one value per channel, got shape {x.shape}"
        )
    dy = _bn_input(dy, "dy")
    _checks.same_dtype("dy", dy, "x", x)
    _checks.expect_shape(dy, "dy", x.shape)
    if relu_output is not None:
        relu_output = _bn_input(relu_output, "relu_output")
        _checks.same_dtype("relu_output", relu_output, "x", x)
        _checks.expect_shape(relu_output, "relu_output", x.shape)
    vectors = _bn_vectors(x, mean=mean, inv_std=inv_std, gamma=gamma)
    return _run("batch_norm_backward", dy, x, *vectors, relu_output)


def _linear_args(x, w):
    x = _checks.float_array(x, "x", 2, "(N, IN)")
    w = _checks.float_array(w, "w", 2, "(IN, OUT)")
    _checks.same_dtype("w", w, "x", x)
    if w.shape[0] != x.shape[1]:
        raise DlxValueError(
            f"w has {w.shape[0]} input features (shape {w.shape}) "
            f"but x has {x.shape[1]} (shape {x.shape})"
        )
    if max(*x.shape, w.shape[1]) >= 2**31:
        raise DlxValueError(
            f"the BLAS takes sizes below 2**31, got x of shape {x.shape} and w of shape {w.shape}"
        )
    return x, w


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """The fully connected layer: x (N, IN), w (IN, OUT), b (OUT,) or None -> y = x w + b
    (N, OUT). The C++ kernel splits the product among dlx's threads on dlx's own
    single-threaded BLAS, so it never starts a second thread pool (NumPy's ``@`` would)."""
    x, w = _linear_args(x, w)
    if b is not None:
        b = _checks.float_array(b, "b", 1, "(OUT,)")
        _checks.same_dtype("b", b, "x", x)
        _checks.expect_shape(b, "b", (w.shape[1],))
    _checks.allocation((x.shape[0], w.shape[1]), x.dtype, "the output")
    return _run("linear", x, w, b)


def linear_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, *, input_grad: bool = True):
    """Gradients of :func:`linear` for dy (N, OUT): returns (dx, dw, db) with
    ``dx = dy w^T`` (N, IN), ``dw = x^T dy`` (IN, OUT) and ``db`` the sum of dy over the batch
    (OUT,). With ``input_grad=False`` dx is not computed and comes back as None."""
    x, w = _linear_args(x, w)
    dy = _checks.float_array(dy, "dy", 2, "(N, OUT)")
    _checks.same_dtype("dy", dy, "x", x)
    _checks.expect_shape(dy, "dy", (x.shape[0], w.shape[1]))
    _checks.boolean(input_grad, "input_grad")
    return _run("linear_backward", dy, x, w, input_grad)


def adam_step(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    *,
    beta1: float,
    beta2: float,
    lr_t: float,
    v_scale: float,
    eps: float,
) -> None:
    """One Adam update of ``param`` and its moments ``m`` and ``v``, all in place::

        m = beta1 * m + (1 - beta1) * grad;   v = beta2 * v + (1 - beta2) * grad**2
        param -= lr_t * m / (sqrt(v * v_scale) + eps)

    ``lr_t`` is the learning rate times the first moment's bias correction, ``v_scale`` the
    second moment's (see :class:`dlx.optim.Adam`); moments that decay below the smallest
    normal float become 0. All four arrays have one shape and dtype; the three updated in
    place must be C-contiguous and writeable. The C++ kernel and the NumPy reference agree bit
    for bit.
    """
    param = _checks.float_array(param, "param")
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        _checks.same_dtype(name, _checks.float_array(a, name), "param", param)
        _checks.expect_shape(a, name, param.shape)
    for name, a in (("param", param), ("m", m), ("v", v)):
        _checks.updatable(a, name)
    scalars = {"beta1": beta1, "beta2": beta2, "lr_t": lr_t, "v_scale": v_scale, "eps": eps}
    for name, value in scalars.items():
        if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
            raise DlxTypeError(f"{name} must be a number, got {type(value).__name__}")
    _run("adam_step", param, grad, m, v, *(float(x) for x in scalars.values()))
