"""The classic experiments of the course, each writing its figures as PNG files.

    dlx experiment optimizers --out figures/

Every experiment is a function ``(out: Path) -> list[Path]``, small enough to finish in
seconds to a minute on two cores, using the bundled Fashion-MNIST subset where it needs data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import datasets, models, ops, optim
from ._random import seed
from .errors import DlxValueError
from .gradcheck import numerical_gradient
from .plots import save_figure, subplots
from .trainer import Trainer

__all__ = ["EXPERIMENTS", "fit_edge_kernel", "run"]


def _flat_data(train: int, test: int = 1000):
    (x, t), (xt, tt) = datasets.load_bundled(flatten=True)
    return (x[:train], t[:train]), (xt[:test], tt[:test])


def optimizer_paths(out: Path) -> list[Path]:
    """Each optimizer's path on f(x, y) = x^2/20 + y^2 from (-7, 2), and its loss on data."""
    settings = {
        "SGD": optim.SGD(0.95),
        "Momentum": optim.Momentum(0.1),
        "Nesterov": optim.Nesterov(0.1),
        "AdaGrad": optim.AdaGrad(1.5),
        "RMSprop": optim.RMSprop(0.1),
        "Adam": optim.Adam(0.3),
    }
    xs, ys = np.meshgrid(np.linspace(-10, 10, 200), np.linspace(-5, 5, 200))
    fig, axes = subplots(2, 3, figsize=(13, 7))
    for ax, (name, opt) in zip(axes.flat, settings.items()):
        p = {"x": np.array(-7.0), "y": np.array(2.0)}
        path = [(-7.0, 2.0)]
        for _ in range(30):
            opt.update(p, {"x": p["x"] / 10.0, "y": 2.0 * p["y"]})
            path.append((float(p["x"]), float(p["y"])))
        path = np.array(path)
        ax.contour(xs, ys, xs**2 / 20 + ys**2, levels=np.geomspace(0.05, 20, 12), colors="0.75")
        ax.plot(path[:, 0], path[:, 1], "o-", color="tab:red", markersize=3)
        ax.plot(0, 0, "+", color="k")
        ax.set(title=name, xlim=(-10, 10), ylim=(-5, 5))
    fig.suptitle("30 steps on f(x, y) = x²/20 + y² from (-7, 2)")
    written = [save_figure(fig, out / "optimizer_paths.png")]

    (x, t), _ = _flat_data(6000)
    fig, ax = subplots(figsize=(7, 4.5))
    rates = {
        "SGD": 0.01,
        "Momentum": 0.01,
        "Nesterov": 0.01,
        "AdaGrad": 0.01,
        "RMSprop": 0.001,
        "Adam": 0.001,
    }
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(x), 128, replace=False) for _ in range(400)]
    for name, lr in rates.items():
        seed(0)
        net = models.mlp(784, [100, 100, 100, 100], 10)
        opt = optim.get_optimizer(name, lr=lr)
        losses = []
        for idx in batches:
            loss, grads = net.loss_and_gradient(x[idx], t[idx])
            opt.update(net.params, grads)
            losses.append(loss)
        smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
        ax.plot(smooth, label=name)
    ax.set(
        xlabel="iteration",
        ylabel="training loss (moving average of 10)",
        yscale="log",
        title="Optimizers on a 5-layer MLP, bundled Fashion-MNIST",
    )
    ax.legend()
    written.append(save_figure(fig, out / "optimizer_loss.png"))
    return written


def activation_histograms(out: Path) -> list[Path]:
    """Activations of a 5-layer, 100-unit network for four weight scales and two activations.

    The book's "Xavier" scale is 1/sqrt(n), LeCun's; with as many inputs as outputs it is also
    Glorot's."""
    scales = {
        "std 1": lambda n: 1.0,
        "std 0.01": lambda n: 0.01,
        "LeCun (the book's Xavier)": lambda n: np.sqrt(1.0 / n),
        "He": lambda n: np.sqrt(2.0 / n),
    }
    activations = {
        "sigmoid": lambda a: 1 / (1 + np.exp(-np.clip(a, -500, 500))),
        "ReLU": lambda a: np.maximum(a, 0),
    }
    fig, axes = subplots(len(scales) * len(activations), 5, figsize=(13, 16), sharey="row")
    row = 0
    for act_name, act in activations.items():
        for scale_name, std in scales.items():
            rng = np.random.default_rng(0)
            a = rng.standard_normal((1000, 100))
            for layer in range(5):
                a = act(a @ (rng.standard_normal((100, 100)) * std(100)))
                ax = axes[row, layer]
                ax.hist(a.ravel(), bins=30, range=(0, 1), color="tab:blue")
                ax.set_title(f"{act_name}, {scale_name}: layer {layer + 1}", fontsize=8)
                ax.tick_params(labelsize=6)
            row += 1
    fig.suptitle("Activation histograms by weight initialisation")
    fig.tight_layout()
    return [save_figure(fig, out / "activation_histograms.png")]


