"""How many threads dlx's kernels use, and keeping other thread pools out of their way.

dlx's C++ kernels run on OpenMP threads and call a single-threaded BLAS inside them. The
thread count comes from ``DLX_NUM_THREADS``, else ``OMP_NUM_THREADS``, else every core.

NumPy's own BLAS (used by the Affine layers' matrix products) has a thread pool of its
own, whose threads keep spinning for a while after each product. Between two convolutions
they would fight dlx's threads for the same cores, so :class:`dlx.Trainer` runs with
NumPy's BLAS limited to one thread (:func:`blas_single_threaded`, through threadpoolctl).
"""

from __future__ import annotations

import os

from threadpoolctl import ThreadpoolController

__all__ = ["blas_single_threaded", "get_num_threads", "set_num_threads"]

_controller: ThreadpoolController | None = None


def _core():
    from .ops import _native

    return _native._core


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in dlx's kernels (from the calling thread on)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the thread count must be an int >= 1, got {n!r}")
    _core().set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads dlx's kernels use."""
    return _core().get_num_threads()


def blas_single_threaded():
    """A context manager limiting every loaded BLAS (NumPy's included) to one thread."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def _apply_environment() -> None:
    value = os.environ.get("DLX_NUM_THREADS", "").strip()
    if not value:
        return
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"DLX_NUM_THREADS must be a positive integer, got {value!r}") from None
    set_num_threads(n)
