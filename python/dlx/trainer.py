"""Mini-batch training with evaluation, history, progress bar and early stopping."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from ._random import get_rng
from .distributed import (
    GradientBuffer,
    batchnorm_sum,
    rank_stream,
    shard,
    synchronize_arrays,
)
from .errors import DlxTypeError, DlxValueError, TrainingDivergedError
from .layers.normalization import BatchNorm
from .network import Network
from .optim import Optimizer, get_optimizer

__all__ = ["StopRequested", "Trainer"]


class StopRequested(KeyboardInterrupt):
    """Distributed training stopped after a step because a rank was asked to (Ctrl-C or
    SIGTERM on one of them); every rank raises it after the same step. ``signal`` names the
    signal."""

    def __init__(self, signal: str) -> None:
        super().__init__(signal)
        self.signal = signal


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

    ``distributed=True`` trains data-parallel over MPI (:mod:`dlx.distributed`; run the
    script under ``mpiexec``): every rank starts from rank 0's weights, follows rank 0's
    shuffled order, takes its slice of each global batch of ``batch_size`` samples (100 on 4
    ranks is 25 each; uneven splits are weighted by their size), and the gradients and loss
    are summed over the ranks in one ``Allreduce`` per step, so every rank applies the same
    update. A final batch with fewer samples than ranks is skipped. BatchNorm keeps
    statistics per rank (rank 0's are everyone's after each epoch) unless
    ``sync_batchnorm=True``, which computes them over the whole global batch. Evaluation is
    split among the ranks; only rank 0 shows progress (``on_epoch_end`` runs on every rank:
    see :attr:`is_main`). Without ``mpiexec`` it is a world of one.
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
        distributed: bool = False,
        sync_batchnorm: bool = False,
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
        for name, flag in (("distributed", distributed), ("sync_batchnorm", sync_batchnorm)):
            if not isinstance(flag, bool):
                raise DlxTypeError(f"{name} must be True or False, got {flag!r}")
        if sync_batchnorm and not distributed:
            raise DlxValueError("sync_batchnorm=True needs distributed=True")
        self.comm = None
        if distributed:
            from .distributed import init

            self.comm = init()
        self.sync_batchnorm = sync_batchnorm
        self._buffer: GradientBuffer | None = None  # the Allreduce buffer, while fit runs
        # Polled once per step in distributed training: the name of a stop signal this rank
        # received ("SIGINT", "SIGTERM") or None. One on any rank stops every rank after the
        # same step (the command line sets it from Ctrl-C and SIGTERM).
        self.stop_requested: Callable[[], str | None] | None = None
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

    @property
    def is_main(self) -> bool:
        """Whether this process reports and saves: rank 0, or the only process."""
        return self.comm is None or self.comm.rank == 0

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
        n = len(x)
        if self.comm is not None:  # each rank its slice; the sums are added up below
            mine = shard(n, self.comm.size, self.comm.rank)
            x, t = x[mine], t[mine]
        total, correct = 0.0, 0
        labels = np.argmax(t, axis=1) if np.ndim(t) == 2 else np.asarray(t)
        step = max(self.batch_size, 1000)
        for start in range(0, len(x), step):
            xb, tb = x[start : start + step], t[start : start + step]
            scores = net.predict(xb, train=False)
            total += net.loss_layer.forward(scores, tb) * len(xb)
            correct += int(np.sum(np.argmax(scores, axis=1) == labels[start : start + step]))
        if self.comm is not None:
            total, correct = self.comm.sum_(np.array([total, correct], dtype=np.float64))
        return total / n + net.penalty(), int(correct) / n

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
        if self.comm is None:
            return self._fit_epochs(x_train, t_train, x_val, t_val, x_test, t_test)
        if self.batch_size < self.comm.size:
            raise DlxValueError(
                f"batch_size {self.batch_size} is the global batch: it must give each of the "
                f"{self.comm.size} ranks a sample at least"
            )
        self._start_distributed()
        try:
            return self._fit_epochs(x_train, t_train, x_val, t_val, x_test, t_test)
        except (StopRequested, TrainingDivergedError):
            raise  # every rank raises these after the same step
        except Exception as error:  # this rank alone: the others would wait for it forever
            self.comm.abort_on(error)
            raise
        finally:
            self._end_distributed()

    def _fit_epochs(self, x_train, t_train, x_val, t_val, x_test, t_test):
        net, history = self.network, self.history
        # A run that early stopping ended stays ended when it is resumed.
        stopped_early = bool(self.early_stopping) and self._waited >= self.early_stopping
        for epoch in range(self.epoch + 1, self.epochs + 1):
            if stopped_early:
                break
            started = time.perf_counter()
            losses = self._train_epoch(x_train, t_train, epoch)
            if self.comm is not None:  # BatchNorm's running statistics: rank 0's for all
                synchronize_arrays(self.comm, list(net.buffers.values()))

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

    def _train_epoch(self, x, t, epoch: int) -> list[float]:
        """One pass over the shuffled training set; the loss of every batch."""
        n = len(x)
        batches = math.ceil(n / self.batch_size)
        if self.comm is not None:
            rank_stream(self.comm, self._generator())
        order = self._generator().permutation(n) if self.is_main else np.empty(n, np.int64)
        if self.comm is not None:  # rank 0's order, on every rank
            self.comm.broadcast_(order)
        losses = []
        bar = tqdm(
            range(batches),
            desc=f"epoch {epoch}/{self.epochs}",
            unit="batch",
            disable=not self.progress or not self.is_main,
            leave=False,
        )
        for b in bar:
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.comm is None:
                loss, grads = self.network.loss_and_gradient(x[idx], t[idx])
            elif len(idx) < self.comm.size:
                continue  # too few samples to give every rank one
            else:
                loss, grads = self._distributed_gradient(x, t, idx)
            if not math.isfinite(loss):
                bar.close()
                raise TrainingDivergedError(
                    f"the training loss became {loss} at epoch {epoch}, batch {b + 1} of "
                    f"{batches}; lower the learning rate or check the inputs for NaN/inf"
                )
            self.optimizer.update(self.network.params, grads)
            losses.append(loss)
            if b % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")
        bar.close()
        return losses

    # -- data parallel ------------------------------------------------------------------
    def _start_distributed(self) -> None:
        """Every rank takes rank 0's model; BatchNorm sums its statistics over the ranks if
        asked. The ranks then stay identical: each applies the same summed gradients."""
        comm, net = self.comm, self.network
        synchronize_arrays(comm, [*net.params.values(), *net.buffers.values()])
        self._buffer = GradientBuffer(net.params)
        if self.sync_batchnorm:
            for layer in self._batchnorms():
                layer.sync = batchnorm_sum(comm)

    def _end_distributed(self) -> None:
        for layer in self._batchnorms():
            layer.sync = None
        self._buffer = None

    def _batchnorms(self) -> list[BatchNorm]:
        layers = [layer for _, layer in self.network._named_layers()]
        layers += list(getattr(self.network, "_runners", {}).values())  # a Model's calls
        return [layer for layer in layers if isinstance(layer, BatchNorm)]

    def _distributed_gradient(self, x, t, idx) -> tuple[float, dict[str, np.ndarray]]:
        """This rank's slice of the global batch ``idx``: its gradient, weighted by its share
        of the batch, summed over the ranks with the loss and any rank's request to stop in
        one Allreduce. Returns the loss and gradients of the whole batch."""
        comm, net = self.comm, self.network
        mine = idx[shard(len(idx), comm.size, comm.rank)]
        share = len(mine) / len(idx)
        loss = net.loss(x[mine], t[mine], train=True)
        grads = net.backward(share)  # share x (the loss of this slice)
        stop = self.stop_requested() if self.stop_requested is not None else None
        comm.sum_(self._buffer.pack(grads, share * loss, stop))
        grads, loss, stop = self._buffer.unpack()
        if stop is not None:
            raise StopRequested(stop)
        return loss, grads