def batchnorm_scales(out: Path) -> list[Path]:
    """Training accuracy with and without BatchNorm over a range of initial weight scales."""
    (x, t), _ = _flat_data(1000)
    scales = np.logspace(0, -4, num=16)
    fig, axes = subplots(4, 4, figsize=(12, 10), sharex=True, sharey=True)
    for ax, std in zip(axes.flat, scales):
        for batchnorm, style in ((True, "-"), (False, "--")):
            seed(0)
            net = models.mlp(784, [100] * 5, 10, weight_init=float(std), batchnorm=batchnorm)
            trainer = Trainer(net, optim.SGD(0.01), epochs=20, batch_size=100, progress=False)
            label = "BatchNorm" if batchnorm else "none"
            try:
                # Large initial weights without BatchNorm overflow: that is the point.
                with np.errstate(over="ignore", invalid="ignore"):
                    trainer.fit(x, t)
            except FloatingPointError:
                label += " (diverged)"
            h = trainer.history
            ax.plot(h.get("epoch", []), h.get("train_acc", []), style, label=label)
            if "diverged" in label:
                ax.text(
                    0.5,
                    0.5,
                    "without BatchNorm: diverged",
                    transform=ax.transAxes,
                    ha="center",
                    fontsize=8,
                )
        ax.set_title(f"weight std {std:.2g}", fontsize=9)
        ax.set_ylim(0, 1)
    axes[0, 0].legend()
    fig.suptitle("Training accuracy over 20 epochs: BatchNorm (solid) against none (dashed)")
    return [save_figure(fig, out / "batchnorm_scales.png")]


def overfitting(out: Path) -> list[Path]:
    """A 7-layer MLP on 300 samples: plain, with weight decay, with dropout."""
    (x, t), (xt, tt) = _flat_data(300)
    runs = {
        "no regularisation": {},
        "weight decay 0.1": {"weight_decay": 0.1},
        "dropout 0.2": {"dropout": 0.2},
    }
    fig, axes = subplots(1, len(runs), figsize=(14, 4), sharey=True)
    for ax, (name, kwargs) in zip(axes, runs.items()):
        seed(0)
        net = models.mlp(784, [100] * 6, 10, **kwargs)
        h = Trainer(net, optim.SGD(0.01), epochs=200, batch_size=100, progress=False).fit(
            x, t, x_test=xt, t_test=tt
        )
        ax.plot(h["epoch"], h["train_acc"], label="train")
        ax.plot(h["epoch"], h["test_acc"], label="test")
        ax.set(title=name, xlabel="epoch", ylabel="accuracy")
        ax.legend()
    fig.suptitle("Overfitting on 300 training samples, and two cures")
    return [save_figure(fig, out / "overfitting.png")]


def edge_detection(out: Path) -> list[Path]:
    """The 6x6 half-bright image, the [1, 0, -1] filter, and the 4x4 response."""
    image = np.zeros((1, 1, 6, 6))
    image[..., :3] = 10
    kernel = np.array([[1.0, 0.0, -1.0]] * 3)[None, None]
    response = ops.conv2d(image, kernel)
    fig, axes = subplots(1, 3, figsize=(11, 3.6))
    for ax, (title, a) in zip(
        axes,
        (
            ("image 6x6", image[0, 0]),
            ("filter 3x3", kernel[0, 0]),
            ("response 4x4", response[0, 0]),
        ),
    ):
        ax.imshow(a, cmap="gray")
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, f"{v:g}", ha="center", va="center", color="tab:red")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Edge detection: the vertical edge shows as the columns of 30")
    return [save_figure(fig, out / "edge_detection.png")]


