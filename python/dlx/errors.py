"""The errors dlx raises for a user's mistake, under one base class.

Each is also the built-in exception it refines (``DlxValueError`` is a ``ValueError``, ...),
so code that catches the built-in ones keeps working. The command line prints any
:class:`DlxError` as one line and exits with status 2; any other exception is a bug in dlx
and shows its traceback.
"""

from __future__ import annotations

__all__ = [
    "DlxError",
    "DlxFileNotFoundError",
    "DlxKeyError",
    "DlxTypeError",
    "DlxValueError",
    "MissingExtraError",
    "TrainingDivergedError",
]


class DlxError(Exception):
    """Base class of the errors dlx raises for a mistake in what it was given."""


class DlxValueError(DlxError, ValueError):
    """An argument, setting or file of the right kind with a value dlx cannot use."""


class DlxTypeError(DlxError, TypeError):
    """An argument of the wrong kind (a list for an array, float16 for float32, ...)."""


class DlxFileNotFoundError(DlxError, FileNotFoundError):
    """A file or folder the user named that is not there."""


class TrainingDivergedError(DlxError, FloatingPointError):
    """The training loss became NaN or infinite (too large a learning rate, or bad inputs)."""


class DlxKeyError(DlxError, KeyError):
    """A name dlx does not know (a layer type, a parameter key)."""

    def __str__(self) -> str:  # KeyError would show the message quoted, as a key
        return str(self.args[0]) if self.args else ""


class MissingExtraError(DlxError, ImportError):
    """A feature whose optional dependencies are not installed; the message names the extra
    (``pip install "dlx-scratch[onnx]"``) that brings them."""

    def __init__(self, feature: str, extra: str, package: str) -> None:
        super().__init__(
            f'{feature} needs the {package} package: pip install "dlx-scratch[{extra}]"'
        )
        self.extra = extra
