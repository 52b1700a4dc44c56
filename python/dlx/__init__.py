"""dlx: deep learning from scratch, readable NumPy layers on fast C++ kernels."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import ops

try:
    __version__ = version("dlx")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__", "ops"]
