"""Data-parallel training speed: one process with every core against one process per core.

    python benchmarks/bench_distributed.py            # runs the configurations below, prints a table
    mpiexec -n 2 python benchmarks/bench_distributed.py --worker --model deepconvnet

Each configuration trains with a global batch of 100 (Adam, float32, random data) and
reports images per second and the share of each step spent in the gradient Allreduce.
The launcher also prints, per model, the bytes each step communicates and one process's
compute time per step, the numbers the cost model of docs/distributed.md starts from.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ("simpleconvnet", "deepconvnet", "resnet20")


def worker(model: str, steps: int) -> dict:
    import dlx
    from dlx.cli import build_model
    from dlx.distributed import GradientBuffer, init, shard

    comm = init()
    dlx.seed(0)
    net = build_model(model, (1, 28, 28))
    opt = dlx.optim.Adam(1e-3)
    buffer = GradientBuffer(net.params)
    rng = np.random.default_rng(0)
    x = rng.random((100, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, 100)
    mine = shard(100, comm.size, comm.rank)
    share = (mine.stop - mine.start) / 100
    step_times, reduce_times = [], []
    for i in range(steps + 2):  # two warm-up steps
        started = time.perf_counter()
        loss = net.loss(x[mine], t[mine])
        grads = net.backward(share)
        data = buffer.pack(grads, share * loss, False)
        reduce_started = time.perf_counter()
        comm.sum_(data)
        reduced = time.perf_counter() - reduce_started
        grads, _, _ = buffer.unpack()
        opt.update(net.params, grads)
        if i >= 2:
            step_times.append(time.perf_counter() - started)
            reduce_times.append(reduced)
    step = statistics.median(step_times)
    return {
        "model": model,
        "processes": comm.size,
        "threads": dlx.threads.get_num_threads(),
        "images_per_s": 100 / step,
        "step_ms": 1e3 * step,
        "allreduce_ms": 1e3 * statistics.median(reduce_times),
        "allreduce_share": statistics.median(r / s for r, s in zip(reduce_times, step_times)),
        "bytes_per_step": buffer.nbytes,
    }


def launch(model: str, processes: int, threads: int, steps: int) -> dict:
    env = {**os.environ, "DLX_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--worker", "--model", model, "--steps", str(steps)]
    if processes > 1:
        command = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(processes), *command]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.model, args.steps)
        if result["processes"] == 1 or _rank() == 0:
            print(json.dumps(result), flush=True)
        return
    cores = os.cpu_count() or 1
    print(
        f"{'model':14s} {'processes x threads':>20s} {'img/s':>8s} {'step ms':>8s} "
        f"{'allreduce ms':>13s} {'share':>6s} {'bytes/step':>11s}"
    )
    for model in [args.model] if args.model else MODELS:
        for processes, threads in ((1, cores), (cores, 1)):
            r = launch(model, processes, threads, args.steps)
            print(
                f"{model:14s} {f'{processes} x {threads}':>20s} {r['images_per_s']:8.0f} "
                f"{r['step_ms']:8.1f} {r['allreduce_ms']:13.2f} {r['allreduce_share']:6.1%} "
                f"{r['bytes_per_step']:11,d}"
            )


def _rank() -> int:
    from dlx.distributed import init

    return init().rank


if __name__ == "__main__":
    main()
