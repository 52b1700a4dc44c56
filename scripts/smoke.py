"""A small check that an installed dlx runs on this CPU: run by scripts/wheel_smoke.sh under
emulated CPUs (qemu-x86_64 -cpu Haswell, -cpu Nehalem), where anything is slow.

    python scripts/smoke.py --expect avx2

Checks the CPU level dlx chose, the convolution (im2col and shifted routes), the fully
connected products (GEMM and GEMV), pooling, BatchNorm and Adam against the NumPy reference,
and that a few training steps lower the loss.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def close(name: str, got, want, rtol: float = 1e-4) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1.0)
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=rtol * scale):
        sys.exit(f"smoke: {name} differs from the NumPy reference")
    print(f"  {name}: matches the reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect", required=True, choices=["baseline", "avx2", "avx512"])
    args = parser.parse_args()

    import dlx
    from dlx import ops

    level = ops.cpu_capability()
    print(f"dlx {dlx.__version__}: cpu capability {level}")
    if level != args.expect:
        sys.exit(f"smoke: expected the {args.expect} kernels, dlx chose {level}")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 12, 12)).astype(np.float32)
    # Stride 2 runs on the shifted route by its stride phases; stride 3 stays on im2col.
    for route, stride in (("shifted", 1), ("shifted", 2), ("im2col", 3)):
        w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
        b = rng.standard_normal(16).astype(np.float32)
        algorithms = ops.conv2d_algorithms(x, w, stride, 1)
        if not algorithms["forward"].startswith(route):
            sys.exit(f"smoke: expected the {route} route, got {algorithms}")
        y = ops.conv2d(x, w, b, stride, 1)
        grads = ops.conv2d_backward(np.ones_like(y), x, w, stride, 1)
        with ops.use_backend("numpy"):
            close(f"conv2d ({route}, stride {stride})", y, ops.conv2d(x, w, b, stride, 1))
            for name, got, want in zip(
                ("dx", "dw", "db"), grads, ops.conv2d_backward(np.ones_like(y), x, w, stride, 1)
            ):
                close(f"conv2d_backward {name} ({route}, stride {stride})", got, want)

    w = rng.standard_normal((96, 40)).astype(np.float32)
    for rows in (64, 1):  # a GEMM and a GEMV
        a, dy = (rng.standard_normal((rows, k)).astype(np.float32) for k in (96, 40))
        y, grads = ops.linear(a, w), ops.linear_backward(dy, a, w)
        with ops.use_backend("numpy"):
            close(f"linear ({rows} rows)", y, ops.linear(a, w))
            for name, got, want in zip(("dx", "dw", "db"), grads, ops.linear_backward(dy, a, w)):
                close(f"linear_backward {name} ({rows} rows)", got, want)

    pooled, _ = ops.max_pool2d(x, 2, 2, 0)
    mean, var = ops.batch_norm_stats(x)
    inv_std = (1 / np.sqrt(var + 1e-5)).astype(np.float32)
    gamma, beta = np.ones(8, np.float32), np.zeros(8, np.float32)
    normed = ops.batch_norm_apply(x, mean, inv_std, gamma, beta)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    param, m, v = x.copy(), np.zeros_like(x), np.zeros_like(x)
    ops.adam_step(param, grad, m, v, beta1=0.9, beta2=0.999, lr_t=1e-3, v_scale=1.0, eps=1e-8)
    with ops.use_backend("numpy"):
        close("max_pool2d", pooled, ops.max_pool2d(x, 2, 2, 0)[0])
        close("batch_norm_apply", normed, ops.batch_norm_apply(x, mean, inv_std, gamma, beta))
        ref = [x.copy(), np.zeros_like(x), np.zeros_like(x)]
        ops.adam_step(
            ref[0], grad, ref[1], ref[2], beta1=0.9, beta2=0.999, lr_t=1e-3, v_scale=1.0, eps=1e-8
        )
        close("adam_step", param, ref[0], rtol=0)

    (train_x, train_t), _ = dlx.datasets.load_bundled()
    dlx.seed(0)
    net = dlx.models.simple_conv_net()
    optimizer = dlx.optim.Adam(1e-3)
    batch_x, batch_t = train_x[:64], train_t[:64]
    first = net.loss(batch_x, batch_t)
    for _ in range(5):
        optimizer.update(net.params, net.gradient(batch_x, batch_t))
    last = net.loss(batch_x, batch_t)
    print(f"  five training steps: loss {first:.4f} -> {last:.4f}")
    if not last < first:
        sys.exit("smoke: training did not lower the loss")
    print("smoke: ok")


if __name__ == "__main__":
    main()
