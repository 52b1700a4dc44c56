"""Figures: training curves and confusion matrices (matplotlib, written to PNG files).

Figures are made with matplotlib's object-oriented API (:class:`matplotlib.figure.Figure`),
not pyplot: dlx never chooses or switches matplotlib's backend, so a notebook's inline
figures keep working after dlx has drawn one, and no figure stays open in pyplot's list."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def subplots(nrows: int = 1, ncols: int = 1, **kwargs):
    """``(figure, axes)`` as ``matplotlib.pyplot.subplots`` makes them, on a figure of its
    own outside pyplot (``figsize`` and the other keywords of ``Figure.subplots``)."""
    from matplotlib.figure import Figure

    figure_keys = ("figsize", "dpi", "layout")
    fig = Figure(**{k: kwargs.pop(k) for k in figure_keys if k in kwargs})
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` atomically (a temporary file, then a rename), as PNG."""
    from ._files import atomic_write

    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))


def plot_history(history: dict[str, list[float]], path: str | os.PathLike, title: str = "") -> Path:
    """Loss and accuracy per epoch, one panel each, for every set the history holds."""
    fig, (ax_loss, ax_acc) = subplots(1, 2, figsize=(10, 4))
    epochs = history["epoch"]
    for key, label in (("train_loss", "train"), ("val_loss", "validation"), ("test_loss", "test")):
        if key in history:
            ax_loss.plot(epochs, history[key], marker="o", label=label)
    for key, label in (("train_acc", "train"), ("val_acc", "validation"), ("test_acc", "test")):
        if key in history:
            ax_acc.plot(epochs, history[key], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """counts[i, j]: samples of class i predicted as class j."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def plot_confusion(counts: np.ndarray, names: Sequence[str], path: str | os.PathLike) -> Path:
    fig, ax = subplots(figsize=(7, 6))
    image = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                counts[i, j],
                ha="center",
                va="center",
                fontsize=7,
                color="white" if counts[i, j] > counts.max() / 2 else "black",
            )
    fig.colorbar(image)
    return save_figure(fig, path)
