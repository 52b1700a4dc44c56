"""The dlx command line, run as a user runs it: in a fresh process."""

import json
import os
import signal
import subprocess
import sys
import time

import dlx
import numpy as np
import pytest
from dlx import experiments


def dlx_cli(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "dlx", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def test_demo_is_the_default():
    result = dlx_cli()
    assert result.returncode == 0, result.stderr
    assert "dlx backend: cpp" in result.stdout
    assert "[ 0. 30. 30.  0.]" in result.stdout


def test_train_evaluate_summary(tmp_path):
    out = tmp_path / "run"
    result = dlx_cli("train", "--epochs", "2", "--out", str(out), "--no-progress", "--seed", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 2
    accuracy = float(next(line for line in lines if line.startswith("test accuracy")).split()[2])
    assert accuracy > 0.7  # two epochs of SimpleConvNet on the bundled subset
    for name in ("model.npz", "history.json", "history.csv", "curves.png", "model.json"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2] and len(history["val_acc"]) == 2
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    evaluated = dlx_cli("evaluate", str(out / "model.npz"), "--plot", str(tmp_path / "cm.png"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"accuracy {accuracy:.4f} on 1000 bundled test images" in evaluated.stdout
    matrix = [line for line in evaluated.stdout.splitlines() if line[:2].strip().isdigit()]
    assert len(matrix) == 10 and sum(int(v) for row in matrix for v in row.split()[-10:]) == 1000
    assert (tmp_path / "cm.png").is_file()

    summary = dlx_cli("summary", str(out / "model.npz"), "--batch-size", "100")
    assert summary.returncode == 0, summary.stderr
    assert "43,200,000" in summary.stdout  # N*FN*OH*OW*C*KH*KW of the first convolution

    # dlx export: ONNX Runtime predicts what dlx predicts; the input shape comes from the data
    # the run trained on.
    import onnxruntime as ort

    exported = dlx_cli("export", str(out / "model.npz"), str(tmp_path / "model.onnx"))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == f"wrote {tmp_path / 'model.onnx'} (ONNX opset 17)"
    (_, _), (x, _) = dlx.datasets.load_dataset("bundled")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    scores = dlx.load(out / "model.npz").predict(x)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], scores, rtol=1e-5, atol=1e-4)

    saved = tmp_path / "bare.npz"  # a model saved without its run: the shape must be given
    dlx.save(dlx.load(out / "model.npz"), saved)
    refused = dlx_cli("export", str(saved), str(tmp_path / "bare.onnx"))
    assert refused.returncode == 2
    assert "does not say what shape its inputs have: give --input-shape" in refused.stderr
    given = dlx_cli("export", str(saved), str(tmp_path / "bare.onnx"), "--input-shape", "1,28,28")
    assert given.returncode == 0, given.stderr


def test_train_from_a_json_config(tmp_path):
    config = {
        "layers": [{"type": "Flatten"}, {"type": "Affine", "in_features": 784, "out_features": 10}]
    }
    (tmp_path / "net.json").write_text(json.dumps(config))
    result = dlx_cli(
        "train",
        "--model",
        str(tmp_path / "net.json"),
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "--model", "resnet"],
            "--model must be one of mlp, simpleconvnet, deepconvnet, deepconvnet-bn, resnet20 or a .json config file, got 'resnet'",
        ),
        (["train", "--epochs", "-2"], "argument --epochs: must be at least 1, got -2"),
        (["train", "--lr", "zero"], "argument --lr: expected a number, got 'zero'"),
        (
            ["train", "--dataset", "imagenet"],
            "dataset must be 'bundled', 'fashion-mnist', 'mnist' or a folder of IDX files, got 'imagenet'",
        ),
        (
            ["train", "--out", "/proc/dlx-cannot-write"],
            "cannot write to the output folder /proc/dlx-cannot-write",
        ),
        (["evaluate", "missing.npz"], "no checkpoint at missing.npz"),
        (
            ["summary", "mlp", "--input-shape", "a,b"],
            "argument --input-shape: expected positive whole numbers separated by commas",
        ),
        (["evaluate", "m.npz", "--plot", "name"], "--plot must name a .png file, got 'name'"),
        (
            ["evaluate", "m.npz", "--plot", "missing/x.png"],
            "cannot write the plot missing/x.png: missing does not exist",
        ),
        (["train", "--overwrite", "--epochs", "0"], "argument --epochs: must be at least 1"),
        (["experiment", "nope"], "argument name: invalid choice: 'nope'"),
        (
            ["train", "--weight-init", "orthogonal"],
            "argument --weight-init: invalid choice: 'orthogonal'",
        ),
    ],
)
def test_bad_arguments_get_one_clear_line(tmp_path, args, message):
    result = dlx_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-made


