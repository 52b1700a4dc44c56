"""Kernels under concurrency: Python threads, repeated calls, and forked children."""

import multiprocessing
import warnings
from concurrent.futures import ThreadPoolExecutor

import dlx.ops as ops
import numpy as np
import pytest
from dlx import threads


def workload(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 3, 16, 16), dtype=np.float32)
    w = rng.standard_normal((6, 3, 3, 3), dtype=np.float32)
    y = ops.conv2d(x, w, None, 1, 1)
    dx, dw, db = ops.conv2d_backward(np.ones_like(y), x, w, 1, 1)
    pooled, argmax = ops.max_pool2d(y, 2)
    return y, dx, dw, db, pooled, argmax


def test_concurrent_threads_match_serial_calls():
    serial = [workload(seed) for seed in range(12)]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(workload, range(12)))
    for a, b in zip(serial, concurrent):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(
    ("c", "fn", "stride"),
    [(16, 32, 1), (32, 32, 1), (4, 32, 1), (16, 32, 2)],
    ids=["shifted", "shifted-channel-major", "im2col-few-channels", "im2col-stride2"],
)
def test_results_repeat_bit_for_bit(c, fn, stride):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, c, 20, 20), dtype=np.float32)
    w = rng.standard_normal((fn, c, 3, 3), dtype=np.float32)
    y = ops.conv2d(x, w, None, stride, 1)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    first = ops.conv2d_backward(dy, x, w, stride, 1)
    for _ in range(3):
        assert np.array_equal(y, ops.conv2d(x, w, None, stride, 1))
        for a, b in zip(first, ops.conv2d_backward(dy, x, w, stride, 1), strict=True):
            assert np.array_equal(a, b)


def test_thread_count_can_be_set():
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        assert threads.get_num_threads() == 1
        one = workload(3)
    finally:
        threads.set_num_threads(before)
    for a, b in zip(one, workload(3)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="the thread count must be an int >= 1, got 0"):
        threads.set_num_threads(0)


def _child(queue):
    y = workload(7)[0]
    queue.put(float(y.sum()))


@pytest.mark.timeout(120)
def test_a_forked_child_runs_kernels():
    workload(7)  # the parent's OpenMP threads exist before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads: forking is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    child.join(60)
    assert child.exitcode == 0, "the forked child hung or crashed"
    assert queue.get(timeout=5) == pytest.approx(float(workload(7)[0].sum()), rel=1e-5)
