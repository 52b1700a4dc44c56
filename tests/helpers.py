"""Run the same call on both backends and compare, in the manner of tinygrad's helper_test_op."""

from __future__ import annotations

import dlx.ops as ops
import numpy as np

# Relative tolerances of the parity suite per dtype; atol scales with the data's magnitude.
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_close(actual, expected, dtype):
    dtype = np.dtype(dtype)
    expected = np.asarray(expected, dtype=np.float64)
    assert np.asarray(actual).shape == expected.shape
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale
    )


def on_both(name, *args, **kwargs):
    """(C++ result, NumPy reference result) of ops.<name>(*args, **kwargs)."""
    results = []
    for backend in ("cpp", "numpy"):
        with ops.use_backend(backend):
            results.append(getattr(ops, name)(*args, **kwargs))
    return results


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def check_dtypes(result, dtype):
    for out in as_tuple(result):
        if out.dtype.kind == "f":
            assert out.dtype == dtype, f"output dtype {out.dtype}, input dtype {np.dtype(dtype)}"
