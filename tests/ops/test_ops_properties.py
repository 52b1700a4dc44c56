"""Property tests: random geometries, the adjoint identity and output-size invariants."""

import dlx.ops as ops
import numpy as np
from conftest import DTYPES
from helpers import assert_close, on_both
from hypothesis import given
from hypothesis import strategies as st


@st.composite
def geometries(draw, pool=False):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if pool:
        ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    else:
        ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    h = draw(st.integers(max(kh - 2 * ph, 0), 11))
    w = draw(st.integers(max(kw - 2 * pw, 0), 11))
    n, c = draw(st.integers(0, 3)), draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    return (n, c, h, w), (kh, kw), (sh, sw), (ph, pw), dtype, np.random.default_rng(seed)


@given(geometries(), st.integers(1, 4))
def test_conv2d_matches_reference(geometry, fn):
    shape, kernel, stride, pad, dtype, rng = geometry
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((fn, shape[1], *kernel)).astype(dtype)
    b = rng.standard_normal(fn).astype(dtype)
    y_cpp, y_ref = on_both("conv2d", x, w, b, stride, pad)
    assert y_cpp.shape == (shape[0], fn, *y_cpp.shape[2:])
    assert_close(y_cpp, y_ref, dtype)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    grads_cpp, grads_ref = on_both("conv2d_backward", dy, x, w, stride, pad)
    for got, want in zip(grads_cpp, grads_ref, strict=True):
        assert_close(got, want, dtype)


@given(geometries(pool=True))
def test_pooling_matches_reference(geometry):
    shape, kernel, stride, pad, dtype, rng = geometry
    x = rng.standard_normal(shape).astype(dtype)
    (y_cpp, arg_cpp), (y_ref, arg_ref) = on_both("max_pool2d", x, kernel, stride, pad)
    np.testing.assert_array_equal(y_cpp, y_ref)
    np.testing.assert_array_equal(arg_cpp, arg_ref)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx_cpp, dx_ref = on_both("max_pool2d_backward", dy, arg_ref, shape, kernel, stride, pad)
    assert_close(dx_cpp, dx_ref, dtype)

    a_cpp, a_ref = on_both("avg_pool2d", x, kernel, stride, pad)
    assert_close(a_cpp, a_ref, dtype)
    da_cpp, da_ref = on_both("avg_pool2d_backward", dy, shape, kernel, stride, pad)
    assert_close(da_cpp, da_ref, dtype)


@given(geometries())
def test_col2im_is_the_adjoint_of_im2col(geometry):
    """<im2col(x), c> == <x, col2im(c)> for every x and c, on both backends."""
    shape, kernel, stride, pad, _, rng = geometry
    x = rng.standard_normal(shape)
    for backend in ("cpp", "numpy"):
        with ops.use_backend(backend):
            col = ops.im2col(x, kernel, stride, pad)
            c = rng.standard_normal(col.shape)
            lhs = float(np.sum(col * c))
            rhs = float(np.sum(x * ops.col2im(c, shape, kernel, stride, pad)))
        assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))


@given(st.integers(0, 64), st.integers(1, 9), st.integers(1, 5), st.integers(0, 4))
def test_output_size_counts_the_windows(size, kernel, stride, pad):
    """conv_output_size is the number of window positions that fit in the padded input."""
    if kernel > size + 2 * pad:
        return
    fitting = sum(
        1
        for start in range(0, size + 2 * pad)
        if start % stride == 0 and start + kernel <= size + 2 * pad
    )
    assert ops.conv_output_size(size, kernel, stride, pad) == fitting


@given(geometries())
def test_im2col_shape(geometry):
    shape, kernel, stride, pad, dtype, rng = geometry
    x = rng.standard_normal(shape).astype(dtype)
    oh = ops.conv_output_size(shape[2], kernel[0], stride[0], pad[0])
    ow = ops.conv_output_size(shape[3], kernel[1], stride[1], pad[1])
    for col in on_both("im2col", x, kernel, stride, pad):
        assert col.shape == (shape[0] * oh * ow, shape[1] * kernel[0] * kernel[1])
        assert col.dtype == dtype
