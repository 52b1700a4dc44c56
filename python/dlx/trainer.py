"""Mini-batch training with evaluation, history, progress bar and early stopping."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from ._random import get_rng
from .errors import DlxTypeError, DlxValueError, TrainingDivergedError
from .network import Sequential
from .optim import Optimizer, get_optimizer

__all__ = ["Trainer"]


class Trainer:
    """Trains a :class:`~dlx.Sequential` with mini-batches.

    Each epoch shuffles the training set (from ``rng``, else dlx's generator: see
    :func:`dlx.seed`) and visits every sample once, in batches of ``batch_size``. After each
    epoch it records in :attr:`history` the mean training loss and the accuracy (and loss)
    on the training set (or its first ``train_eval_samples`` samples), the validation set
    and the test set, when given, and the time: ``train_seconds`` for the mini-batches alone,
    ``seconds`` for the whole epoch with its evaluations.

    ``early_stopping`` (a patience in epochs) stops when ``monitor`` (``"val_acc"`` or
    ``"val_loss"``) has not improved for that many epochs, and puts back the model of the best
    epoch: its weights and its buffers (BatchNorm's running statistics), as
    :meth:`~dlx.Sequential.state_dict` holds them.
    ``on_epoch_end(epoch, record)`` is called after every epoch (to save checkpoints).
    """

    def __init__(
        self,
        network: Sequential,
        optimizer: Optimizer | str = "adam",
        epochs: int = 10,
        batch_size: int = 100,
        progress: bool = True,
        early_stopping: int | None = None,
        monitor: str = "val_acc",
        train_eval_samples: int | None = None,
        rng: np.random.Generator | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        if not isinstance(network, Sequential):
            raise DlxTypeError(f"network must be a dlx.Sequential, got {type(network).__name__}")
        self.network = network
        self.optimizer = get_optimizer(optimizer) if isinstance(optimizer, str) else optimizer
        if not isinstance(epochs, int) or epochs < 0:
            raise DlxValueError(f"epochs must be an int >= 0, got {epochs!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DlxValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if monitor not in ("val_acc", "val_loss"):
            raise DlxValueError(f"monitor must be 'val_acc' or 'val_loss', got {monitor!r}")
        if early_stopping is not None and (
            not isinstance(early_stopping, int) or early_stopping < 1
        ):
            raise DlxValueError(
                f"early_stopping must be a patience >= 1 or None, got {early_stopping!r}"
            )
        self.epochs = epochs
        self.batch_size = batch_size
        self.progress = progress
        self.early_stopping = early_stopping
        self.monitor = monitor
        self.train_eval_samples = train_eval_samples
        self.rng = rng
        self.on_epoch_end = on_epoch_end
        self.history: dict[str, list[float]] = {}

    def _evaluate(self, x, t) -> tuple[float, float]:
        """(mean loss, accuracy) in inference mode, in batches."""
        net = self.network
        if len(x) == 0:
            return float("nan"), 0.0
        total, correct = 0.0, 0
        labels = np.argmax(t, axis=1) if np.ndim(t) == 2 else np.asarray(t)
        step = max(self.batch_size, 1000)
        for start in range(0, len(x), step):
            xb, tb = x[start : start + step], t[start : start + step]
            scores = net.predict(xb, train=False)
            total += net.loss_layer.forward(scores, tb) * len(xb)
            correct += int(np.sum(np.argmax(scores, axis=1) == labels[start : start + step]))
        return total / len(x) + net.penalty(), correct / len(x)

    def fit(
        self, x_train, t_train, x_val=None, t_val=None, x_test=None, t_test=None
    ) -> dict[str, list[float]]:
        """Train for ``epochs`` epochs; returns (and keeps) the history."""
        if len(x_train) != len(t_train):
            raise DlxValueError(
                f"x_train has {len(x_train)} samples but t_train has {len(t_train)}"
            )
        if len(x_train) == 0:
            raise DlxValueError("x_train is empty")
        if (x_val is None) != (t_val is None) or (x_test is None) != (t_test is None):
            raise DlxValueError("give the inputs and the targets of a dataset together")
        if self.early_stopping and x_val is None:
            raise DlxValueError("early_stopping needs a validation set (x_val, t_val)")

        rng = get_rng() if self.rng is None else self.rng
        net, n = self.network, len(x_train)
        batches = math.ceil(n / self.batch_size)
        best_score, best_state, waited = None, None, 0
        history: dict[str, list[float]] = {}
        self.history = history

        for epoch in range(1, self.epochs + 1):
            started = time.perf_counter()
            order = rng.permutation(n)
            losses = []
            bar = tqdm(
                range(batches),
                desc=f"epoch {epoch}/{self.epochs}",
                unit="batch",
                disable=not self.progress,
                leave=False,
            )
            for b in bar:
                idx = order[b * self.batch_size : (b + 1) * self.batch_size]
                loss, grads = net.loss_and_gradient(x_train[idx], t_train[idx])
                if not math.isfinite(loss):
                    bar.close()
                    raise TrainingDivergedError(
                        f"the training loss became {loss} at epoch {epoch}, batch {b + 1} of "
                        f"{batches}; lower the learning rate or check the inputs for NaN/inf"
                    )
                self.optimizer.update(net.params, grads)
                losses.append(loss)
                if b % 10 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}")
            bar.close()

            record: dict[str, float] = {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "train_seconds": time.perf_counter() - started,
            }
            k = self.train_eval_samples
            xs, ts = (x_train, t_train) if k is None else (x_train[:k], t_train[:k])
            record["train_acc"] = self._evaluate(xs, ts)[1]
            if x_val is not None:
                record["val_loss"], record["val_acc"] = self._evaluate(x_val, t_val)
            if x_test is not None:
                record["test_loss"], record["test_acc"] = self._evaluate(x_test, t_test)
            record["seconds"] = time.perf_counter() - started
            for key, value in record.items():
                history.setdefault(key, []).append(value)
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch, record)

            if self.early_stopping:
                score = record[self.monitor] * (1 if self.monitor == "val_acc" else -1)
                if best_score is None or score > best_score:
                    best_score, waited = score, 0
                    best_state = net.state_dict()
                else:
                    waited += 1
                    if waited >= self.early_stopping:
                        break

        if best_state is not None:  # the weights and the BatchNorm statistics of the best epoch
            net.load_state_dict(best_state)
        return history
