"""Data-parallel training over MPI: the same training on one process or on many.

Every process (rank) holds the whole model and takes its shard of each global batch; the
gradients are summed over the ranks with one ``Allreduce`` per step, so every rank applies
the same update and the ranks never drift. This is synchronous data parallelism as
ChainerMN, Horovod and PyTorch's DDP do it, over MPI through ``mpi4py``::

    mpiexec -n 4 dlx train --distributed --model deepconvnet --dataset fashion-mnist
    mpiexec -n 4 python my_script.py      # with Trainer(..., distributed=True)

:func:`init` gives the world: under ``mpiexec`` every process's :class:`Communicator`; run
without it, or without ``mpi4py`` installed, a world of one, so that the same script runs
either way. It needs the ``mpi`` extra (``pip install "dlx-scratch[mpi]"``: ``mpi4py`` and
MPICH from PyPI; a system MPI works too) only to run on several processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import DlxError, DlxValueError, MissingExtraError

__all__ = [
    "CollectiveError",
    "Communicator",
    "GradientBuffer",
    "init",
    "launcher_rank",
    "local_ranks",
    "shard",
]

# Set by mpiexec (MPICH's Hydra, Open MPI, Intel MPI, Slurm's PMI): the process is one of
# several, so a missing mpi4py is an error rather than a world of one.
_LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
# The signals that stop training, in the order a report prefers them.
STOP_SIGNALS = ("SIGINT", "SIGTERM")


def launcher_rank() -> int | None:
    """This process's rank as mpiexec announced it, before MPI starts (None outside it)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


class CollectiveError(DlxError):
    """An error every rank raised together (a setting or a file one of them could not use,
    a loss that became NaN): it ends every rank alike, and only rank 0 prints it."""


class Communicator:
    """The ranks of one training run: ``rank`` (this process, 0 to ``size`` - 1) and
    ``size``, with the few collective operations data-parallel training needs. Every rank
    must call each operation, in the same order."""

    def __init__(self, comm: Any = None) -> None:
        self._comm = comm  # an mpi4py communicator, or None for a world of one
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size})"

    def sum_(self, buffer: np.ndarray) -> np.ndarray:
        """Replace ``buffer`` (contiguous) with its elementwise sum over the ranks, in place:
        one MPI message however many arrays it packs."""
        if self._comm is not None and self.size > 1:
            from mpi4py import MPI

            self._comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        return buffer

    def broadcast_(self, buffer: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``buffer`` (contiguous) on every rank with rank ``root``'s, in place."""
        if self._comm is not None and self.size > 1:
            self._comm.Bcast(buffer, root=root)
        return buffer

    def broadcast_object(self, value: Any, root: int = 0) -> Any:
        """A small Python value of rank ``root``'s, on every rank (pickled: for setup only,
        never for arrays on the training path)."""
        if self._comm is not None and self.size > 1:
            return self._comm.bcast(value, root=root)
        return value

    def agree(self, error: BaseException | None) -> None:
        """Called by every rank after a step that may fail on some of them (reading data,
        building the model): when any rank failed, every rank raises a
        :class:`CollectiveError` with the message of the lowest failing rank, so that all stop
        together instead of the others waiting for the failed one."""
        message = None if error is None else f"{error}"
        if self._comm is not None and self.size > 1:
            messages = self._comm.allgather(message)
        else:
            messages = [message]
        for rank, text in enumerate(messages):
            if text is not None:
                where = f" (on rank {rank})" if self.size > 1 and rank != 0 else ""
                raise CollectiveError(f"{text}{where}") from error

    def abort(self, status: int) -> None:
        """End every rank at once (after an error on this rank alone)."""
        if self._comm is not None and self.size > 1:
            self._comm.Abort(status)

    def abort_on(self, error: BaseException) -> None:
        """After an exception raised on this rank alone inside a collective computation: say
        what it was and end every rank, since the others would wait for this one forever.
        Does nothing in a world of one, where the exception simply propagates."""
        if self._comm is None or self.size == 1:
            return
        import sys
        import traceback

        print(f"dlx: rank {self.rank} of {self.size} failed; ending every rank:", file=sys.stderr)
        traceback.print_exception(error, file=sys.stderr)
        sys.stderr.flush()
        self.abort(1)


def init() -> Communicator:
    """The ranks of this run: MPI's world under ``mpiexec``, else a world of one.

    Where several ranks share a machine and neither ``DLX_NUM_THREADS`` nor
    ``OMP_NUM_THREADS`` says otherwise, each rank's kernels take an equal part of the
    machine's cores (2 ranks on 8 cores: 4 threads each), not all of them: ranks that each
    ran on every core would fight over them."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        if any(name in os.environ for name in _LAUNCHER_VARIABLES):
            raise MissingExtraError("distributed training", "mpi", "mpi4py") from error
        return Communicator(None)
    _share_cores(local_ranks())
    return Communicator(MPI.COMM_WORLD)


def local_ranks() -> int:
    """How many ranks of this run the launcher started on this machine (1 outside one)."""
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def _share_cores(ranks_here: int) -> None:
    if ranks_here <= 1 or os.environ.get("DLX_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS"):
        return
    from . import threads

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads.set_num_threads(max(1, (cores or 1) // ranks_here))


class GradientBuffer:
    """One flat, contiguous buffer holding every gradient of a network and the loss, so that
    a step sums them over the ranks with a single ``Allreduce``: ``pack`` copies each rank's
    share-weighted gradients in, ``unpack`` gives the sums back as views keyed like
    ``net.params``."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        dtypes = {p.dtype for p in params.values()}
        dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float64)
        self.slots: dict[str, tuple[slice, tuple[int, ...]]] = {}
        offset = 0
        for key, p in params.items():
            self.slots[key] = (slice(offset, offset + p.size), p.shape)
            offset += p.size
        # Three more values: this rank's share of the batch loss, and its requests to stop
        # (one slot per stop signal, so every rank learns which it was).
        self.data = np.zeros(offset + 1 + len(STOP_SIGNALS), dtype=dtype)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def pack(self, grads: dict[str, np.ndarray], loss: float, stop: str | None) -> np.ndarray:
        """Fill the buffer: the gradients, the loss and ``stop``, the name of a stop signal
        this rank received (or None)."""
        for key, (where, _) in self.slots.items():
            self.data[where] = grads[key].reshape(-1)
        signals = len(STOP_SIGNALS)
        self.data[-1 - signals] = loss
        self.data[-signals:] = [1.0 if stop == name else 0.0 for name in STOP_SIGNALS]
        return self.data

    def unpack(self) -> tuple[dict[str, np.ndarray], float, str | None]:
        """The summed gradients (views of the buffer), the loss, and the stop signal any rank
        received (SIGTERM before SIGINT), or None."""
        grads = {key: self.data[where].reshape(shape) for key, (where, shape) in self.slots.items()}
        signals = len(STOP_SIGNALS)
        received = [name for name, n in zip(STOP_SIGNALS, self.data[-signals:]) if n > 0]
        return grads, float(self.data[-1 - signals]), (received[-1] if received else None)


