"""Bad input gets a TypeError or ValueError naming the argument and what it got."""

import dlx.ops as ops
import numpy as np
import pytest
from dlx import _core

X = np.zeros((2, 3, 6, 6), np.float32)
W = np.zeros((4, 3, 3, 3), np.float32)
Y = np.zeros((2, 4, 4, 4), np.float32)
POOLED = np.zeros((2, 3, 3, 3), np.float32)
ARGMAX = np.zeros((2, 3, 3, 3), np.int64)
LINEAR = (np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float32))  # x, w

CASES = {
    "x-int": (
        lambda: ops.conv2d(X.astype(np.int32), W),
        TypeError,
        r"x must be float32 or float64, got dtype int32",
    ),
    "x-float16": (lambda: ops.conv2d(X.astype(np.float16), W), TypeError, r"x .*float16"),
    "x-object": (lambda: ops.max_pool2d(X.astype(object), 2), TypeError, r"x .*object"),
    "x-list": (
        lambda: ops.avg_pool2d(X.tolist(), 2),
        TypeError,
        r"x must be a numpy.ndarray, got list",
    ),
    "x-3d": (lambda: ops.conv2d(X[0], W), ValueError, r"x must be 4-D .*got shape \(3, 6, 6\)"),
    "w-3d": (lambda: ops.conv2d(X, W[0]), ValueError, r"w must be 4-D .*got shape \(3, 3, 3\)"),
    "w-dtype": (
        lambda: ops.conv2d(X, W.astype(np.float64)),
        TypeError,
        r"w has dtype float64 but x has dtype float32",
    ),
    "channels": (lambda: ops.conv2d(X, W[:, :2]), ValueError, r"w has 2 input channels .* x has 3"),
    "bias-length": (
        lambda: ops.conv2d(X, W, np.zeros(3, np.float32)),
        ValueError,
        r"b must have shape \(4,\), got \(3,\)",
    ),
    "bias-2d": (
        lambda: ops.conv2d(X, W, np.zeros((4, 1), np.float32)),
        ValueError,
        r"b must be 1-D",
    ),
    "bias-dtype": (lambda: ops.conv2d(X, W, np.zeros(4)), TypeError, r"b has dtype float64"),
    "algorithms-channels": (
        lambda: ops.conv2d_algorithms(X, W[:, :2]),
        ValueError,
        r"w has 2 input channels .* x has 3",
    ),
    "algorithms-pad": (
        lambda: ops.conv2d_algorithms(X, W, pad=-1),
        ValueError,
        r"pad must be >= 0, got \(-1, -1\)",
    ),
    "stride-zero": (
        lambda: ops.conv2d(X, W, stride=0),
        ValueError,
        r"stride must be >= 1, got \(0, 0\)",
    ),
    "stride-negative": (
        lambda: ops.im2col(X, 2, stride=(1, -1)),
        ValueError,
        r"stride must be >= 1, got \(1, -1\)",
    ),
    "stride-float": (
        lambda: ops.conv2d(X, W, stride=1.5),
        TypeError,
        r"stride must be an int or a pair",
    ),
    "stride-bool": (
        lambda: ops.conv2d(X, W, stride=True),
        TypeError,
        r"stride must be an int or a pair",
    ),
    "stride-triple": (
        lambda: ops.conv2d(X, W, stride=(1, 1, 1)),
        TypeError,
        r"stride must be an int or a pair",
    ),
    "kernel-zero": (
        lambda: ops.max_pool2d(X, 0),
        ValueError,
        r"kernel_size must be >= 1, got \(0, 0\)",
    ),
    "kernel-too-large": (
        lambda: ops.conv2d(X, np.zeros((1, 3, 9, 3), np.float32)),
        ValueError,
        r"kernel_size \(9, 3\) is larger than the padded input \(6, 6\)",
    ),
    "pool-kernel-too-large": (
        lambda: ops.max_pool2d(X, 7),
        ValueError,
        r"larger than the padded input",
    ),
    "pad-negative": (
        lambda: ops.conv2d(X, W, pad=-1),
        ValueError,
        r"pad must be >= 0, got \(-1, -1\)",
    ),
    "pool-pad-too-large": (
        lambda: ops.max_pool2d(X, 2, pad=2),
        ValueError,
        r"pad \(2, 2\) must be at most half of kernel_size \(2, 2\)",
    ),
    "dy-shape": (
        lambda: ops.conv2d_backward(Y[:, :3], X, W),
        ValueError,
        r"dy must have shape \(2, 4, 4, 4\), got \(2, 3, 4, 4\)",
    ),
    "dy-dtype": (
        lambda: ops.conv2d_backward(Y.astype(np.float64), X, W),
        TypeError,
        r"dy has dtype float64",
    ),
    "input-grad-not-bool": (
        lambda: ops.conv2d_backward(Y, X, W, input_grad=1),
        TypeError,
        r"input_grad must be True or False, got 1",
    ),
    "pool-dy-shape": (
        lambda: ops.max_pool2d_backward(POOLED[:1], ARGMAX, X.shape, 2),
        ValueError,
        r"dy must have shape \(2, 3, 3, 3\), got \(1, 3, 3, 3\)",
    ),
    "avg-dy-shape": (
        lambda: ops.avg_pool2d_backward(POOLED[:, :, :2], X.shape, 2),
        ValueError,
        r"dy must have shape \(2, 3, 3, 3\), got \(2, 3, 2, 3\)",
    ),
    "argmax-shape": (
        lambda: ops.max_pool2d_backward(POOLED, ARGMAX[:, :1], X.shape, 2),
        ValueError,
        r"argmax must have shape \(2, 3, 3, 3\), got \(2, 1, 3, 3\)",
    ),
    "argmax-dtype": (
        lambda: ops.max_pool2d_backward(POOLED, ARGMAX.astype(np.int32), X.shape, 2),
        TypeError,
        r"argmax must be an int64 numpy.ndarray, got int32",
    ),
    "col-shape": (
        lambda: ops.col2im(np.zeros((10, 27), np.float32), X.shape, 3),
        ValueError,
        r"col must have shape \(32, 27\), got \(10, 27\)",
    ),
    "x-shape-short": (
        lambda: ops.col2im(np.zeros((32, 27), np.float32), (2, 3, 6), 3),
        TypeError,
        r"x_shape must be a shape \(N, C, H, W\)",
    ),
    "x-shape-negative": (
        lambda: ops.avg_pool2d_backward(POOLED, (2, 3, -6, 6), 2),
        ValueError,
        r"x_shape must not hold negative sizes",
    ),
    "output-size-kernel": (
        lambda: ops.conv_output_size(4, 7),
        ValueError,
        r"kernel 7 is larger than the padded input 4",
    ),
    "output-size-stride": (
        lambda: ops.conv_output_size(4, 2, 0),
        ValueError,
        r"stride must be >= 1, got 0",
    ),
    "relu-int": (
        lambda: ops.relu(np.zeros(3, np.int32)),
        TypeError,
        r"x must be float32 or float64, got dtype int32",
    ),
    "add-int": (
        lambda: ops.add(np.zeros(3, np.int32), np.zeros(3, np.int32)),
        TypeError,
        r"a must be float32 or float64, got dtype int32",
    ),
    "add-shape": (
        lambda: ops.add(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)),
        ValueError,
        r"b must have shape \(2, 3\), got \(3, 2\)",
    ),
    "add-dtype": (
        lambda: ops.add(np.zeros(3, np.float32), np.zeros(3)),
        TypeError,
        r"b has dtype float64 but a has dtype float32",
    ),
    "add-relu-flag": (
        lambda: ops.add(np.zeros(3), np.zeros(3), relu=1),
        TypeError,
        r"relu must be True or False, got 1",
    ),
    "relu-backward-shape": (
        lambda: ops.relu_backward(np.zeros(3, np.float32), np.zeros(4, np.float32)),
        ValueError,
        r"dy must have shape \(4,\), got \(3,\)",
    ),
    "relu-backward-dtype": (
        lambda: ops.relu_backward(np.zeros(3), np.zeros(3, np.float32)),
        TypeError,
        r"dy has dtype float64 but y has dtype float32",
    ),
    "bn-3d": (
        lambda: ops.batch_norm_stats(np.zeros((2, 3, 4), np.float32)),
        ValueError,
        r"x must be \(N, C\) or \(N, C, H, W\), got shape \(2, 3, 4\)",
    ),
    "bn-empty": (
        lambda: ops.batch_norm_stats(np.zeros((0, 3), np.float32)),
        ValueError,
        r"at least one value per channel, got shape \(0, 3\)",
    ),
    "bn-gamma-shape": (
        lambda: ops.batch_norm_apply(
            np.zeros((2, 3), np.float32),
            *[np.zeros(3, np.float32)] * 2,
            np.zeros(4, np.float32),
            np.zeros(3, np.float32),
        ),
        ValueError,
        r"gamma must have shape \(3,\), got \(4,\)",
    ),
    "bn-mean-dtype": (
        lambda: ops.batch_norm_apply(
            np.zeros((2, 3), np.float32), np.zeros(3), *[np.zeros(3, np.float32)] * 3
        ),
        TypeError,
        r"mean has dtype float64 but x has dtype float32",
    ),
    "bn-dy-shape": (
        lambda: ops.batch_norm_backward(
            np.zeros((2, 4), np.float32),
            np.zeros((2, 3), np.float32),
            *[np.zeros(3, np.float32)] * 3,
        ),
        ValueError,
        r"dy must have shape \(2, 3\), got \(2, 4\)",
    ),
    "bn-relu-output-shape": (
        lambda: ops.batch_norm_backward(
            *[np.zeros((2, 3), np.float32)] * 2,
            *[np.zeros(3, np.float32)] * 3,
            relu_output=np.zeros((3, 3), np.float32),
        ),
        ValueError,
        r"relu_output must have shape \(2, 3\), got \(3, 3\)",
    ),
    "bn-relu-flag": (
        lambda: ops.batch_norm_apply(
            np.zeros((2, 3), np.float32), *[np.zeros(3, np.float32)] * 4, relu=1
        ),
        TypeError,
        r"relu must be",
    ),
    "conv-bias-grad-flag": (
        lambda: ops.conv2d_backward(
            np.zeros((1, 1, 1, 1), np.float32),
            *[np.zeros((1, 1, 3, 3), np.float32)] * 2,
            bias_grad="no",
        ),
        TypeError,
        r"bias_grad must be",
    ),
    "linear-x-3d": (
        lambda: ops.linear(np.zeros((2, 3, 4), np.float32), np.zeros((12, 5), np.float32)),
        ValueError,
        r"x must be 2-D \(N, IN\), got shape \(2, 3, 4\)",
    ),
    "linear-features": (
        lambda: ops.linear(np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32)),
        ValueError,
        r"w has 4 input features \(shape \(4, 5\)\) but x has 3 \(shape \(2, 3\)\)",
    ),
    "linear-w-dtype": (
        lambda: ops.linear(np.zeros((2, 3), np.float32), np.zeros((3, 5))),
        TypeError,
        r"w has dtype float64 but x has dtype float32",
    ),
    "linear-x-int": (
        lambda: ops.linear(np.zeros((2, 3), np.int64), np.zeros((3, 5), np.float32)),
        TypeError,
        r"x must be float32 or float64, got dtype int64",
    ),
    "linear-bias-shape": (
        lambda: ops.linear(*LINEAR, np.zeros(4, np.float32)),
        ValueError,
        r"b must have shape \(5,\), got \(4,\)",
    ),
    "linear-dy-shape": (
        lambda: ops.linear_backward(np.zeros((2, 4), np.float32), *LINEAR),
        ValueError,
        r"dy must have shape \(2, 5\), got \(2, 4\)",
    ),
    "linear-input-grad": (
        lambda: ops.linear_backward(np.zeros((2, 5), np.float32), *LINEAR, input_grad=1),
        TypeError,
        r"input_grad must be True or False, got 1",
    ),
    "linear-huge": (
        lambda: ops.linear(
            np.zeros((1, 1), np.float32), np.broadcast_to(np.float32(0), (1, 2**31))
        ),
        ValueError,
        r"the BLAS takes sizes below 2\*\*31",
    ),
    "pool-return-indices": (
        lambda: ops.max_pool2d(X, 2, return_indices="no"),
        TypeError,
        r"return_indices must be True or False, got 'no'",
    ),
    "relu-inplace": (
        lambda: ops.relu(X, inplace=None),
        TypeError,
        r"inplace must be True or False, got None",
    ),
    "bn-inference-eps": (
        lambda: ops.batch_norm_inference(
            np.zeros((2, 3), np.float32), *[np.ones(3, np.float32)] * 4, eps=0
        ),
        ValueError,
        r"eps must be positive, got 0",
    ),
    "bn-inference-eps-string": (
        lambda: ops.batch_norm_inference(
            np.zeros((2, 3), np.float32), *[np.ones(3, np.float32)] * 4, eps="1e-5"
        ),
        TypeError,
        r"eps must be a number, got str",
    ),
    "bn-inference-var-shape": (
        lambda: ops.batch_norm_inference(
            np.zeros((2, 3), np.float32),
            np.ones(3, np.float32),
            np.ones(2, np.float32),
            *[np.ones(3, np.float32)] * 2,
        ),
        ValueError,
        r"var must have shape \(3,\), got \(2,\)",
    ),
    "output-size-float": (
        lambda: ops.conv_output_size(4.0, 2),
        TypeError,
        r"size must be an int, got float",
    ),
    "adam-grad-dtype": (
        lambda: _adam(grad=np.zeros(5)),
        TypeError,
        r"grad has dtype float64 but param has dtype float32",
    ),
    "adam-m-shape": (
        lambda: _adam(m=np.zeros(4, np.float32)),
        ValueError,
        r"m must have shape \(5,\), got \(4,\)",
    ),
    "adam-param-int": (
        lambda: _adam(param=np.zeros(5, np.int32)),
        TypeError,
        r"param must be float32 or float64, got dtype int32",
    ),
    "adam-v-strided": (
        lambda: _adam(v=np.zeros(10, np.float32)[::2]),
        ValueError,
        r"v is updated in place and must be a C-contiguous, writeable array",
    ),
    "adam-param-read-only": (
        lambda: _adam(param=_read_only(np.zeros(5, np.float32))),
        ValueError,
        r"param is updated in place",
    ),
    "adam-lr-string": (
        lambda: _adam(lr_t="0.1"),
        TypeError,
        r"lr_t must be a number, got str",
    ),
}


