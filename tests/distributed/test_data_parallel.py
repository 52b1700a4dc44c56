"""Data-parallel training under mpiexec: two ranks reproduce one process, stay identical,
and stop together; an error on one rank ends both; the command line writes from rank 0
only."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dlx
import numpy as np
import pytest
import worker

HERE = Path(__file__).resolve().parent
# The mpiexec of the MPI that mpi4py uses: the mpich wheel's, beside this Python.
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
if not Path(MPIEXEC).exists():
    MPIEXEC = shutil.which("mpiexec") or MPIEXEC


def mpiexec(*args, cwd=None, timeout=300):
    return subprocess.run(
        [MPIEXEC, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def relative_error(a, b):
    return float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-30))


@pytest.mark.parametrize("kind", ["mlp", "bn"])
def test_two_ranks_reproduce_one_process(kind, tmp_path):
    """mlp: weight decay, no Dropout or BatchNorm; bn: BatchNorm on images and on features
    with sync_batchnorm=True. Global batches of 101 split 51 + 50."""
    result = mpiexec("-n", "2", sys.executable, str(HERE / "worker.py"), kind, str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    assert int(ranks[0]["size"]) == 2
    for key in ranks[0].files:  # the ranks never drift apart
        assert np.array_equal(ranks[0][key], ranks[1][key]), key

    trainer, net = worker.train(kind, distributed=False)
    for key in ("train_loss", "val_loss"):
        assert relative_error(ranks[0][f"history/{key}"], trainer.history[key]) < 1e-5, key
    assert ranks[0]["history/val_acc"].tolist() == trainer.history["val_acc"]
    for key, value in net.params.items():
        assert relative_error(ranks[0][f"param/{key}"], value) < 1e-5, key
    for key, value in net.buffers.items():
        assert relative_error(ranks[0][f"buffer/{key}"], value) < 1e-5, key


def test_a_stop_signal_on_one_rank_stops_both_after_the_same_step(tmp_path):
    result = mpiexec("-n", "2", sys.executable, str(HERE / "worker.py"), "stop", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    for held in ranks:
        assert str(held["signal"]) == "SIGTERM" and int(held["steps"]) == 2  # the third step stops
    for key in ranks[0].files:
        assert np.array_equal(ranks[0][key], ranks[1][key]), key


def test_an_error_on_one_rank_ends_every_rank(tmp_path):
    result = mpiexec(
        "-n", "2", sys.executable, str(HERE / "worker.py"), "fail", str(tmp_path), timeout=120
    )
    assert result.returncode != 0
    assert "dlx: rank 0 of 2 failed; ending every rank" in result.stderr
    assert "OSError: disk full on rank 0" in result.stderr


def test_a_global_batch_smaller_than_the_world_is_refused(tmp_path):
    code = (
        "import dlx, numpy as np\n"
        "tr = dlx.Trainer(dlx.models.mlp(4, [3], 2), batch_size=1, progress=False,"
        " distributed=True)\n"
        "try:\n"
        "    tr.fit(np.zeros((4, 4), np.float32), np.zeros(4, int))\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    result = mpiexec("-n", "2", sys.executable, "-c", code, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("batch_size 1 is the global batch") == 2


def test_batchnorm_without_sync_differs_from_one_process(tmp_path):
    """The check above can fail: per-rank statistics (the default) give other weights."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import worker, numpy as np\n"
        "net = worker.model('bn'); x, t = worker.data('bn')\n"
        "import dlx\n"
        "tr = dlx.Trainer(net, dlx.optim.Momentum(0.05), epochs=7, batch_size=101,"
        " progress=False, rng=np.random.default_rng(5), distributed=True)\n"
        "tr.fit(x, t)\n"
        "np.save(sys.argv[2] + f'/w{tr.comm.rank}.npy', net.params['0.W'])\n"
    )
    result = mpiexec("-n", "2", sys.executable, "-c", code, str(HERE), str(tmp_path))
    assert result.returncode == 0, result.stderr
    _, net = worker.train("bn", distributed=False)
    assert relative_error(np.load(tmp_path / "w0.npy"), net.params["0.W"]) > 1e-4


def test_without_mpiexec_a_distributed_trainer_is_a_world_of_one(tmp_path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import worker, numpy as np\n"
        "a, net_a = worker.train('mlp', distributed=True)\n"
        "b, net_b = worker.train('mlp', distributed=False)\n"
        "assert (a.comm.rank, a.comm.size) == (0, 1)\n"
        "assert all(np.array_equal(net_a.params[k], net_b.params[k]) for k in net_b.params)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(HERE)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_under_mpiexec_without_mpi4py_the_error_names_the_extra():
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "import dlx.distributed\n"
        "try:\n"
        "    dlx.distributed.init()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "PMI_SIZE": "2"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.stdout.strip() == (
        'distributed training needs the mpi4py package: pip install "dlx-scratch[mpi]"'
    )


def test_sync_batchnorm_needs_distributed():
    with pytest.raises(ValueError, match="sync_batchnorm=True needs distributed=True"):
        dlx.Trainer(dlx.models.mlp(4, [3], 2), sync_batchnorm=True)
    with pytest.raises(TypeError, match="distributed must be True or False"):
        dlx.Trainer(dlx.models.mlp(4, [3], 2), distributed="yes")


DLX = [sys.executable, "-m", "dlx", "train", "--distributed", "--epochs", "1", "--no-progress"]


def test_the_command_line_trains_on_two_ranks_and_rank_0_alone_writes(tmp_path):
    result = mpiexec("-n", "2", *DLX, "--out", "run", "--model", "mlp", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("test accuracy") == 1  # printed once, by rank 0
    assert "2 processes" in result.stdout
    accuracy = float(next(s for s in result.stdout.splitlines() if "test accuracy" in s).split()[2])
    assert accuracy > 0.7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no folder of another rank
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["curves.png", "history.csv", "history.json", "model.json", "model.npz"]
    assert dlx.load(tmp_path / "run" / "model.npz").accuracy(*dlx.datasets.load_bundled()[1]) == (
        accuracy
    )


def test_a_bad_setting_on_one_rank_ends_both_with_one_message(tmp_path):
    good = [*DLX, "--out", "run"]
    bad = [*DLX, "--out", "run", "--dataset", str(tmp_path / "no-such-folder")]
    result = mpiexec("-n", "1", *good, ":", "-n", "1", *bad, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("dlx: error")]
    assert len(errors) == 1 and "no-such-folder" in errors[0] and "(on rank 1)" in errors[0]
    assert not (tmp_path / "run").exists()
