"""Hyperparameter search: sampling, hold-out and k-fold scoring, executors, dask."""

import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
from dlx import datasets
from dlx.tune import Choice, LogUniform, TrainingObjective, Uniform, random_search


@pytest.fixture(scope="module")
def data():
    (x, t), _ = datasets.load_bundled(flatten=True)
    return x[:600], t[:600]


def test_samplers_stay_in_range():
    rng = np.random.default_rng(0)
    logs = [LogUniform(1e-6, 1e-2).sample(rng) for _ in range(2000)]
    assert 1e-6 <= min(logs) and max(logs) <= 1e-2
    # Log-uniform: each decade gets about a quarter of the draws.
    assert abs(np.mean(np.array(logs) < 1e-5) - 0.25) < 0.05
    uniforms = [Uniform(0.1, 0.5).sample(rng) for _ in range(100)]
    assert 0.1 <= min(uniforms) and max(uniforms) <= 0.5
    assert {Choice(["a", "b"]).sample(rng) for _ in range(50)} == {"a", "b"}
    with pytest.raises(ValueError, match="0 < low < high"):
        LogUniform(0, 1)


def test_search_ranks_trials_and_saves(data, tmp_path):
    objective = TrainingObjective(*data, hidden_sizes=(32,), epochs=2)
    result = random_search(
        objective, {"lr": LogUniform(1e-4, 0.3), "weight_decay": 1e-6}, 6, progress=False
    )
    scores = [trial["score"] for trial in result.trials]
    assert scores == sorted(scores, reverse=True) and len(scores) == 6
    assert result.best["score"] > 0.5 and all(t["weight_decay"] == 1e-6 for t in result.trials)
    assert "rank" in result.table().splitlines()[0]
    assert len(result.save(tmp_path / "trials.csv").read_text().splitlines()) == 7
    assert result.save(tmp_path / "trials.json").read_text().startswith("[")


def test_kfold_validation(data):
    params = {"lr": 0.1}
    holdout = TrainingObjective(*data, hidden_sizes=(32,), epochs=2)(params)
    kfold = TrainingObjective(*data, hidden_sizes=(32,), epochs=2, folds=3)(params)
    assert 0.4 < holdout <= 1 and 0.4 < kfold <= 1 and holdout != kfold


def test_processes_give_the_same_results(data):
    objective = TrainingObjective(*data, hidden_sizes=(16,), epochs=1)
    space = {"lr": LogUniform(1e-3, 0.3)}
    serial = random_search(objective, space, 4, seed=1, progress=False)
    with warnings.catch_warnings(), ProcessPoolExecutor(2) as pool:
        # Forked children (the kernels run on one thread there); Python 3.12+ warns about
        # fork() in a process with threads.
        warnings.simplefilter("ignore", DeprecationWarning)
        parallel = random_search(objective, space, 4, seed=1, executor=pool, progress=False)
    assert [t["score"] for t in serial.trials] == [t["score"] for t in parallel.trials]


@pytest.mark.timeout(300)
def test_search_on_a_local_dask_cluster(data):
    distributed = pytest.importorskip("dask.distributed")
    objective = TrainingObjective(*data, hidden_sizes=(16,), epochs=1)
    space = {"lr": LogUniform(1e-3, 0.3)}
    serial = random_search(objective, space, 4, seed=2, progress=False)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        result = random_search(
            objective, space, 4, seed=2, executor=client.get_executor(), progress=False
        )
    assert [t["score"] for t in result.trials] == [t["score"] for t in serial.trials]
    assert [t["lr"] for t in result.trials] == [t["lr"] for t in serial.trials]


def test_ties_rank_in_draw_order_whatever_finishes_first():
    """Equal scores keep the order of their draws, even when later trials finish first."""

    def objective(params):
        time.sleep(0.05 * (1 - params["x"]))  # the larger x, the sooner it finishes
        return 1.0

    space = {"x": Uniform(0, 1)}
    serial = random_search(objective, space, 6, progress=False)
    with ThreadPoolExecutor(6) as pool:
        concurrent = random_search(objective, space, 6, executor=pool, progress=False)
    assert [t["x"] for t in concurrent.trials] == [t["x"] for t in serial.trials]
