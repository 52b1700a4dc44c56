"""Accuracy and time per epoch on the full Fashion-MNIST (60,000 training, 10,000 test
images): dlx, or the same model in PyTorch. Adam, learning rate 1e-3, batch 100.

    python benchmarks/fashion_mnist.py --model simpleconvnet --framework dlx
    python benchmarks/fashion_mnist.py --model deepconvnet-bn --framework torch

The data come from wherever dlx finds them (Debian's dataset-fashion-mnist package, for one).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def run_dlx(model, x, t, xt, tt, epochs, seed):
    import dlx
    from dlx.cli import build_model

    dlx.seed(seed)
    net = build_model(model, x.shape[1:])
    records = []

    def on_epoch_end(epoch, record):
        records.append(
            {"epoch": epoch, "seconds": record["train_seconds"], "test_acc": record["test_acc"]}
        )
        print(json.dumps(records[-1]), flush=True)

    trainer = dlx.Trainer(
        net,
        dlx.optim.Adam(1e-3),
        epochs=epochs,
        batch_size=100,
        progress=False,
        train_eval_samples=0,
        on_epoch_end=on_epoch_end,
    )
    trainer.fit(x, t, x_test=xt, t_test=tt)
    return records


def run_torch(model, x, t, xt, tt, epochs, seed):
    import torch
    from bench_train import torch_models

    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count())
    net = torch_models(torch)[
        {
            "simpleconvnet": "SimpleConvNet",
            "deepconvnet": "DeepConvNet",
            "deepconvnet-bn": "DeepConvNet+BN",
        }[model]
    ]()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    tx, tt_, txt = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(xt)
    rng = np.random.default_rng(seed)
    records = []
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
        records.append(
            {"epoch": epoch, "seconds": seconds, "test_acc": float((pred.numpy() == tt).mean())}
        )
        print(json.dumps(records[-1]), flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        choices=["simpleconvnet", "deepconvnet", "deepconvnet-bn"],
        default="simpleconvnet",
    )
    parser.add_argument("--framework", choices=["dlx", "torch"], default="dlx")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from dlx.datasets import load_mnist

    (x, t), (xt, tt) = load_mnist("fashion-mnist", download=False)
    runner = run_dlx if args.framework == "dlx" else run_torch
    records = runner(args.model, x, t, xt, tt, args.epochs, args.seed)
    train_seconds = [r["seconds"] for r in records]
    print(
        json.dumps(
            {
                "framework": args.framework,
                "model": args.model,
                "epochs": args.epochs,
                "final_test_acc": records[-1]["test_acc"],
                "best_test_acc": max(r["test_acc"] for r in records),
                "seconds_per_epoch": float(np.median(train_seconds)),
            }
        )
    )


if __name__ == "__main__":
    main()
