"""The course's own training loop against dlx.Trainer, on the same batches, for every model
builder: batch 100, Adam, float32.

    python benchmarks/bench_loop.py [--threads 2] [--steps 30] [--rounds 5]

The book-style loop is what a learner writes::

    grads = net.gradient(x_batch, t_batch)
    optimizer.update(net.params, grads)

Trainer runs one epoch over the same ``steps`` batches (no evaluation sets; its
``train_seconds`` times the mini-batches alone). The two take turns for ``rounds`` rounds,
each on its own copy of the network, and the table gives the median milliseconds per step.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import numpy as np
from bench_inference import builders

BATCH = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import dlx

    dlx.threads.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.random((args.steps * BATCH, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, args.steps * BATCH)
    print(
        f"dlx {dlx.__version__} ({dlx.ops.cpu_capability()}), {args.threads} threads, "
        f"batch {BATCH}, Adam, float32, {args.steps} steps x {args.rounds} rounds"
    )
    print(f"{'model':20s} {'loop ms/step':>13s} {'Trainer ms/step':>16s} {'loop/Trainer':>13s}")
    for name, build in builders(dlx).items():
        dlx.seed(0)
        nets = {"loop": build()}
        nets["trainer"] = copy.deepcopy(nets["loop"])
        optimizers = {k: dlx.optim.Adam(1e-3) for k in nets}

        def book_loop():
            net, optimizer = nets["loop"], optimizers["loop"]
            start = time.perf_counter()
            for i in range(0, len(x), BATCH):
                grads = net.gradient(x[i : i + BATCH], t[i : i + BATCH])
                optimizer.update(net.params, grads)
            return time.perf_counter() - start

        trainer = dlx.Trainer(
            nets["trainer"], optimizers["trainer"], epochs=1, batch_size=BATCH, progress=False
        )

        def trainer_epoch():
            return trainer.fit(x, t)["train_seconds"][0]

        times = {"loop": [], "trainer": []}
        book_loop(), trainer_epoch()  # warm-up
        for _ in range(args.rounds):
            times["loop"].append(book_loop() / args.steps)
            times["trainer"].append(trainer_epoch() / args.steps)
        loop, trained = (statistics.median(times[k]) for k in ("loop", "trainer"))
        print(f"{name:20s} {loop * 1e3:13.2f} {trained * 1e3:16.2f} {loop / trained:13.2f}")


if __name__ == "__main__":
    main()
