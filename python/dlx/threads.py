"""How many threads dlx's kernels use.

dlx's C++ kernels run on OpenMP threads and call a single-threaded BLAS (its own copy of
OpenBLAS, from scipy-openblas32) inside them. The thread count comes from
``DLX_NUM_THREADS``, else ``OMP_NUM_THREADS``, else every core.

Every product of the built-in layers, the fully connected ones included
(:func:`dlx.ops.linear`), runs there: with the C++ backend no training or inference step
calls NumPy's BLAS, so NumPy's thread pool, whose threads keep spinning for a while after each
product, never competes with dlx's for the cores, and dlx never changes NumPy's thread
settings. (The NumPy backend, :mod:`dlx.ops.reference`, multiplies with NumPy's ``@``.)
"""

from __future__ import annotations

import os
import warnings

from .errors import DlxValueError

__all__ = ["get_num_threads", "set_num_threads"]


def _core():
    from .ops import _native

    return _native._core


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in dlx's kernels (from the calling thread on)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise DlxValueError(f"the thread count must be an int >= 1, got {n!r}")
    _core().set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads dlx's kernels use."""
    return _core().get_num_threads()


def blas_single_threaded():
    """Deprecated, and no longer needed: a context manager limiting every loaded BLAS (NumPy's
    included) to one thread, through threadpoolctl (``pip install threadpoolctl``)."""
    warnings.warn(
        "dlx.threads.blas_single_threaded is no longer needed (dlx's layers no longer call "
        "NumPy's BLAS) and will be removed; to limit NumPy's BLAS in code of your own, use "
        "threadpoolctl.threadpool_limits(1, user_api='blas')",
        DeprecationWarning,
        stacklevel=2,
    )
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise ImportError(
            "blas_single_threaded needs threadpoolctl: pip install threadpoolctl"
        ) from None
    return threadpool_limits(limits=1, user_api="blas")


def _apply_environment() -> None:
    value = os.environ.get("DLX_NUM_THREADS", "").strip()
    if not value:
        return
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise DlxValueError(f"DLX_NUM_THREADS must be a positive integer, got {value!r}")
    set_num_threads(n)
