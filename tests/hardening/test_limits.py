"""Requests too large to allocate fail at once, before allocating anything."""

import resource
import time

import dlx.ops as ops
import numpy as np
import pytest


def _fails_fast(call, match):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        call()
    assert time.perf_counter() - started < 1.0
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 50


def test_huge_im2col_is_refused(backend):
    # 1 x 64 x 2048 x 2048 with a 7x7 kernel: 2**22 positions x 3136 columns = 13 * 2**30 elements.
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (1, 64, 2048, 2048), (0, 0, 0, 0))
    _fails_fast(
        lambda: ops.im2col(x, 7, 1, 3),
        r"col would have shape \(4194304, 3136\): 13,153,337,344 elements \(49.0 GiB\)",
    )


def test_huge_pool_gradient_is_refused(backend):
    dy = np.ones((1, 1, 1, 1), np.float32)
    argmax = np.zeros((1, 1, 1, 1), np.int64)
    _fails_fast(
        lambda: ops.max_pool2d_backward(dy, argmax, (1, 1, 2**20, 2**20), 2**20),
        r"the input gradient would have shape \(1, 1, 1048576, 1048576\)",
    )


def test_huge_convolution_output_is_refused(backend):
    x = np.lib.stride_tricks.as_strided(
        np.zeros(1, np.float32), (4096, 1, 1024, 1024), (0, 0, 0, 0)
    )
    w = np.zeros((64, 1, 1, 1), np.float32)
    _fails_fast(lambda: ops.conv2d(x, w), r"the output would have shape \(4096, 64, 1024, 1024\)")