def fit_edge_kernel(
    lr: float = 0.03, steps: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """d2l's experiment: recover the 1x2 kernel [1, -1] from an image and its edge response.

    The image is (6, 8) ones with zero columns 2-5; the target is its convolution with
    [1, -1]. Starting from a standard-normal kernel drawn by ``default_rng(seed)``, each of
    ``steps`` gradient-descent steps of rate ``lr`` lowers the summed squared error
    ``sum((conv2d(x, w) - y) ** 2)``. Returns the loss before each step, shape (steps,), and
    the kernel after each step, shape (steps, 2).
    """
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr < np.inf:
        raise DlxValueError(f"lr must be a finite number >= 0, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise DlxValueError(f"steps must be a positive integer, got {steps!r}")
    x = np.ones((1, 1, 6, 8))
    x[..., 2:6] = 0
    y = ops.conv2d(x, np.array([[[[1.0, -1.0]]]]))
    w = np.random.default_rng(seed).standard_normal((1, 1, 1, 2))
    losses, kernels = [], []
    for _ in range(steps):
        y_hat = ops.conv2d(x, w)
        losses.append(float(np.sum((y_hat - y) ** 2)))
        _, dw, _ = ops.conv2d_backward(2 * (y_hat - y), x, w, input_grad=False)
        w -= lr * dw
        kernels.append(w.ravel().copy())
    return np.array(losses), np.array(kernels).reshape(steps, 2)


def learn_kernel(out: Path) -> list[Path]:
    """The loss and the two weights of :func:`fit_edge_kernel`, step by step."""
    losses, kernels = fit_edge_kernel()
    steps = np.arange(1, len(losses) + 1)
    fig, (ax_loss, ax_k) = subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(steps, losses, "o-")
    ax_loss.set(xlabel="step", ylabel="summed squared error", yscale="log", title="loss")
    ax_k.plot(steps, kernels[:, 0], "o-", label="K[0] (target 1)")
    ax_k.plot(steps, kernels[:, 1], "o-", label="K[1] (target -1)")
    ax_k.set(xlabel="step", title=f"learned kernel: [{kernels[-1, 0]:.3f}, {kernels[-1, 1]:.3f}]")
    ax_k.legend()
    return [save_figure(fig, out / "learned_kernel.png")]


def first_layer_filters(out: Path) -> list[Path]:
    """SimpleConvNet's 30 first-layer filters before and after training on the bundled data."""
    (x, t), _ = datasets.load_bundled()
    seed(0)
    net = models.simple_conv_net()
    before = net.params["0.W"].copy()
    Trainer(net, "adam", epochs=5, batch_size=100, progress=False).fit(x, t)
    after = net.params["0.W"]
    fig, axes = subplots(6, 10, figsize=(12, 7.5))
    for k in range(30):
        for w, offset in ((before, 0), (after, 3)):
            ax = axes[offset + k // 10, k % 10]
            ax.imshow(w[k, 0], cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("before training", loc="left", fontsize=9)
    axes[3, 0].set_title("after 5 epochs", loc="left", fontsize=9)
    fig.suptitle("SimpleConvNet: first-layer 5x5 filters")
    return [save_figure(fig, out / "conv1_filters.png")]


def numerical_descent(out: Path) -> list[Path]:
    """Gradient descent by numerical gradients on f(x0, x1) = x0^2 + x1^2."""
    x = np.array([-3.0, 4.0])
    path = [x.copy()]
    for _ in range(20):
        x -= 0.1 * numerical_gradient(lambda a: float(np.sum(a**2)), x)
        path.append(x.copy())
    path = np.array(path)
    fig, ax = subplots(figsize=(5, 5))
    ax.plot(path[:, 0], path[:, 1], "o-")
    ax.plot(0, 0, "+", color="k")
    ax.set(
        xlim=(-3.5, 3.5),
        ylim=(-4.5, 4.5),
        xlabel="x0",
        ylabel="x1",
        title="gradient descent, lr 0.1",
    )
    return [save_figure(fig, out / "gradient_descent.png")]


EXPERIMENTS: dict[str, Callable[[Path], list[Path]]] = {
    "optimizers": optimizer_paths,
    "activations": activation_histograms,
    "batchnorm": batchnorm_scales,
    "overfitting": overfitting,
    "edge": edge_detection,
    "learn-kernel": learn_kernel,
    "filters": first_layer_filters,
    "gradient-descent": numerical_descent,
}


def run(name: str, out: str | Path) -> list[Path]:
    """Run experiment ``name``, writing its figures into the folder ``out``."""
    if name not in EXPERIMENTS:
        raise DlxValueError(f"experiment must be one of {sorted(EXPERIMENTS)}, got {name!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return EXPERIMENTS[name](out)
