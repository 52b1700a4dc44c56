"""Hyperparameter search: random search over ranges, each trial judged on held-out data.

    space = {"lr": LogUniform(1e-4, 1e-1), "weight_decay": LogUniform(1e-8, 1e-3)}
    objective = TrainingObjective(x, t, hidden_sizes=(100, 100), epochs=5, folds=3)
    result = random_search(objective, space, n_trials=20)
    print(result.table())

Trials are independent, so they run on any ``concurrent.futures.Executor``: a
``ProcessPoolExecutor`` uses the cores of one machine, and a ``dask.distributed`` client's
``client.get_executor()`` spreads them over a cluster. The test data never takes part: the
score is accuracy on validation data carved out of the training set (a hold-out fraction,
or k folds averaged).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DlxValueError

__all__ = ["Choice", "LogUniform", "SearchResult", "TrainingObjective", "Uniform", "random_search"]


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise DlxValueError(f"Uniform needs low < high, got {self.low} and {self.high}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class LogUniform:
    """A float whose logarithm is uniform on [log low, log high]: for learning rates and
    decay factors, whose useful values span orders of magnitude."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise DlxValueError(f"LogUniform needs 0 < low < high, got {self.low} and {self.high}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(10 ** rng.uniform(math.log10(self.low), math.log10(self.high)))


@dataclass(frozen=True)
class Choice:
    """One of a list of options, each equally likely."""

    options: tuple

    def __init__(self, options: Sequence[Any]) -> None:
        if len(options) == 0:
            raise DlxValueError("Choice needs at least one option")
        object.__setattr__(self, "options", tuple(options))

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]


class TrainingObjective:
    """Validation accuracy of a network trained with a trial's hyperparameters.

    The network is ``model_fn(params)`` if given (a picklable, module-level function), else
    an MLP with ``hidden_sizes`` whose ``weight_decay`` and ``dropout`` come from the trial.
    The optimizer is ``params["optimizer"]`` (default ``optimizer``) with learning rate
    ``params["lr"]``. ``folds=k`` averages k-fold cross-validation; otherwise a
    ``val_fraction`` of the data is held out.
    """

    def __init__(
        self,
        x: np.ndarray,
        t: np.ndarray,
        *,
        model_fn: Callable[[Mapping[str, Any]], Any] | None = None,
        hidden_sizes: Sequence[int] = (100, 100),
        optimizer: str = "sgd",
        epochs: int = 5,
        batch_size: int = 100,
        val_fraction: float = 0.2,
        folds: int | None = None,
        seed: int = 0,
    ) -> None:
        if len(x) != len(t):
            raise DlxValueError(f"x has {len(x)} samples but t has {len(t)}")
        self.x, self.t = x, t
        self.model_fn = model_fn
        self.hidden_sizes = tuple(hidden_sizes)
        self.optimizer, self.epochs, self.batch_size = optimizer, epochs, batch_size
        self.val_fraction, self.folds, self.seed = val_fraction, folds, seed

    def _model(self, params):
        from . import models

        if self.model_fn is not None:
            return self.model_fn(params)
        return models.mlp(
            int(np.prod(self.x.shape[1:])),
            list(self.hidden_sizes),
            int(np.max(self.t)) + 1,
            dropout=float(params.get("dropout", 0.0)),
            weight_decay=float(params.get("weight_decay", 0.0)),
        )

    def _score(self, params, train_idx, val_idx) -> float:
        from ._random import seed
        from .optim import get_optimizer
        from .trainer import Trainer

        seed(self.seed)
        net = self._model(params)
        opt = get_optimizer(
            params.get("optimizer", self.optimizer), lr=float(params.get("lr", 0.01))
        )
        trainer = Trainer(net, opt, epochs=self.epochs, batch_size=self.batch_size, progress=False)
        try:
            trainer.fit(self.x[train_idx], self.t[train_idx])
        except FloatingPointError:
            return 0.0  # diverged: the worst score, not a failed search
        return net.accuracy(self.x[val_idx], self.t[val_idx])

    def __call__(self, params: Mapping[str, Any]) -> float:
        from .datasets import kfold_indices

        rng = np.random.default_rng(self.seed)
        n = len(self.x)
        if self.folds:
            splits = kfold_indices(n, self.folds, rng)
        else:
            order = rng.permutation(n)
            n_val = max(1, round(n * self.val_fraction))
            splits = [(order[n_val:], order[:n_val])]
        return float(np.mean([self._score(params, tr, va) for tr, va in splits]))


def _timed(
    objective: Callable[[Mapping[str, Any]], float], params: dict[str, Any]
) -> tuple[float, float]:
    started = time.perf_counter()
    score = objective(params)
    return score, time.perf_counter() - started


@dataclass
class SearchResult:
    """The trials of a search, best first: each a dict of the parameters, ``score`` and ``seconds``."""

    trials: list[dict[str, Any]]

    @property
    def best(self) -> dict[str, Any]:
        return self.trials[0]

    def table(self, top: int | None = None) -> str:
        rows = self.trials[:top]
        keys = [k for k in rows[0] if k not in ("score", "seconds")] if rows else []
        header = ["rank", "score", *keys, "seconds"]
        lines = [header]
        for rank, trial in enumerate(rows, 1):
            values = [
                f"{trial[k]:.3g}" if isinstance(trial[k], float) else str(trial[k]) for k in keys
            ]
            lines.append([str(rank), f"{trial['score']:.4f}", *values, f"{trial['seconds']:.1f}"])
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the trials as JSON (``.json``) or CSV (anything else)."""
        path = Path(path)
        if path.suffix == ".json":
            path.write_text(json.dumps(self.trials, indent=1))
        else:
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(self.trials[0]) if self.trials else [])
                writer.writeheader()
                writer.writerows(self.trials)
        return path


def random_search(
    objective: Callable[[Mapping[str, Any]], float],
    space: Mapping[str, Uniform | LogUniform | Choice | Any],
    n_trials: int,
    *,
    executor: Executor | None = None,
    seed: int = 0,
    progress: bool = True,
) -> SearchResult:
    """Draw ``n_trials`` parameter sets from ``space`` (fixed values are passed as they are),
    score each with ``objective`` (higher is better), and return them best first.

    With an ``executor``, trials run concurrently on it; ``objective`` must then be picklable.
    """
    from tqdm.auto import tqdm

    if not isinstance(n_trials, int) or n_trials < 1:
        raise DlxValueError(f"n_trials must be an int >= 1, got {n_trials!r}")
    rng = np.random.default_rng(seed)
    drawn = [
        {k: (v.sample(rng) if hasattr(v, "sample") else v) for k, v in space.items()}
        for _ in range(n_trials)
    ]
    # Results go back to their draw's place, so that ties rank the same however the
    # executor ordered the work.
    trials: list[dict[str, Any]] = [{} for _ in drawn]
    bar = tqdm(total=n_trials, desc="search", unit="trial", disable=not progress, leave=False)
    if executor is None:
        for i, params in enumerate(drawn):
            score, seconds = _timed(objective, params)
            trials[i] = {**params, "score": score, "seconds": seconds}
            bar.update()
    else:
        futures = {executor.submit(_timed, objective, params): i for i, params in enumerate(drawn)}
        for future in as_completed(futures):
            score, seconds = future.result()
            i = futures[future]
            trials[i] = {**drawn[i], "score": score, "seconds": seconds}
            bar.update()
    bar.close()
    trials.sort(key=lambda trial: trial["score"], reverse=True)  # stable: ties keep draw order
    return SearchResult(trials)
