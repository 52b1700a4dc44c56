"""Inference with every model builder: dlx's ``net.predict`` against the same network (same
weights, checked to give the same outputs) in PyTorch under ``torch.inference_mode()``, in one
process: latency at batch 1 and time per batch at batch 256, float32.

    python benchmarks/bench_inference.py [--threads 2] [--repeats 30]

The two take turns; each turn runs a framework once untimed and then timed (see
bench_ops.timed for why), so a slow moment of the machine hits both alike. Batch 1 times
blocks of calls, as a latency-bound server would make them back to back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from torch_twin import same_function, torch_twin

BATCH_ONE_BLOCK = 50


def builders(dlx):
    return {
        "MLP 784-100-100-10": lambda: dlx.models.mlp(784, [100, 100], 10),
        "SimpleConvNet": dlx.models.simple_conv_net,
        "DeepConvNet": dlx.models.deep_conv_net,
        "DeepConvNet+BN": lambda: dlx.models.deep_conv_net(batchnorm=True),
    }


def randomise_buffers(net, rng) -> None:
    """Running statistics away from their initial 0 and 1, so that the twin check covers them."""
    for layer in net.layers:
        for name, buffer in layer.buffers.items():
            low = 0.5 if name == "running_var" else -0.5
            buffer[...] = rng.uniform(low, low + 1.0, buffer.shape)


def timed(fns: dict, repeats: int, calls: int) -> dict[str, float]:
    """Median seconds per call of each callable: in each of ``repeats`` turns every callable
    runs ``calls`` times untimed, then ``calls`` times timed."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            for _ in range(calls):
                f()
            start = time.perf_counter()
            for _ in range(calls):
                f()
            times[name].append((time.perf_counter() - start) / calls)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    import dlx
    import torch

    dlx.threads.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(
        f"dlx {dlx.__version__} ({dlx.ops.cpu_capability()}), torch {torch.__version__}, "
        f"{args.threads} threads, float32, eval mode"
    )
    print(
        f"{'model':20s} {'b1 dlx us':>10s} {'b1 torch us':>12s} {'dlx/torch':>10s}"
        f" {'b256 dlx ms':>12s} {'b256 torch ms':>14s} {'dlx/torch':>10s}"
    )
    for name, build in builders(dlx).items():
        dlx.seed(0)
        net = build()
        randomise_buffers(net, rng)
        model = torch_twin(net, (1, 28, 28)).eval()
        row = []
        for batch, calls in ((1, BATCH_ONE_BLOCK), (256, 1)):
            x = rng.random((batch, 1, 28, 28), dtype=np.float32)
            same_function(net, model, x)
            tx = torch.from_numpy(x)

            def torch_predict():
                with torch.inference_mode():
                    model(tx)

            t = timed({"dlx": lambda: net.predict(x), "torch": torch_predict}, args.repeats, calls)
            row.append((t["dlx"], t["torch"]))
        (d1, t1), (d256, t256) = row
        print(
            f"{name:20s} {d1 * 1e6:10.0f} {t1 * 1e6:12.0f} {d1 / t1:10.2f}"
            f" {d256 * 1e3:12.2f} {t256 * 1e3:14.2f} {d256 / t256:10.2f}"
        )


if __name__ == "__main__":
    main()
