"""Training-step throughput (images per second) of SimpleConvNet and DeepConvNet, batch 100,
Adam, float32: dlx against the same models in PyTorch (same initial weights), in one process,
on the same batches.

    python benchmarks/bench_train.py [--threads 2] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from torch_twin import torch_twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()

    import dlx

    dlx.threads.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    rng = np.random.default_rng(0)
    x = rng.random((args.steps, 100, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, (args.steps, 100))
    builders = {
        "SimpleConvNet": dlx.models.simple_conv_net,
        "DeepConvNet": dlx.models.deep_conv_net,
        "DeepConvNet+BN": lambda: dlx.models.deep_conv_net(batchnorm=True),
        "ResNet-20": lambda: dlx.models.resnet(20),
    }
    print(
        f"dlx {dlx.__version__}, torch {torch.__version__ if torch else 'not installed'}, "
        f"{args.threads} threads, batch 100, Adam, float32"
    )
    print(f"{'model':16s} {'dlx img/s':>10s} {'torch img/s':>12s} {'dlx/torch':>10s}")
    for name, build in builders.items():
        dlx.seed(0)
        net, opt = build(), dlx.optim.Adam(1e-3)

        def dlx_step(i):
            _, grads = net.loss_and_gradient(x[i], t[i])
            opt.update(net.params, grads)

        runners = {"dlx": dlx_step}
        if torch is not None:
            model = torch_twin(net, (1, 28, 28))
            topt = torch.optim.Adam(model.parameters(), 1e-3)
            tx, tt = torch.from_numpy(x), torch.from_numpy(t)
            loss_fn = torch.nn.CrossEntropyLoss()

            def torch_step(i):
                topt.zero_grad()
                loss_fn(model(tx[i]), tt[i]).backward()
                topt.step()

            runners["torch"] = torch_step
        times = {k: [] for k in runners}
        for f in runners.values():
            f(0)
        # Each framework takes two steps in a row and the second is timed: the first lets the
        # other framework's OpenMP threads, which spin for a while after their work, fall
        # idle, so each timing sees its own framework alone on the cores.
        for i in range(args.steps):
            for k, f in runners.items():
                f(i)
                start = time.perf_counter()
                f(i)
                times[k].append(time.perf_counter() - start)
        rate = {k: 100 / statistics.median(v) for k, v in times.items()}
        if "torch" in rate:
            print(
                f"{name:16s} {rate['dlx']:10.0f} {rate['torch']:12.0f} {rate['dlx'] / rate['torch']:10.2f}"
            )
        else:
            print(f"{name:16s} {rate['dlx']:10.0f} {'-':>12s} {'-':>10s}")


if __name__ == "__main__":
    main()