def test_missing_dataset(tmp_path):
    env = {
        **os.environ,
        "DLX_DATA": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "c"),
        "DLX_DATA_MIRROR": "http://127.0.0.1:9/",
    }
    result = subprocess.run(
        [sys.executable, "-m", "dlx", "train", "--dataset", "mnist"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "mnist not found in" in result.stderr and "Put the files" in result.stderr


# A test run started in the background (a shell's `&`, nohup) hands its children SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler: the child restores it, as
# an interactive terminal would give it.
RUN_DLX_WITH_CTRL_C = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('dlx', run_name='__main__', alter_sys=True)"
)


def test_ctrl_c_keeps_the_last_finished_epoch(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUN_DLX_WITH_CTRL_C,
            "train",
            "--epochs",
            "50",
            "--out",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "model.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted by SIGINT; kept the checkpoint of epoch" in stderr
    assert "Traceback" not in stderr
    model = dlx.load(out / "model.npz")
    assert len(model) == 6
    history = json.loads((out / "history.json").read_text())
    assert 1 <= len(history["epoch"]) < 50


def test_layers_command():
    result = dlx_cli("layers")
    assert result.returncode == 0
    assert any(line.split() == ["Conv2d", "dlx"] for line in result.stdout.splitlines())


FAST = ["edge", "learn-kernel", "gradient-descent", "activations", "optimizers"]


@pytest.mark.parametrize("name", FAST)
def test_experiments_write_figures(tmp_path, name):
    paths = experiments.run(name, tmp_path)
    assert paths
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(experiments.EXPERIMENTS) - set(FAST)))
def test_slower_experiments_write_figures(tmp_path, name):
    for path in experiments.run(name, tmp_path):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weight_init_overrides_a_builtin_model_but_not_a_config(tmp_path):
    from dlx.cli import build_model

    he = build_model("deepconvnet", (1, 28, 28)).params["0.W"]
    uniform = build_model("deepconvnet", (1, 28, 28), weight_init="uniform").params["0.W"]
    assert np.abs(uniform).max() <= 1 / 3  # 1/sqrt(fan_in) with fan_in = 9
    assert he.std() > 1.5 * uniform.std()
    (tmp_path / "net.json").write_text(json.dumps({"layers": [{"type": "ReLU"}]}))
    with pytest.raises(ValueError, match="--weight-init applies to the built-in models"):
        build_model(str(tmp_path / "net.json"), (1, 28, 28), weight_init="he")


def test_config_and_version_name_the_cpu_capability():
    result = dlx_cli("config")
    assert result.returncode == 0, result.stderr
    capability = dlx.ops.cpu_capability()
    assert f"cpu capability: {capability}" in result.stdout
    assert "compiler: " in result.stdout and "blas: OpenBLAS" in result.stdout
    version = dlx_cli("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == (
        f"dlx {dlx.__version__} (C++ kernels: {capability}; see dlx config)"
    )
    assert dlx.__version__ != "0.0.0"  # the installed distribution's version is found


