"""Make the Fashion-MNIST subset that ships inside dlx (python/dlx/datasets/data/).

Takes a class-balanced random sample (fixed seed) of the full data set, 600 training and
100 test images per class, and writes it in the original gzipped IDX format. Run from the
repository root, with the full data set where dlx finds it (for example Debian's package
dataset-fashion-mnist):

    python scripts/make_bundled_subset.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from dlx.datasets import load_mnist, write_idx

OUT = (
    Path(__file__).resolve().parents[1]
    / "python"
    / "dlx"
    / "datasets"
    / "data"
    / "fashion-mnist-subset"
)
PER_CLASS = {"train": 600, "t10k": 100}
SEED = 20200523


def balanced_sample(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return rng.permutation(np.concatenate(picks))


def main() -> None:
    rng = np.random.default_rng(SEED)
    (x_train, t_train), (x_test, t_test) = load_mnist(
        "fashion-mnist", normalize=False, download=False
    )
    OUT.mkdir(parents=True, exist_ok=True)
    for split, x, t in (("train", x_train, t_train), ("t10k", x_test, t_test)):
        idx = balanced_sample(t, PER_CLASS[split], rng)
        write_idx(OUT / f"{split}-images-idx3-ubyte.gz", x[idx, 0].astype(np.uint8))
        write_idx(OUT / f"{split}-labels-idx1-ubyte.gz", t[idx].astype(np.uint8))
    license_src = Path("/usr/share/doc/dataset-fashion-mnist/copyright")
    if license_src.is_file():
        shutil.copy(license_src, OUT / "LICENSE")
    for path in sorted(OUT.iterdir()):
        print(f"{path.name:32s} {path.stat().st_size:>10,} bytes")


if __name__ == "__main__":
    main()