def _read_only(a):
    a.flags.writeable = False
    return a


def _adam(**given):
    """ops.adam_step on five float32 elements, with the arguments in `given` replaced."""
    arrays = {k: np.zeros(5, np.float32) for k in ("param", "grad", "m", "v")}
    scalars = {"beta1": 0.9, "beta2": 0.999, "lr_t": 1e-3, "v_scale": 1.0, "eps": 1e-8}
    arrays.update({k: v for k, v in given.items() if k in arrays})
    scalars.update({k: v for k, v in given.items() if k in scalars})
    ops.adam_step(*arrays.values(), **scalars)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(backend, case):
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("value", [-1, 36, 10**6])
def test_argmax_out_of_range(backend, value):
    argmax = ARGMAX.copy()
    argmax[1, 2, 0, 1] = value
    with pytest.raises(
        ValueError,
        match=rf"argmax holds {value} at flat position 46, outside the input plane \[0, 36\)",
    ):
        ops.max_pool2d_backward(POOLED, argmax, X.shape, 2)


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int32, np.complex64])
def test_core_refuses_other_dtypes_without_casting(dtype):
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.conv2d_forward(X.astype(dtype), W.astype(dtype), None, 1, 1, 0, 0)


def test_core_refuses_mixed_dtypes():
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.conv2d_forward(X, W.astype(np.float64), None, 1, 1, 0, 0)


def test_core_checks_linear_shapes_itself():
    with pytest.raises(ValueError, match=r"w has 4 input features \(shape \(4, 5\)\) but x has 3"):
        _core.linear_forward(LINEAR[0], np.zeros((4, 5), np.float32), None)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 5\), got \(2, 4\)"):
        _core.linear_backward(np.zeros((2, 4), np.float32), *LINEAR)
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.linear_forward(LINEAR[0], LINEAR[1].astype(np.float64), None)


def test_core_checks_shapes_itself():
    with pytest.raises(ValueError, match="w has 2 input channels but x has 3"):
        _core.conv2d_forward(X, W[:, :2].copy(), None, 1, 1, 0, 0)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 4, 4, 4\), got \(2, 4, 4, 3\)"):
        _core.conv2d_backward(Y[..., :3].copy(), X, W, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="stride must be positive"):
        _core.im2col(X, 2, 2, 0, 1, 0, 0)
    with pytest.raises(ValueError, match="must be at most half of kernel_size"):
        _core.avg_pool2d_forward(X, 2, 2, 2, 2, 2, 0)


def test_core_refuses_non_contiguous_input():
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.im2col(X[..., ::2], 2, 2, 1, 1, 0, 0)
