"""Runtime CPU dispatch: the kernels of every level this CPU runs match the NumPy reference, the
widest level runs by default, and DLX_CPU_CAPABILITY lowers the choice, warns when it asks for
more than the CPU has and refuses names it does not know."""

import os
import subprocess
import sys

import dlx
import dlx.ops as ops
import numpy as np
import pytest
from conftest import DTYPES
from dlx.ops import _native
from helpers import assert_close

LEVELS = ("baseline", "avx2", "avx512")
SUPPORTED = ops.cpu_capabilities()


def _python(code, **env):
    environ = {k: v for k, v in os.environ.items() if k != "DLX_CPU_CAPABILITY"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(params=SUPPORTED)
def capability(request):
    """Runs the test with the kernels of each level this CPU supports."""
    previous = ops.cpu_capability()
    _native._core.set_cpu_capability(request.param)
    assert ops.cpu_capability() == request.param
    yield request.param
    _native._core.set_cpu_capability(previous)


def test_supported_levels_follow_the_cpu_features():
    features = dict(_native._core.cpu_features())
    compiled = _native._core.compiled_capabilities()
    assert list(SUPPORTED) == [level for level in LEVELS if level in SUPPORTED]
    if not features:  # not x86: the generic kernels only
        assert SUPPORTED == ("baseline",)
        return
    assert "baseline" in SUPPORTED
    avx2 = features["avx"] and features["avx2"] and features["fma"]
    avx512 = avx2 and all(features[f"avx512{s}"] for s in ("f", "bw", "dq", "vl"))
    assert ("avx2" in SUPPORTED) == (avx2 and "avx2" in compiled)
    assert ("avx512" in SUPPORTED) == (avx512 and "avx512" in compiled)


def test_the_widest_supported_level_runs_by_default():
    result = _python("import dlx; print(dlx.ops.cpu_capability())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == SUPPORTED[-1]


@pytest.mark.parametrize("level", SUPPORTED)
def test_the_environment_selects_each_supported_level(level):
    result = _python("import dlx; print(dlx.ops.cpu_capability())", DLX_CPU_CAPABILITY=level)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == level
    assert "Warning" not in result.stderr


def test_an_unknown_level_is_a_clear_error_at_the_first_op():
    result = _python(FIRST_OP, DLX_CPU_CAPABILITY="sse9")
    assert result.returncode != 0 and result.stdout.strip() == "imported"
    assert (
        "ValueError: DLX_CPU_CAPABILITY must be one of baseline, avx2, avx512, got 'sse9'"
        in result.stderr
    )


@pytest.mark.skipif(SUPPORTED[-1] == "avx512", reason="this CPU runs every level")
def test_asking_for_more_than_this_cpu_has_warns_and_falls_back():
    result = _python("import dlx; print(dlx.ops.cpu_capability())", DLX_CPU_CAPABILITY="avx512")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == SUPPORTED[-1]
    assert "RuntimeWarning: DLX_CPU_CAPABILITY=avx512:" in result.stderr
    assert f"using the {SUPPORTED[-1]} kernels" in result.stderr


class _CoreOfAnAvx2Cpu:
    """Stands in for dlx._core on a CPU with AVX2 but no AVX-512."""

    def __init__(self):
        self.level = "avx2"

    def supported_capabilities(self):
        return ["baseline", "avx2"]

    def compiled_capabilities(self):
        return ["baseline", "avx2", "avx512"]

    def set_cpu_capability(self, name):
        assert name in self.supported_capabilities()
        self.level = name


FIRST_OP = "import dlx, numpy as np\nprint('imported')\ndlx.ops.relu(np.zeros(3))"


def test_the_fallback_is_the_widest_level_below_the_request(monkeypatch):
    core = _CoreOfAnAvx2Cpu()
    monkeypatch.setattr(_native, "_core", core)
    monkeypatch.setenv("DLX_CPU_CAPABILITY", "AVX512")
    with pytest.warns(RuntimeWarning, match="this CPU cannot run those kernels.*using the avx2"):
        _native._apply_cpu_capability_from_env()
    assert core.level == "avx2"
    monkeypatch.setenv("DLX_CPU_CAPABILITY", "baseline")
    _native._apply_cpu_capability_from_env()
    assert core.level == "baseline"


def test_the_extension_refuses_a_level_this_cpu_cannot_run():
    before = ops.cpu_capability()
    with pytest.raises(ValueError, match="has no sse9 kernels"):
        _native._core.set_cpu_capability("sse9")
    missing = [level for level in LEVELS if level not in SUPPORTED]
    for level in missing:
        with pytest.raises(ValueError, match=f"(cannot run|has no) (the )?{level} kernels"):
            _native._core.set_cpu_capability(level)
    assert ops.cpu_capability() == before


# Shapes for each algorithm of the convolution, on every vector width: im2col (stride 2),
# pointwise (1x1), shifted tiled by rows (28x28), shifted tiled by positions (9x6: its padded
# rows are mostly padding).
CONV_CASES = [
    ((4, 3, 11, 10), 5, (3, 3), 2, 1),
    ((4, 8, 6, 7), 6, (1, 1), 1, 0),
    ((2, 16, 28, 28), 24, (3, 3), 1, 1),
    ((2, 16, 9, 6), 48, (3, 3), 1, 1),
    # The grad input tiled by positions in a part whose regions all round up (baseline level):
    # the workspace must hold every way a thread's part is carved.
    ((4, 17, 7, 3), 17, (2, 2), 1, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("x_shape", "fn", "kernel", "stride", "pad"), CONV_CASES)
def test_convolution_matches_the_reference_at_every_level(
    capability, rng, dtype, x_shape, fn, kernel, stride, pad
):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((fn, x_shape[1], *kernel)).astype(dtype)
    b = rng.standard_normal(fn).astype(dtype)
    y = ops.conv2d(x, w, b, stride, pad)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = ops.conv2d_backward(dy, x, w, stride, pad)
    with ops.use_backend("numpy"):
        assert_close(y, ops.conv2d(x, w, b, stride, pad), dtype)
        for got, want in zip(grads, ops.conv2d_backward(dy, x, w, stride, pad), strict=True):
            assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_relu_and_batchnorm_match_the_reference_at_every_level(capability, rng, dtype):
    x = rng.standard_normal((3, 5, 9, 8)).astype(dtype)
    dy = rng.standard_normal((3, 5, 4, 4)).astype(dtype)
    gamma, beta = rng.standard_normal((2, 5)).astype(dtype)

    def run():
        y, argmax = ops.max_pool2d(x, 2, 2, 0)
        mean, var = ops.batch_norm_stats(x)
        inv_std = (1 / np.sqrt(var + 1e-5)).astype(dtype)
        return (
            y,
            argmax,
            ops.max_pool2d_backward(dy, argmax, x.shape, 2, 2, 0),
            ops.avg_pool2d(x, 3, 2, 1),
            ops.relu(x),
            ops.relu_backward(x, ops.relu(x)),
            ops.add(x, x[::-1], relu=True),
            mean,
            var,
            ops.batch_norm_apply(x, mean, inv_std, gamma, beta),
            *ops.batch_norm_backward(x, x, mean, inv_std, gamma),
        )

    got = run()
    with ops.use_backend("numpy"):
        want = run()
    for a, b in zip(got, want, strict=True):
        assert_close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_is_bit_for_bit_the_reference_at_every_level(capability, rng, dtype):
    shape = (70001,)  # past the parallel grain, and not a multiple of any vector width
    param, grad = rng.standard_normal((2, *shape)).astype(dtype)
    m = rng.standard_normal(shape).astype(dtype) * 1e-3
    v = np.abs(rng.standard_normal(shape)).astype(dtype) * 1e-6
    arrays = {name: [a.copy(), a.copy()] for name, a in (("p", param), ("m", m), ("v", v))}
    hyper = dict(beta1=0.9, beta2=0.999, lr_t=1e-3, v_scale=1.0, eps=1e-8)
    for i, backend in enumerate(("cpp", "numpy")):
        with ops.use_backend(backend):
            ops.adam_step(arrays["p"][i], grad, arrays["m"][i], arrays["v"][i], **hyper)
    for pair in arrays.values():
        np.testing.assert_array_equal(pair[0], pair[1])


def test_show_config_names_the_level_build_and_blas(capsys):
    dlx.show_config()
    out = capsys.readouterr().out
    assert f"cpu capability: {ops.cpu_capability()}" in out
    assert f"this CPU runs: {', '.join(SUPPORTED)}" in out
    info = _native._core.build_info()
    assert f"compiler: {info['compiler']}" in out
    assert "blas: OpenBLAS" in out
    assert f"threads: {dlx.threads.get_num_threads()}" in out
    assert dlx.config.config()["kernels"]["cpu_capability"] == ops.cpu_capability()
