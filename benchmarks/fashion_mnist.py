"""Accuracy and time per epoch on the full Fashion-MNIST (60,000 training, 10,000 test
images): dlx, the same model in PyTorch, or both. Adam, learning rate 1e-3, batch 100.

    python benchmarks/fashion_mnist.py --model simpleconvnet --framework dlx
    python benchmarks/fashion_mnist.py --model deepconvnet-bn --framework torch
    python benchmarks/fashion_mnist.py --model deepconvnet --framework both

``both`` trains the two side by side in one process, an epoch of one and then an epoch of
the other, so that a machine whose speed drifts slows both alike. Time per epoch is the
training alone (the mini-batches), without the test-set evaluation that follows it.

Both frameworks start from the same weights: the dlx model built with ``--weight-init``
(default ``uniform``, PyTorch's default for Linear and Conv2d weights) and the same seed, and
its PyTorch twin (``torch_twin.py``) with those weights copied; dlx's own default is He.
Behind BatchNorm the difference matters: He weights are 2.4 times larger, which slows
Adam's progress on them (about 0.8 points lower test accuracy after 10 epochs here).

The data come from wherever dlx finds them (Debian's dataset-fashion-mnist package, for one).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator

import numpy as np


def dlx_epochs(model, x, t, xt, tt, epochs, seed, weight_init, threads) -> Iterator[dict]:
    import dlx
    from dlx.cli import build_model

    dlx.threads.set_num_threads(threads)
    dlx.seed(seed)
    net = build_model(model, x.shape[1:], weight_init=weight_init)
    # One epoch per fit: the optimizer's state and dlx's shuffling generator carry over.
    trainer = dlx.Trainer(
        net, dlx.optim.Adam(1e-3), epochs=1, batch_size=100, progress=False, train_eval_samples=0
    )
    for epoch in range(1, epochs + 1):
        history = trainer.fit(x, t, x_test=xt, t_test=tt)
        yield {
            "epoch": epoch,
            "seconds": history["train_seconds"][0],
            "test_acc": history["test_acc"][0],
        }


def torch_epochs(model, x, t, xt, tt, epochs, seed, weight_init, threads) -> Iterator[dict]:
    import dlx
    import torch
    from dlx.cli import build_model
    from torch_twin import torch_twin

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    dlx.seed(seed)  # the same architecture and initial weights as dlx_epochs
    net = torch_twin(build_model(model, x.shape[1:], weight_init=weight_init), x.shape[1:])
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    tx, tt_, txt = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(xt)
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        net.train()
        for idx in np.array_split(rng.permutation(len(x)), len(x) // 100):
            opt.zero_grad()
            loss_fn(net(tx[idx]), tt_[idx]).backward()
            opt.step()
        seconds = time.perf_counter() - started
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(txt[i : i + 1000]).argmax(1) for i in range(0, len(xt), 1000)])
        yield {"epoch": epoch, "seconds": seconds, "test_acc": float((pred.numpy() == tt).mean())}


RUNNERS = {"dlx": dlx_epochs, "torch": torch_epochs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        choices=["simpleconvnet", "deepconvnet", "deepconvnet-bn", "resnet20"],
        default="simpleconvnet",
    )
    parser.add_argument("--framework", choices=["dlx", "torch", "both"], default="dlx")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="threads of each framework"
    )
    parser.add_argument(
        "--weight-init",
        choices=["uniform", "he", "xavier"],
        default="uniform",
        help="dlx's initialisation (default: uniform, as PyTorch's)",
    )
    args = parser.parse_args()

    from dlx.datasets import load_mnist

    (x, t), (xt, tt) = load_mnist("fashion-mnist", download=False)
    frameworks = ["dlx", "torch"] if args.framework == "both" else [args.framework]
    runs = {
        name: RUNNERS[name](
            args.model, x, t, xt, tt, args.epochs, args.seed, args.weight_init, args.threads
        )
        for name in frameworks
    }
    records: dict[str, list[dict]] = {name: [] for name in frameworks}
    for _ in range(args.epochs):
        for name, run in runs.items():
            records[name].append(next(run))
            print(json.dumps({"framework": name, **records[name][-1]}), flush=True)
    for name, done in records.items():
        print(
            json.dumps(
                {
                    "framework": name,
                    "model": args.model,
                    "weight_init": args.weight_init,
                    "epochs": args.epochs,
                    "threads": args.threads,
                    "final_test_acc": done[-1]["test_acc"],
                    "best_test_acc": max(r["test_acc"] for r in done),
                    "seconds_per_epoch": float(np.median([r["seconds"] for r in done])),
                }
            )
        )


if __name__ == "__main__":
    main()