def shard(n: int, size: int, rank: int) -> slice:
    """Rank ``rank``'s part of ``n`` items split among ``size`` ranks as evenly as possible
    (the first ``n % size`` ranks take one more), as ``numpy.array_split`` splits them."""
    q, r = divmod(n, size)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (1 if rank < r else 0))


def synchronize_arrays(comm: Communicator, arrays: list[np.ndarray]) -> None:
    """Every rank takes rank 0's values of ``arrays`` (parameters, buffers), in one
    broadcast of a flat copy."""
    if comm.size == 1 or not arrays:
        return
    dtype = np.result_type(*arrays)
    flat = np.concatenate([a.reshape(-1).astype(dtype, copy=False) for a in arrays])
    comm.broadcast_(flat)
    offset = 0
    for a in arrays:
        a[...] = flat[offset : offset + a.size].reshape(a.shape)
        offset += a.size


def rank_stream(comm: Communicator, generator: np.random.Generator) -> None:
    """Give each rank a random stream of its own for what it draws alone (Dropout's masks):
    every rank takes rank 0's generator state, and rank r jumps it r times ahead. Derived
    afresh from rank 0's state at each epoch, so a run resumed from rank 0's checkpoint
    draws what the uninterrupted run drew."""
    if comm.size == 1:
        return
    bits = generator.bit_generator
    if not hasattr(bits, "jumped"):
        raise DlxValueError(
            f"distributed training needs a generator that can jump ahead (PCG64, Philox, "
            f"MT19937), got {type(bits).__name__}"
        )
    bits.state = comm.broadcast_object(bits.state)
    if comm.rank:
        bits.state = bits.jumped(comm.rank).state


def batchnorm_sum(comm: Communicator) -> Callable[[np.ndarray], np.ndarray]:
    """The function synchronised BatchNorm sums its per-channel statistics with."""

    def total(values: np.ndarray) -> np.ndarray:
        return comm.sum_(np.ascontiguousarray(values, dtype=np.float64))

    return total
