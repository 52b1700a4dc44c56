"""Argument checks shared by every op of dlx.ops.

Each check either returns the normalised value or raises ``TypeError`` (wrong kind of value)
or ``ValueError`` (right kind, wrong size) with a message that names the argument and what
it got, so both backends see only arguments they can handle.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from ..errors import DlxTypeError, DlxValueError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _is_int(value: object) -> bool:
    if type(value) is int:  # the common case, without the slower abstract-class check
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def integer(value: object, name: str, minimum: int) -> int:
    """``value`` as a Python int that is at least ``minimum``."""
    if not _is_int(value):
        raise DlxTypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)  # type: ignore[arg-type]
    if value < minimum:
        raise DlxValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, each at least ``minimum``, as an (h, w) tuple."""
    if (
        type(value) is tuple
        and len(value) == 2
        and type(value[0]) is int
        and type(value[1]) is int
        and min(value) >= minimum
    ):
        return value  # a normalised pair, as the layers pass: the common case, checked fast
    if _is_int(value):
        value = (value, value)
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(_is_int(v) for v in value)
    ):
        raise DlxTypeError(f"{name} must be an int or a pair of ints (h, w), got {value!r}")
    h, w = int(value[0]), int(value[1])
    if h < minimum or w < minimum:
        raise DlxValueError(f"{name} must be >= {minimum}, got ({h}, {w})")
    return h, w


def float_array(a: object, name: str, ndim: int | None = None, layout: str = "") -> np.ndarray:
    """``a`` itself, checked to be a float32 or float64 array of ``ndim`` dimensions (None:
    any). It is neither cast nor copied here: the ops make it contiguous only once every
    check has passed, so a request that is refused never costs a copy."""
    if not isinstance(a, np.ndarray):
        raise DlxTypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise DlxTypeError(f"{name} must be float32 or float64, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise DlxValueError(f"{name} must be {ndim}-D {layout}, got shape {a.shape}")
    return a


def float_dtype(value: object, name: str = "dtype") -> np.dtype:
    """``value`` as float32 or float64, the two dtypes dlx computes in."""
    try:
        dtype = np.dtype(value)  # type: ignore[call-overload]
    except TypeError:
        raise DlxTypeError(f"{name} must be float32 or float64, got {value!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise DlxTypeError(f"{name} must be float32 or float64, got {dtype}")
    return dtype


def finite_number(value: object, name: str) -> float:
    """``value`` as a finite Python float (ints allowed, bools not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise DlxTypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise DlxValueError(f"{name} must be finite, got {value}")
    return value


def boolean(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise DlxTypeError(f"{name} must be True or False, got {value!r}")
    return value


def updatable(a: np.ndarray, name: str) -> None:
    """An array an op writes into must be C-contiguous and writeable: a copy would take the
    result instead."""
    if not (a.flags.c_contiguous and a.flags.writeable):
        raise DlxValueError(
            f"{name} is updated in place and must be a C-contiguous, writeable array"
        )


def same_dtype(name: str, a: np.ndarray, ref_name: str, ref: np.ndarray) -> None:
    if a.dtype != ref.dtype:
        raise DlxTypeError(
            f"{name} has dtype {a.dtype} but {ref_name} has dtype {ref.dtype}; "
            "convert one explicitly (dlx never casts silently)"
        )


def shape_of(value: object, name: str) -> tuple[int, int, int, int]:
    """An (N, C, H, W) shape of non-negative ints."""
    if not isinstance(value, Sequence) or len(value) != 4 or not all(_is_int(v) for v in value):
        raise DlxTypeError(f"{name} must be a shape (N, C, H, W) of 4 ints, got {value!r}")
    shape = tuple(int(v) for v in value)
    if min(shape) < 0:
        raise DlxValueError(f"{name} must not hold negative sizes, got {shape}")
    return shape  # type: ignore[return-value]


def expect_shape(a: np.ndarray, name: str, shape: tuple[int, ...]) -> None:
    if a.shape != shape:
        raise DlxValueError(f"{name} must have shape {shape}, got {a.shape}")


def output_hw(
    hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pad: tuple[int, int],
) -> tuple[int, int]:
    """(OH, OW) of a window op, refusing a kernel larger than the padded input."""
    padded = (hw[0] + 2 * pad[0], hw[1] + 2 * pad[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise DlxValueError(
            f"kernel_size {kernel} is larger than the padded input {padded} (input {hw}, pad {pad})"
        )
    return tuple((p - k) // s + 1 for p, k, s in zip(padded, kernel, stride))  # type: ignore[return-value]


def pool_pad(kernel: tuple[int, int], pad: tuple[int, int]) -> None:
    """Pooling padding of at most half the kernel, so every window covers a real element."""
    if 2 * pad[0] > kernel[0] or 2 * pad[1] > kernel[1]:
        raise DlxValueError(f"pad {pad} must be at most half of kernel_size {kernel} for pooling")


# The largest array an op allocates: 2**31 elements (8 GiB of float32). A request beyond it is
# refused before anything is allocated, with the size it would have needed.
MAX_ELEMENTS = 2**31


def allocation(shape: tuple[int, ...], dtype: np.dtype, name: str) -> None:
    count = 1
    for size in shape:
        count *= int(size)
    if count > MAX_ELEMENTS:
        gib = count * np.dtype(dtype).itemsize / 2**30
        raise DlxValueError(
            f"{name} would have shape {tuple(shape)}: {count:,} elements ({gib:,.1f} GiB), more "
            f"than the {MAX_ELEMENTS:,} dlx allocates for one array"
        )
