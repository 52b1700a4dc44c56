"""What each rank runs in tests/distributed: train a small model data-parallel and write
what it ended with, ``rank<R>.npz`` in the folder given."""

import sys
from pathlib import Path

import dlx
import numpy as np


def model(kind: str) -> dlx.Sequential:
    dlx.seed(0)
    if kind == "mlp":
        return dlx.models.mlp(12, [16, 8], 3, weight_decay=0.01)
    # Biases before a BatchNorm get no gradient but rounding noise: the convolution has none.
    layers = [
        dlx.layers.Conv2d(1, 4, 3, padding=1, bias=False),
        dlx.layers.BatchNorm(4),
        dlx.layers.ReLU(),
        dlx.layers.Flatten(),
        dlx.layers.BatchNorm(4 * 4 * 3),
        dlx.layers.Affine(4 * 4 * 3, 6),
        dlx.layers.ReLU(),
        dlx.layers.Affine(6, 3),
    ]
    return dlx.Sequential(layers)


def data(kind: str):
    rng = np.random.default_rng(1)
    shape = (12,) if kind == "mlp" else (1, 4, 3)
    x = rng.standard_normal((303, *shape)).astype(np.float32)
    return x, rng.integers(0, 3, 303)


def train(kind: str, distributed: bool) -> tuple[dlx.Trainer, dlx.Sequential]:
    """Seven epochs of three global batches of 101 (51 + 50 samples on two ranks)."""
    net = model(kind)
    x, t = data(kind)
    trainer = dlx.Trainer(
        net,
        dlx.optim.Momentum(0.05),
        epochs=7,
        batch_size=101,
        progress=False,
        rng=np.random.default_rng(5),
        distributed=distributed,
        sync_batchnorm=distributed and kind == "bn",
    )
    trainer.fit(x, t, x_val=x[:50], t_val=t[:50])
    return trainer, net


def stop_on_rank_1(out: Path) -> None:
    """Rank 1 receives SIGTERM before its third step: both ranks stop after that step."""
    net = model("mlp")
    x, t = data("mlp")
    trainer = dlx.Trainer(net, "sgd", epochs=3, batch_size=101, progress=False, distributed=True)
    calls = []
    trainer.stop_requested = lambda: (
        "SIGTERM" if trainer.comm.rank == 1 and len(calls.append(1) or calls) >= 3 else None
    )
    steps = []
    update = trainer.optimizer.update
    trainer.optimizer.update = lambda params, grads: (steps.append(1), update(params, grads))
    try:
        trainer.fit(x, t)
    except dlx.trainer.StopRequested as stop:
        np.savez(
            out / f"rank{trainer.comm.rank}.npz", signal=stop.signal, steps=len(steps), **net.params
        )


def fail_on_rank_0() -> None:
    """An error in one rank's callback: every rank must end, none wait."""

    def callback(epoch, record):
        if trainer.comm.rank == 0:
            raise OSError("disk full on rank 0")

    x, t = data("mlp")
    trainer = dlx.Trainer(
        model("mlp"),
        "sgd",
        epochs=3,
        batch_size=50,
        progress=False,
        distributed=True,
        on_epoch_end=callback,
    )
    trainer.fit(x, t)


if __name__ == "__main__":
    kind, out = sys.argv[1], Path(sys.argv[2])
    if kind == "stop":
        stop_on_rank_1(out)
        sys.exit(0)
    if kind == "fail":
        fail_on_rank_0()
        sys.exit(0)
    trainer, net = train(kind, distributed=True)
    arrays = {f"param/{k}": v for k, v in net.params.items()}
    arrays.update({f"buffer/{k}": v for k, v in net.buffers.items()})
    for key in ("train_loss", "val_loss", "val_acc"):
        arrays[f"history/{key}"] = np.array(trainer.history[key])
    np.savez(out / f"rank{trainer.comm.rank}.npz", size=trainer.comm.size, **arrays)
