"""Fuzzing every dlx.ops entry point: random shapes, dtypes, layouts and window arguments,
valid or not. Every call either matches the NumPy reference or raises ValueError/TypeError;
nothing crashes, hangs or returns something else.

DLX_FUZZ_EXAMPLES sets the examples per entry point (default 150); the count of cases run is
printed at the end of the module.
"""

import os

import dlx.ops as ops
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("DLX_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.bool_, np.complex64, object]
COUNTS = {"matched": 0, "refused": 0}

sizes = st.integers(0, 7)
window_value = st.one_of(
    st.integers(1, 3),
    st.integers(-1, 6),
    st.tuples(st.integers(-1, 6), st.integers(-1, 6)),
    st.just(2.5),
    st.none(),
)


@st.composite
def arrays(draw, ndim=None, dtype=None):
    # Mostly the valid kinds (4-D float arrays), so that many calls get past the checks.
    ndim = draw(st.sampled_from([4, 4, 4, 4, 2, 0, 1, 3, 5])) if ndim is None else ndim
    shape = tuple(draw(sizes) for _ in range(ndim))
    if dtype is None:
        dtype = draw(st.sampled_from([np.float32, np.float64] * 3 + DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.standard_normal(shape)
    if draw(st.booleans()) and a.size:
        a.flat[draw(st.integers(0, a.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 0.0])
        )
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf cast to an integer dtype
        a = a.astype(dtype) if dtype is not object else a.astype(object)
    layout = draw(st.sampled_from(["c", "fortran", "strided", "read-only"]))
    if layout == "fortran":
        a = np.asfortranarray(a)
    elif layout == "strided" and a.ndim:
        wide = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), dtype=a.dtype)
        wide[..., ::2] = a
        a = wide[..., ::2]
    elif layout == "read-only":
        a = a.copy()
        a.flags.writeable = False
    return a


def check(name, *args, **kwargs):
    """Run on C++; if it is accepted, the NumPy reference must accept it and agree.

    NaN and inf inputs make NumPy warn in the reference (inf - inf, say); the results are
    what is compared, so those warnings are silenced here.
    """
    with np.errstate(all="ignore"):
        _check(name, *args, **kwargs)


def _check(name, *args, **kwargs):
    try:
        with ops.use_backend("cpp"):
            got = getattr(ops, name)(*args, **kwargs)
    except (ValueError, TypeError):
        COUNTS["refused"] += 1
        return
    with ops.use_backend("numpy"):
        want = getattr(ops, name)(*args, **kwargs)
    for g, w in zip(
        got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)
    ):
        assert g.shape == w.shape and g.dtype == w.dtype
        tol = 1e-3 if g.dtype == np.float32 else 1e-9
        np.testing.assert_allclose(
            g,
            w,
            rtol=tol,
            atol=tol * max(1.0, float(np.nanmax(np.abs(w), initial=0.0)))
            if np.isfinite(w).all()
            else tol,
            equal_nan=True,
        )
    COUNTS["matched"] += 1


def float_like(x):
    return x.dtype if x.dtype in (np.float32, np.float64) else np.float64


@FUZZ
@given(arrays(), window_value, window_value, window_value)
def test_fuzz_im2col_col2im(x, k, s, p):
    check("im2col", x, k, s if s is not None else 1, p if p is not None else 0)
    if x.ndim == 4 and x.dtype in (np.float32, np.float64):
        try:
            col = ops.im2col(x, k, s if s is not None else 1, p if p is not None else 0)
        except (ValueError, TypeError):
            return
        check("col2im", col, x.shape, k, s if s is not None else 1, p if p is not None else 0)


@FUZZ
@given(arrays(), arrays(), st.booleans(), window_value, window_value)
def test_fuzz_conv2d(x, w, with_bias, s, p):
    b = np.ones(w.shape[0] if w.ndim else 1, dtype=float_like(x)) if with_bias else None
    args = (x, w, b, s if s is not None else 1, p if p is not None else 0)
    check("conv2d", *args)
    try:
        y = ops.conv2d(*args)
    except (ValueError, TypeError):
        return
    check("conv2d_backward", np.ones_like(y), x, w, args[3], args[4])


@FUZZ
@given(arrays(), window_value, window_value, window_value)
def test_fuzz_pooling(x, k, s, p):
    pad = p if p is not None else 0
    check("max_pool2d", x, k, s, pad)
    check("avg_pool2d", x, k, s, pad)
    try:
        y, argmax = ops.max_pool2d(x, k, s, pad)
    except (ValueError, TypeError):
        return
    check("max_pool2d_backward", np.ones_like(y), argmax, x.shape, k, s, pad)
    check("avg_pool2d_backward", np.ones_like(y), x.shape, k, s, pad)
    if argmax.size:
        broken = argmax.copy()
        broken.flat[0] = x.shape[2] * x.shape[3] + 3
        check("max_pool2d_backward", np.ones_like(y), broken, x.shape, k, s, pad)


@FUZZ
@given(arrays(), arrays())
def test_fuzz_relu_and_batch_norm(x, other):
    check("relu", x)
    check("relu_backward", other, x)
    check("add", x, other)
    check("add", x, x, relu=True)
    check("batch_norm_stats", x)
    if x.ndim in (2, 4) and x.dtype in (np.float32, np.float64) and x.shape[1]:
        c = x.shape[1]
        ones = np.ones(c, x.dtype)
        check("batch_norm_apply", x, ones * 0, ones, ones, ones * 0)
        check("batch_norm_backward", np.ones_like(x), x, ones * 0, ones, ones)


def test_fuzz_counts():
    """Runs after the fuzzers (file order): at least some cases of each kind happened."""
    print(
        f"\nfuzz cases: {COUNTS['matched']} matched the reference, {COUNTS['refused']} refused cleanly"
    )
    assert COUNTS["matched"] > 0 and COUNTS["refused"] > 0