def test_a_json_configs_weight_decay_is_kept_unless_a_flag_overrides_it(tmp_path):
    config = {
        "layers": [{"type": "Affine", "in_features": 784, "out_features": 10}],
        "weight_decay": 5.0,
        "regularization": "l1",
    }
    (tmp_path / "net.json").write_text(json.dumps(config))
    common = ["train", "--model", str(tmp_path / "net.json"), "--epochs", "1", "--no-progress"]
    for extra, decay in (([], 5.0), (["--weight-decay", "0.5"], 0.5)):
        out = tmp_path / f"run-{decay}"
        result = dlx_cli(*common, *extra, "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert f"weight decay {decay:g} (l1)" in result.stdout
        saved = dlx.load(out / "model.npz")
        assert (saved.weight_decay, saved.regularization) == (decay, "l1")
        assert json.loads((out / "model.json").read_text())["weight_decay"] == decay


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    from datetime import datetime

    from dlx import cli

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 12, 2, 10, 0, 0)

    monkeypatch.setattr(cli, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    folders = [cli._claim_run_folder(None, False, {"layers": [], "n": i}) for i in range(3)]
    assert [f.name for f in folders] == [
        "train-20261202-100000",
        "train-20261202-100000-2",
        "train-20261202-100000-3",
    ]
    for i, folder in enumerate(folders):
        assert json.loads((folder / "model.json").read_text())["n"] == i


def test_two_concurrent_runs_keep_their_own_complete_folders(tmp_path):
    args = [sys.executable, "-m", "dlx", "train", "--epochs", "1", "--no-progress"]
    runs = [
        subprocess.Popen(
            args + extra, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for extra in (["--model", "mlp"], ["--model", "simpleconvnet"])
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err for _, err in outputs]
    folders = [
        next(line for line in out.splitlines() if line.startswith("writing to ")).split()[-1]
        for out, _ in outputs
    ]
    assert folders[0] != folders[1]
    for folder, layers in zip(folders, (5, 6)):
        folder = tmp_path / folder
        for name in ("model.json", "model.npz", "history.json", "history.csv", "curves.png"):
            assert (folder / name).is_file(), (folder, name)
        model = dlx.load(folder / "model.npz")
        assert len(model) == layers
        assert json.loads((folder / "model.json").read_text()) == model.to_config()


def test_out_onto_a_run_refuses_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    common = ["train", "--model", "mlp", "--epochs", "1", "--no-progress", "--out", str(out)]
    assert dlx_cli(*common).returncode == 0
    first = (out / "model.npz").read_bytes()
    refused = dlx_cli(*common, "--seed", "1")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "already holds a run" in refused.stderr and "--overwrite" in refused.stderr
    assert (out / "model.npz").read_bytes() == first
    replaced = dlx_cli(*common, "--seed", "1", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (out / "model.npz").read_bytes() != first


def test_a_run_that_fails_before_its_first_epoch_leaves_no_contradiction(tmp_path):
    out = tmp_path / "run"
    common = ["train", "--model", "mlp", "--epochs", "1", "--no-progress", "--out", str(out)]
    assert dlx_cli(*common).returncode == 0
    failed = dlx_cli(*common, "--overwrite", "--lr", "1e30")  # the loss becomes NaN at once
    assert failed.returncode == 2 and "the training loss became" in failed.stderr
    assert sorted(p.name for p in out.iterdir()) == ["model.json"]


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", "--epochs", "50", "--out", str(out)]
        + ["--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "model.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "interrupted by SIGTERM; kept the checkpoint of epoch" in stderr
    assert "Traceback" not in stderr
    history = json.loads((out / "history.json").read_text())
    assert 1 <= len(history["epoch"]) < 50
    assert dlx.load(out / "model.npz") is not None


def test_evaluate_plot_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("")
    result = dlx_cli("evaluate", "m.npz", "--plot", "afile/x.png", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot write the plot afile/x.png: afile is a file, not a folder" in result.stderr


def test_evaluate_any_number_of_classes(tmp_path):
    """A model with 3 outputs on the 10 classes of the bundled set: indices for names, the
    other classes' images counted as errors."""
    net = dlx.Sequential([dlx.layers.Flatten(), dlx.layers.Affine(784, 3)])
    dlx.save(net, tmp_path / "three.npz")
    result = dlx_cli("evaluate", str(tmp_path / "three.npz"), "--plot", str(tmp_path / "cm.png"))
    assert result.returncode == 0, result.stderr
    matrix = [line for line in result.stdout.splitlines() if line[:2].strip().isdigit()]
    assert len(matrix) == 10
    assert sum(int(v) for row in matrix for v in row.split()[-10:]) == 1000
    assert (tmp_path / "cm.png").is_file()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DLX_NUM_THREADS": "0"}, "DLX_NUM_THREADS must be a positive integer, got '0'"),
        ({"DLX_BACKEND": "gpu"}, "DLX_BACKEND must be one of"),
        ({"DLX_CPU_CAPABILITY": "sse9"}, "DLX_CPU_CAPABILITY must be one of"),
        ({"DLX_WORKSPACE_MB": "lots"}, "DLX_WORKSPACE_MB must be a number of MiB"),
    ],
)
def test_bad_settings_get_one_line_naming_the_setting(env, message):
    result = subprocess.run(
        [sys.executable, "-m", "dlx", "train", "--epochs", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlx: error: ") and message in lines[0]


def test_an_unexpected_error_shows_its_traceback_and_asks_for_a_report(tmp_path):
    script = (
        "import sys, dlx.cli as cli\n"
        "def broken(args): raise ZeroDivisionError('a bug')\n"
        "cli.edge_demo = broken\n"
        "sys.exit(cli.main([]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError: a bug" in result.stderr
    assert "this is a bug in dlx" in result.stderr


def _history_without_timings(folder):
    history = json.loads((folder / "history.json").read_text())
    return {k: v for k, v in history.items() if k not in ("train_seconds", "seconds")}


def test_resume_continues_a_run_bit_for_bit(tmp_path):
    common = ["train", "--model", "deepconvnet-bn", "--no-progress", "--optimizer", "momentum"]
    common += ["--lr", "0.01", "--seed", "5"]
    whole = dlx_cli(*common, "--epochs", "3", "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    half = dlx_cli(*common, "--epochs", "1", "--out", str(tmp_path / "half"))
    assert half.returncode == 0, half.stderr
    resumed = dlx_cli("train", "--resume", str(tmp_path / "half"), "--epochs", "3", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1" in resumed.stdout
    assert _history_without_timings(tmp_path / "half") == _history_without_timings(
        tmp_path / "whole"
    )
    a, b = dlx.load(tmp_path / "whole" / "model.npz"), dlx.load(tmp_path / "half" / "model.npz")
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value, err_msg=key)
    test_line = [line for line in whole.stdout.splitlines() if line.startswith("test accuracy")]
    assert test_line[0].split()[2] in resumed.stdout


def test_resume_refuses_other_settings_and_model_only_files(tmp_path):
    run = dlx_cli(
        "train", "--model", "mlp", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r")
    )
    assert run.returncode == 0, run.stderr
    other = dlx_cli("train", "--resume", str(tmp_path / "r"), "--lr", "0.5", "--epochs", "2")
    assert other.returncode == 2 and "--lr 0.5 differs from the run's own 0.001" in other.stderr
    dlx.save(dlx.models.mlp(784, [10], 10), tmp_path / "plain.npz")
    plain = dlx_cli("train", "--resume", str(tmp_path / "plain.npz"), "--epochs", "2")
    assert plain.returncode == 2 and "holds no training state to resume from" in plain.stderr


def test_a_run_stopped_by_sigterm_resumes(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "dlx", "train", "--model", "mlp", "--epochs", "400"]
        + ["--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "model.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # into a later epoch
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    done = len(json.loads((out / "history.json").read_text())["epoch"])
    resumed = dlx_cli("train", "--resume", str(out), "--epochs", str(done + 2), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "history.json").read_text())["epoch"] == list(range(1, done + 3))


def test_summary_and_training_of_graph_models(tmp_path):
    summary = dlx_cli("summary", "resnet20", "--batch-size", "100")
    assert summary.returncode == 0, summary.stderr
    assert "stage3.block3.add Add" in summary.stdout
    assert summary.stdout.splitlines()[-1].split()[1] == "272,186"

    x = dlx.Input((1, 28, 28))
    h = dlx.layers.Conv2d(1, 4, 3, padding=1)(x, name="conv")
    h = dlx.layers.ReLU()(dlx.layers.Add()(h, dlx.layers.Conv2d(1, 4, 1)(x)))
    y = dlx.layers.Affine(4, 10)(dlx.layers.GlobalAvgPool2d()(h), name="fc")
    (tmp_path / "graph.json").write_text(json.dumps(dlx.Model(x, y).to_config()))
    result = dlx_cli(
        "train",
        "--model",
        str(tmp_path / "graph.json"),
        "--epochs",
        "1",
        "--no-progress",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr
    model = dlx.load(tmp_path / "run" / "model.npz")
    assert isinstance(model, dlx.Model) and "conv.W" in model.params
