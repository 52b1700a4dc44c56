"""Choosing the backend: default, switching, context manager, environment variable; the
algorithms each backend runs."""

import os
import subprocess
import sys

import dlx
import dlx.ops as ops
import numpy as np
import pytest


def test_cpp_is_the_default():
    assert ops.backend() == "cpp"


def test_use_backend_as_context_manager_restores():
    with ops.use_backend("numpy") as switch:
        assert ops.backend() == "numpy"
        assert repr(switch) == "use_backend('numpy')"
    assert ops.backend() == "cpp"


def test_set_backend_switches_the_process_and_a_block_takes_precedence():
    ops.set_backend("numpy")
    try:
        assert ops.backend() == "numpy"
        with ops.use_backend("cpp"):
            assert ops.backend() == "cpp"
        assert ops.backend() == "numpy"
    finally:
        ops.set_backend("cpp")
    assert ops.backend() == "cpp"


def test_use_backend_without_with_warns_and_changes_nothing():
    with pytest.warns(RuntimeWarning, match=r"only inside a `with` block.*set_backend\('numpy'\)"):
        ops.use_backend("numpy")
    assert ops.backend() == "cpp"


def test_use_backend_is_local_to_its_thread():
    import threading

    seen = []
    with ops.use_backend("numpy"):
        worker = threading.Thread(target=lambda: seen.append(ops.backend()))
        worker.start()
        worker.join()
        assert ops.backend() == "numpy"
    assert seen == ["cpp"]


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"backend must be one of \('cpp', 'numpy'\), got 'cuda'"):
        ops.use_backend("cuda")
    with pytest.raises(ValueError, match=r"backend must be one of"):
        ops.set_backend("cuda")
    assert ops.backend() == "cpp"


def _run(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_environment_variable_selects_numpy():
    result = _run("import dlx.ops; print(dlx.ops.backend())", DLX_BACKEND="numpy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"


def test_environment_variable_rejects_unknown_names():
    script = "import dlx.ops, numpy as np\nprint(1)\ndlx.ops.relu(np.zeros(3))"
    result = _run(script, DLX_BACKEND="gpu")
    assert result.returncode != 0 and result.stdout.strip() == "1"
    assert "DLX_BACKEND must be one of ('cpp', 'numpy'), got 'gpu'" in result.stderr


def test_fresh_import_shows_cpp_backend():
    result = _run("import dlx, dlx.ops; print(dlx.ops.backend())", DLX_BACKEND="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpp"


def _algorithms(x_shape, w_shape, stride=1, pad=0):
    x = np.zeros(x_shape, np.float32)
    w = np.zeros(w_shape, np.float32)
    return ops.conv2d_algorithms(x, w, stride, pad)


def test_conv2d_algorithms_by_geometry():
    """The C++ backend names the algorithm of each product: Winograd for 3x3 kernels at stride
    1 and padding 1 from 16 channels, the shifted route at stride 1 and at stride 2 (its
    backward from 4 input channels), a 1x1 kernel without unfolding, im2col otherwise."""
    shifted = {"shifted", "shifted by positions"}  # which one depends on the vector width
    deepconv_b = _algorithms((8, 32, 14, 14), (64, 32, 3, 3), pad=1)
    assert deepconv_b == dict.fromkeys(("forward", "grad_weight", "grad_input"), "winograd")
    unpadded = _algorithms((8, 32, 14, 14), (64, 32, 3, 3), pad=0)
    assert unpadded["grad_weight"] == "shifted"
    assert {unpadded["forward"], unpadded["grad_input"]} <= shifted
    # 2 of every 6 positions of the padded rows are outputs: tiles by positions on any CPU.
    assert _algorithms((8, 16, 9, 6), (48, 16, 5, 5))["forward"] == "shifted by positions"
    assert _algorithms((8, 8, 56, 56), (8, 8, 3, 3), pad=1) == dict.fromkeys(
        ("forward", "grad_weight", "grad_input"), "shifted"
    )
    assert _algorithms((8, 1, 28, 28), (30, 1, 5, 5)) == {
        "forward": "shifted",
        "grad_weight": "im2col",
        "grad_input": "im2col",
    }
    assert _algorithms((8, 3, 32, 32), (32, 3, 3, 3), 2, 1) == {
        "forward": "shifted",
        "grad_weight": "im2col",
        "grad_input": "im2col",
    }
    # A ResNet stage's entry: 3x3 at stride 2 on the shifted route, its 1x1 shortcut by im2col.
    assert set(_algorithms((8, 16, 28, 28), (32, 16, 3, 3), 2, 1).values()) <= shifted
    assert set(_algorithms((8, 16, 28, 28), (32, 16, 1, 1), 2).values()) == {"im2col"}
    assert set(_algorithms((8, 16, 28, 28), (32, 16, 3, 3), 3, 1).values()) == {"im2col"}
    assert set(_algorithms((8, 16, 7, 7), (8, 16, 1, 1)).values()) == {"pointwise"}


def test_conv2d_algorithms_follow_threads_and_backend():
    """Fewer images than threads go the im2col route (it splits one image's positions among
    the threads); the NumPy backend only has im2col."""
    before = dlx.threads.get_num_threads()
    dlx.threads.set_num_threads(2)
    try:
        assert _algorithms((1, 32, 14, 14), (64, 32, 3, 3), pad=1)["forward"] == "im2col"
        assert _algorithms((2, 32, 14, 14), (64, 32, 3, 3), pad=1)["forward"] != "im2col"
    finally:
        dlx.threads.set_num_threads(before)
    with ops.use_backend("numpy"):
        assert set(_algorithms((8, 32, 14, 14), (64, 32, 3, 3), pad=1).values()) == {"im2col"}
