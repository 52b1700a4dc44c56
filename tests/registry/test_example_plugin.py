"""The example plugin as a real pip-installed package, end to end, in fresh processes."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "plugin"
DIST = "dlx-example-plugin"


def pip(*args):
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run(code, cwd):
    env = {k: v for k, v in os.environ.items() if k != "DLX_DISABLE_PLUGIN_AUTOLOAD"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def installed_plugin():
    pip("install", "--no-deps", str(PLUGIN))
    try:
        yield
    finally:
        pip("uninstall", "-y", DIST)


def test_plugin_lifecycle(installed_plugin, tmp_path):
    # The layer shows in `dlx layers`, with its distribution.
    listing = subprocess.run(
        [sys.executable, "-m", "dlx", "layers"], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line.split()[-1] for line in listing.stdout.splitlines()[1:]}
    assert rows["GELU"] == DIST and rows["LeakyReLU"] == DIST and rows["Conv2d"] == "dlx"

    # Build from a config, train a few steps, save, load: same predictions.
    trained = run(
        """
        import numpy as np, dlx
        dlx.seed(0)
        net = dlx.Sequential.from_config({"layers": [
            {"type": "Affine", "in_features": 4, "out_features": 16},
            {"type": "GELU"},
            {"type": "LeakyReLU", "negative_slope": 0.1},
            {"type": "Affine", "in_features": 16, "out_features": 3},
        ]})
        rng = np.random.default_rng(0)
        x = rng.standard_normal((60, 4)).astype(np.float32)
        t = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
        first = net.loss(x, t)
        dlx.Trainer(net, "adam", epochs=20, batch_size=20, progress=False).fit(x, t)
        assert net.loss(x, t) < first, (first, net.loss(x, t))
        dlx.save(net, "plugin_model.npz")
        again = dlx.load("plugin_model.npz")
        assert np.array_equal(again.predict(x), net.predict(x))
        # ONNX: the plugin's to_onnx nodes run in ONNX Runtime; the file loads back as GELU.
        import dlx.onnx, onnx, onnxruntime as ort
        path = dlx.onnx.export(net, "plugin_model.onnx")
        onnx.checker.check_model(onnx.load(path), full_check=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        y = net.predict(x)
        np.testing.assert_allclose(session.run(None, {"input": x})[0], y, rtol=1e-5, atol=1e-5 * abs(y).max())
        back = dlx.onnx.load(path)
        assert back.to_config() == net.to_config() and np.array_equal(back.predict(x), y)
        print("ok", type(again[1]).__module__)
        """,
        tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.split() == ["ok", "dlx_example_plugin.layers"]

    # The plugin's own tests use dlx's conformance kit.
    own = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PLUGIN,
    )
    assert own.returncode == 0, own.stdout + own.stderr

    # Without the plugin, loading the model names what is missing.
    pip("uninstall", "-y", DIST)
    try:
        missing = run("import dlx; dlx.load('plugin_model.npz')", tmp_path)
        assert missing.returncode != 0
        assert (
            "the model uses layer type 'GELU', which came from the distribution "
            "'dlx-example-plugin' when it was saved and is not installed now: "
            "pip install dlx-example-plugin"
        ) in missing.stderr
    finally:
        pip("install", "--no-deps", str(PLUGIN))
