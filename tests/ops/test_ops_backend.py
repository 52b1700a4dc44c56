"""Choosing the backend: default, switching, context manager, environment variable."""

import os
import subprocess
import sys

import dlx.ops as ops
import pytest


def test_cpp_is_the_default():
    assert ops.backend() == "cpp"


def test_use_backend_as_context_manager_restores():
    with ops.use_backend("numpy") as switch:
        assert ops.backend() == "numpy"
        assert repr(switch) == "use_backend('numpy')"
    assert ops.backend() == "cpp"


def test_use_backend_as_a_call():
    ops.use_backend("numpy")
    try:
        assert ops.backend() == "numpy"
    finally:
        ops.use_backend("cpp")
    assert ops.backend() == "cpp"


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"backend must be one of \('cpp', 'numpy'\), got 'cuda'"):
        ops.use_backend("cuda")
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
    result = _run("import dlx.ops", DLX_BACKEND="gpu")
    assert result.returncode != 0
    assert "DLX_BACKEND must be one of ('cpp', 'numpy'), got 'gpu'" in result.stderr


def test_fresh_import_shows_cpp_backend():
    result = _run("import dlx, dlx.ops; print(dlx.ops.backend())", DLX_BACKEND="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpp"
