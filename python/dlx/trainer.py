"""Mini-batch training with evaluation, history, progress bar and early stopping."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from ._random import get_rng
from .errors import DlxTypeError, DlxValueError, TrainingDivergedError
from .network import Network
from .optim import Optimizer, get_optimizer

__all__ = ["Trainer"]


def _copied(state: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
    return None if state is None else {k: v.copy() for k, v in state.items()}


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
        network: Network,
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
        if not isinstance(network, Network):
            raise DlxTypeError(
                f"network must be a dlx.Sequential or dlx.Model, got {type(network).__name__}"
            )
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
        self.epoch = 0  # epochs completed
        # Early stopping's record: the best score so far, the epochs since, that epoch's model.
        self._best_score: float | None = None
        self._waited = 0
        self._best_state: dict[str, np.ndarray] | None = None
        # The last epoch's model, kept when early stopping put the best epoch's back.
        self._last_state: dict[str, np.ndarray] | None = None

    def _generator(self) -> np.random.Generator:
        return get_rng() if self.rng is None else self.rng

    def state_dict(self) -> dict:
        """What training needs to continue exactly where it is: the epochs completed, the
        history, early stopping's record (with the best epoch's model), the optimizer's state
        and the shuffling generator's state (dlx's generator, which Dropout also draws from,
        unless the Trainer has one of its own). :func:`dlx.save` stores it beside the model
        (``training=``) and :func:`dlx.checkpoint.load_training` gives it back."""
        return {
            "epoch": self.epoch,
            "history": {k: list(v) for k, v in self.history.items()},
            "best_score": self._best_score,
            "waited": self._waited,
            "best_state": _copied(self._best_state),
            "last_state": _copied(self._last_state),
            "optimizer": self.optimizer.state_dict(),
            "rng": self._generator().bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        """Take up a :meth:`state_dict`; :meth:`fit` with ``resume=True`` then continues."""
        if not isinstance(state, dict):
            raise DlxTypeError(f"state must be a dict, got {type(state).__name__}")
        epoch, history = state.get("epoch"), state.get("history")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise DlxValueError(f"the state's epoch must be an int >= 0, got {epoch!r}")
        if not isinstance(history, dict) or not all(
            isinstance(v, list) and len(v) == epoch for v in history.values()
        ):
            raise DlxValueError(f"the state's history must hold {epoch} values per key")
        self.optimizer.load_state_dict(state.get("optimizer"))
        generator = self._generator()
        try:
            generator.bit_generator.state = state.get("rng")
        except (TypeError, ValueError, KeyError) as error:
            raise DlxValueError(f"the state's generator state does not fit: {error}") from error
        self.epoch, self.history = epoch, {k: list(v) for k, v in history.items()}
        best_score, waited = state.get("best_score"), state.get("waited", 0)
        if best_score is not None and (
            isinstance(best_score, bool) or not isinstance(best_score, (int, float))
        ):
            raise DlxValueError(f"the state's best_score must be a number, got {best_score!r}")
        if isinstance(waited, bool) or not isinstance(waited, int) or waited < 0:
            raise DlxValueError(f"the state's waited must be an int >= 0, got {waited!r}")
        model_keys = set(self.network.state_dict())
        for which in ("best_state", "last_state"):
            held = state.get(which)
            if held is not None and set(held) != model_keys:
                raise DlxValueError(f"the state's {which} does not hold this network's arrays")
        params = self.network.params
        for key, slots in state["optimizer"]["slots"].items():
            if key not in params or any(
                a.shape != params[key].shape or a.dtype != params[key].dtype for a in slots.values()
            ):
                raise DlxValueError(
                    f"the optimizer state's slots of {key!r} do not fit this network's parameters"
                )
        self._best_score, self._waited = best_score, waited
        self._best_state = _copied(state.get("best_state"))
        self._last_state = _copied(state.get("last_state"))

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
        self,
        x_train,
        t_train,
        x_val=None,
        t_val=None,
        x_test=None,
        t_test=None,
        *,
        resume: bool = False,
    ) -> dict[str, list[float]]:
        """Train for ``epochs`` epochs; returns (and keeps) the history.

        With ``resume=True`` training continues after the epochs already completed (as
        :meth:`load_state_dict` or an earlier fit left them) up to ``epochs`` in total, with
        the same history and early-stopping record: stopping after epoch 2 and resuming to 4
        gives the weights and history of an uninterrupted 4-epoch run, bit for bit."""
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

        if not isinstance(resume, bool):
            raise DlxTypeError(f"resume must be True or False, got {resume!r}")
        if not resume:
            self.epoch, self.history = 0, {}
            self._best_score, self._waited, self._best_state = None, 0, None
        elif self._last_state is not None:  # continue from the last epoch, not the best
            self.network.load_state_dict(self._last_state)
        self._last_state = None
        rng = self._generator()
        net, n = self.network, len(x_train)
        batches = math.ceil(n / self.batch_size)
        history = self.history
        # A run that early stopping ended stays ended when it is resumed.
        stopped_early = bool(self.early_stopping) and self._waited >= self.early_stopping

        for epoch in range(self.epoch + 1, self.epochs + 1):
            if stopped_early:
                break
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
            self.epoch = epoch
            if self.early_stopping:
                score = record[self.monitor] * (1 if self.monitor == "val_acc" else -1)
                if self._best_score is None or score > self._best_score:
                    self._best_score, self._waited = score, 0
                    self._best_state = net.state_dict()
                else:
                    self._waited += 1
                    stopped_early = self._waited >= self.early_stopping
            # The callback sees the epoch complete, early stopping's record included, so a
            # checkpoint it writes (with state_dict()) resumes exactly from here.
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch, record)

        if self.early_stopping and self._best_state is not None and self._waited:
            # The best epoch's weights and BatchNorm statistics; the last epoch's are kept
            # for a resumed run to continue from.
            self._last_state = net.state_dict()
            net.load_state_dict(self._best_state)
        return history
