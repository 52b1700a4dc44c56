"""Make the documentation's figures from the current code, at build time (mkdocs-gen-files).

Every figure in the docs comes from here or from dlx.experiments: none is pasted in.
"""

from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path

import dlx
import mkdocs_gen_files
import numpy as np
from dlx import experiments
from dlx import functional as F
from dlx.plots import plot_history, save_figure, subplots


def activation_functions(out: Path) -> list[Path]:
    x = np.linspace(-5, 5, 401)
    fig, axes = subplots(1, 4, figsize=(13, 3))
    for ax, (name, fn) in zip(
        axes, [("step", F.step), ("sigmoid", F.sigmoid), ("tanh", F.tanh), ("ReLU", F.relu)]
    ):
        ax.plot(x, fn(x))
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_title(name)
    return [save_figure(fig, out / "activation_functions.png")]


def softmax_bars(out: Path) -> list[Path]:
    scores = np.array([0.3, 2.9, 4.0])
    fig, (a, b) = subplots(1, 2, figsize=(8, 3))
    a.bar(range(3), scores)
    a.set_title("scores")
    b.bar(range(3), F.softmax(scores), color="tab:orange")
    b.set_title("softmax(scores): probabilities")
    return [save_figure(fig, out / "softmax.png")]


def im2col_picture(out: Path) -> list[Path]:
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    col = dlx.ops.im2col(x, 3, 1, 0)
    fig, (a, b) = subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [1, 2.4]})
    a.imshow(x[0, 0], cmap="Blues")
    b.imshow(col, cmap="Blues", aspect="auto")
    for (i, j), v in np.ndenumerate(x[0, 0]):
        a.text(j, i, int(v), ha="center", va="center")
    for (i, j), v in np.ndenumerate(col):
        b.text(j, i, int(v), ha="center", va="center", fontsize=8)
    a.set_title("x: 4x4 image")
    b.set_title("im2col(x, 3): one row per 3x3 window (4 windows)")
    for ax in (a, b):
        ax.set_xticks([])
        ax.set_yticks([])
    return [save_figure(fig, out / "im2col.png")]


def training_curves(out: Path) -> list[Path]:
    (x, t), _ = dlx.datasets.load_bundled()
    (x, t), (xv, tv) = dlx.datasets.train_val_split(x, t, 0.1, np.random.default_rng(0))
    dlx.seed(0)
    net = dlx.models.simple_conv_net()
    history = dlx.Trainer(net, "adam", epochs=4, progress=False).fit(x, t, xv, tv)
    return [plot_history(history, out / "curves.png", title="simpleconvnet on bundled")]


def make_figures() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        made = []
        for make in (activation_functions, softmax_bars, im2col_picture, training_curves):
            made += make(out)
        for name in (
            "edge",
            "learn-kernel",
            "gradient-descent",
            "optimizers",
            "activations",
            "batchnorm",
            "overfitting",
        ):
            made += experiments.run(name, out)
        return {path.name: path.read_bytes() for path in made}


# mkdocs-static-i18n builds the site once per language, in one process, and this script runs
# in each build; the figures are the same in every language, so the first build's are kept.
_cache = sys.modules.setdefault("dlx_docs_figures", types.ModuleType("dlx_docs_figures"))
if not hasattr(_cache, "figures"):
    _cache.figures = make_figures()
for name, data in _cache.figures.items():
    with mkdocs_gen_files.open(f"figures/{name}", "wb") as f:
        f.write(data)
