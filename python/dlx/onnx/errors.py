"""The error of a model that cannot go to or come from ONNX, and the check for the package."""

from __future__ import annotations

from types import ModuleType

from ..errors import DlxValueError, MissingExtraError

__all__ = ["OnnxError", "require_onnx"]


class OnnxError(DlxValueError):
    """A model dlx cannot express in ONNX, or an ONNX file dlx cannot (or will not) load."""


def require_onnx() -> ModuleType:
    """The ``onnx`` package, or an error that says which extra installs it."""
    try:
        import onnx
    except ImportError as error:
        raise MissingExtraError("dlx.onnx", "onnx", "onnx") from error
    return onnx
