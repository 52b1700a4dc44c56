"""Convolution and max pooling, forward + backward, float32: dlx (C++), dlx's NumPy reference,
and PyTorch when it is installed, timed in one process on the same arrays.

    python benchmarks/bench_ops.py                 # every shape, both cores
    python benchmarks/bench_ops.py --threads 1     # single-threaded comparison
    python benchmarks/bench_ops.py --skip-numpy    # faster: leave out the NumPy reference
    python benchmarks/bench_ops.py --other-build PATH/_core.cpython-*.so
                                                   # also time another build of dlx's extension

Each row: median milliseconds over --repeats runs (dlx and PyTorch take turns, so a slow
moment of the machine hits both alike; see timed; the NumPy reference is timed last),
GFLOP/s of dlx and its share of NumPy's sgemm on 2048^3 at the same thread count, the ratios,
and the peak extra memory of a dlx and a PyTorch forward + backward of each shape (the growth
of the resident set in a child process, which sees C++ buffers as well as NumPy's).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

CONV_SHAPES = {
    # name: (N, C, H=W, FN, k, stride, pad)
    "simpleconv": (100, 1, 28, 30, 5, 1, 0),
    "deepconv-a": (100, 16, 28, 16, 3, 1, 1),
    "deepconv-b": (100, 32, 14, 64, 3, 1, 1),
    "resnet-block": (16, 64, 56, 64, 3, 1, 1),
    "stride2": (64, 3, 32, 32, 3, 2, 1),
    "pointwise-1x1": (32, 64, 28, 128, 1, 1, 0),
    "large-k7-s2": (16, 3, 112, 64, 7, 2, 3),
}
POOL_SHAPES = {
    # name: ((N, C, H, W), k, stride)
    "maxpool-2x2/2": ((100, 30, 24, 24), 2, 2),
    "maxpool-3x3/2": ((16, 64, 56, 56), 3, 2),
}


def set_threads(n: int | None) -> None:
    import dlx.ops  # noqa: F401
    from dlx import _core

    if n:
        _core.set_num_threads(n)


def timed(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each callable over `repeats` turns. In each turn every callable runs
    twice and its second run is timed: the first lets the previous implementation's OpenMP
    threads, which spin for a while after their work, fall idle (measured here: straight after
    PyTorch, dlx's forward pass took up to 1.8x as long; after dlx, PyTorch's steps up to 1.3x),
    so each timing sees its own implementation alone on the cores, as a training loop would."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            f()
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


# OpenBLAS's threads, under NumPy, keep spinning for about 2^28 cycles after a call: run in
# turns with dlx and PyTorch, the NumPy reference slowed them 2-2.5x. Even timed on its own
# after each shape it slowed dlx and PyTorch on the next shape by 25-30% (deepconv-b). So the
# NumPy reference of every shape is timed after all of dlx's and PyTorch's timings, and the
# threads are left this long to fall asleep after the sgemm ceiling.
BLAS_IDLE_SECONDS = 0.5


def load_other_build(path: str):
    """Another build's dlx._core (a -march=native build, say), loaded beside this one."""
    import importlib.machinery
    import importlib.util

    import dlx.ops  # noqa: F401  (loads OpenBLAS first, as dlx does)

    loader = importlib.machinery.ExtensionFileLoader("_core", path)
    spec = importlib.util.spec_from_file_location("_core", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


OTHER_BUILD = None  # set by --other-build


def with_reference(dlx_step, with_numpy: bool) -> dict:
    """{"dlx": dlx_step}, plus the same step on the NumPy reference backend and on another
    build's extension if asked."""
    fns = {"dlx": dlx_step}
    if OTHER_BUILD is not None:
        from dlx.ops import _native

        def other_build_step():
            this_build, _native._core = _native._core, OTHER_BUILD
            try:
                dlx_step()
            finally:
                _native._core = this_build

        fns["other"] = other_build_step
    if with_numpy:
        import dlx.ops as ops

        def numpy_step():
            with ops.use_backend("numpy"):
                dlx_step()

        fns["numpy"] = numpy_step
    return fns


def conv_callables(shape, with_numpy: bool, torch):
    import dlx.ops as ops

    n, c, h, fn, k, s, p = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = rng.standard_normal((fn, c, k, k), dtype=np.float32) * 0.1
    b = np.zeros(fn, np.float32)
    out = ops.conv_output_size(h, k, s, p)
    dy = np.ones((n, fn, out, out), np.float32)  # not from a first call: see peak_extra_mib

    def dlx_step():
        ops.conv2d(x, w, b, s, p)
        ops.conv2d_backward(dy, x, w, s, p)

    fns = with_reference(dlx_step, with_numpy)
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_(True)
        tw = torch.from_numpy(w.copy()).requires_grad_(True)
        tb = torch.from_numpy(b.copy()).requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def torch_step():
            y = torch.nn.functional.conv2d(tx, tw, tb, s, p)
            gx, gw, gb = torch.autograd.grad(y, (tx, tw, tb), tdy)

        fns["torch"] = torch_step
    flops = 3 * 2 * dy.size * c * k * k  # forward, grad-input and grad-weight GEMMs
    return fns, flops


def sgemm_ceiling(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of NumPy's own sgemm on size^3 with ``threads`` BLAS threads: the ceiling a
    GEMM-based convolution can approach."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    with threadpool_limits(threads, user_api="blas"):
        seconds = timed({"sgemm": lambda: a @ b}, repeats)["sgemm"]
    return 2 * size**3 / seconds / 1e9


def pool_callables(spec, with_numpy: bool, torch):
    import dlx.ops as ops

    shape, k, s = spec
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    y, argmax = ops.max_pool2d(x, k, s)
    dy = np.ones_like(y)

    def dlx_step():
        _, am = ops.max_pool2d(x, k, s)
        ops.max_pool2d_backward(dy, am, shape, k, s)

    fns = with_reference(dlx_step, with_numpy)
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def torch_step():
            out = torch.nn.functional.max_pool2d(tx, k, s)
            torch.autograd.grad(out, (tx,), tdy)

        fns["torch"] = torch_step
    return fns, 0


# The child resets the kernel's high-water mark of its resident set (writing 5 to
# /proc/self/clear_refs, Linux 4.0+) once the inputs exist, so imports and input set-up,
# which peak higher than a step, do not hide the step's own peak.
_PEAK_CHILD = """
import re, sys, numpy as np
sys.path.insert(0, {here!r})
import bench_ops
impl, name = sys.argv[1], sys.argv[2]
torch = None
if impl == "torch":
    import torch
    torch.set_num_threads({threads})
bench_ops.set_threads({threads})
if name in bench_ops.CONV_SHAPES:
    fns, _ = bench_ops.conv_callables(bench_ops.CONV_SHAPES[name], False, torch)
else:
    fns, _ = bench_ops.pool_callables(bench_ops.POOL_SHAPES[name], False, torch)

def kib(field):
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\\s+(\\d+)", f.read()).group(1))

before = kib("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
for _ in range(3):
    fns[impl]()
print(kib("VmHWM") - before)
"""


def peak_extra_mib(impl: str, name: str, threads: int) -> float | None:
    """Peak growth of the resident set (MiB) over three steps, inputs already allocated, in a
    fresh process: outputs, gradients and every working buffer of the implementation.
    None where the measurement is unavailable (not Linux, or the child failed)."""
    code = _PEAK_CHILD.format(here=os.path.dirname(os.path.abspath(__file__)), threads=threads)
    result = subprocess.run(
        [sys.executable, "-c", code, impl, name], capture_output=True, text=True
    )
    if result.returncode != 0:
        return None
    return int(result.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="threads for dlx and PyTorch"
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-numpy", action="store_true", help="leave out the NumPy reference")
    parser.add_argument(
        "--skip-memory", action="store_true", help="leave out the peak memory of each shape"
    )
    parser.add_argument("--only", nargs="*", help="shape names to run")
    parser.add_argument(
        "--other-build", help="another build's dlx/_core*.so, timed in turns with this one"
    )
    args = parser.parse_args()
    global OTHER_BUILD
    if args.other_build:
        OTHER_BUILD = load_other_build(args.other_build)

    set_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    import dlx

    print(
        f"dlx {dlx.__version__} ({dlx.ops.cpu_capability()} kernels), numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}; "
        f"{platform.processor() or platform.machine()}, {args.threads} threads, float32, forward + backward"
    )
    ceiling = sgemm_ceiling(args.threads)
    time.sleep(BLAS_IDLE_SECONDS)  # NumPy's BLAS threads spin on after the ceiling's GEMMs
    print(f"NumPy sgemm 2048^3: {ceiling:.1f} GFLOP/s (the ceiling; 'of sgemm' is dlx's share)")
    memory = torch is not None and not args.skip_memory
    header = f"{'shape':16s} {'dlx ms':>8s} {'GFLOP/s':>8s} {'of sgemm':>8s} {'torch ms':>9s} {'numpy ms':>9s} {'dlx/torch':>9s} {'numpy/dlx':>9s}"
    if memory:
        header += f" {'dlx MiB':>8s} {'torch MiB':>9s}"
    print(header)
    print("-" * len(header))
    ratios, other_ratios = [], []
    rows = [(name, conv_callables, shape) for name, shape in CONV_SHAPES.items()]
    rows += [(name, pool_callables, spec) for name, spec in POOL_SHAPES.items()]
    rows = [row for row in rows if not args.only or row[0] in args.only]
    measured = []
    for name, make, spec in rows:
        fns, flops = make(spec, not args.skip_numpy, torch)
        reference = fns.pop("numpy", None)
        measured.append((name, flops, timed(fns, args.repeats), reference))
    for name, flops, t, reference in measured:
        if reference is not None:
            t["numpy"] = timed({"numpy": reference}, max(3, args.repeats // 3))["numpy"]
        ms = {k: v * 1e3 for k, v in t.items()}
        gflops = f"{flops / t['dlx'] / 1e9:8.1f}" if flops else f"{'':8s}"
        share = f"{flops / t['dlx'] / 1e9 / ceiling:8.0%}" if flops else f"{'':8s}"
        torch_ms = f"{ms['torch']:9.2f}" if "torch" in ms else f"{'-':>9s}"
        numpy_ms = f"{ms['numpy']:9.1f}" if "numpy" in ms else f"{'-':>9s}"
        vs_torch = f"{ms['dlx'] / ms['torch']:9.2f}" if "torch" in ms else f"{'-':>9s}"
        vs_numpy = f"{ms['numpy'] / ms['dlx']:9.1f}" if "numpy" in ms else f"{'-':>9s}"
        if "torch" in ms and flops:
            ratios.append(ms["dlx"] / ms["torch"])
        peaks = ""
        if memory:
            d = peak_extra_mib("dlx", name, args.threads)
            q = peak_extra_mib("torch", name, args.threads)
            peaks = f" {d:8.1f} {q:9.1f}" if d is not None and q is not None else ""
        other = ""
        if "other" in ms:
            other_ratios.append(ms["dlx"] / ms["other"])
            other = f"   other build {ms['other']:8.2f} ms, dlx/other {other_ratios[-1]:.3f}"
        print(
            f"{name:16s} {ms['dlx']:8.2f} {gflops} {share} {torch_ms} {numpy_ms} {vs_torch} {vs_numpy}"
            + peaks
            + other
        )
    if ratios:
        print(f"convolution geometric mean dlx/torch: {float(np.exp(np.mean(np.log(ratios)))):.2f}")
    if other_ratios:
        print(
            "geometric mean dlx/other build (every row): "
            f"{float(np.exp(np.mean(np.log(other_ratios)))):.3f}"
        )


if __name__ == "__main__":
    main()
