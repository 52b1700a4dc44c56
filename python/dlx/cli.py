"""The dlx command line (also ``python -m dlx``).

dlx train                 train SimpleConvNet on the bundled Fashion-MNIST subset
dlx evaluate CHECKPOINT   accuracy and confusion matrix of a saved model
dlx summary MODEL         shapes, parameters and multiply-adds per layer
dlx export CHECKPOINT OUT write a saved model as ONNX (needs dlx-scratch[onnx])
dlx experiment NAME       the classic experiments of the course, as figures
dlx layers                every layer, with the package that provides it
dlx demo                  the edge-detection convolution through the C++ kernels
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path

import numpy as np

from . import ops
from .errors import DlxError, DlxFileNotFoundError, DlxValueError
from .init import INITIALIZERS

MODELS = ("mlp", "simpleconvnet", "deepconvnet", "deepconvnet-bn", "resnet20")


# -- demo and layers ------------------------------------------------------------------
def edge_demo(args=None) -> int:
    """Convolve the course's edge-detection example and print image, filter and response."""
    image = np.zeros((1, 1, 6, 6), dtype=np.float32)
    image[..., :3] = 10.0  # left half bright, right half dark
    kernel = np.array([[1, 0, -1]] * 3, dtype=np.float32)[None, None]
    response = ops.conv2d(image, kernel)

    with np.printoptions(precision=0, suppress=True, floatmode="fixed"):
        print(f"dlx backend: {ops.backend()}")
        print("image (6x6, left half 10, right half 0):")
        print(image[0, 0])
        print("filter (3x3, vertical edges):")
        print(kernel[0, 0])
        print("response (4x4, the edge shows as the columns of 30):")
        print(response[0, 0])
    return 0


def list_layer_table(args=None) -> int:
    """Print every registered layer with the distribution that provides it."""
    from .registry import layer_providers

    providers = layer_providers()
    width = max(len(name) for name in providers)
    print(f"{'layer'.ljust(width)}  provided by")
    for name, provider in providers.items():
        print(f"{name.ljust(width)}  {provider}")
    return 0


# -- models ---------------------------------------------------------------------------
def build_model(
    spec: str, input_shape: tuple[int, ...], classes: int = 10, weight_init: str | None = None
):
    """A network by builder name, or from a JSON config file (which may use plugin layers).
    ``weight_init`` overrides a builder's initialisation (None keeps its default)."""
    from . import models
    from .model import network_from_config

    init = {} if weight_init is None else {"weight_init": weight_init}
    if spec == "mlp":
        return models.mlp(int(np.prod(input_shape)), [100, 100], classes, **init)
    if spec == "simpleconvnet":
        return models.simple_conv_net(input_shape, output_size=classes, **init)
    if re.fullmatch(r"resnet\d+", spec):  # resnet20, resnet32, ... (depth 6n + 2)
        return models.resnet(int(spec[6:]), input_shape, num_classes=classes, **init)
    if spec in ("deepconvnet", "deepconvnet-bn"):
        return models.deep_conv_net(
            input_shape, output_size=classes, batchnorm=spec.endswith("-bn"), **init
        )
    path = Path(spec)
    if path.suffix == ".json" and weight_init is not None:
        raise DlxValueError(
            "--weight-init applies to the built-in models; a JSON config sets its own"
        )
    if path.suffix == ".json":
        if not path.is_file():
            raise DlxFileNotFoundError(f"no model config at {path}")
        try:
            config = json.loads(path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise DlxValueError(f"{path} is not valid JSON: {error}") from None
        return network_from_config(config)
    raise DlxValueError(
        f"--model must be one of {', '.join(MODELS)} or a .json config file, got {spec!r}"
    )


def _load_model_for_summary(spec: str, input_shape):
    from .checkpoint import load

    if spec.endswith(".npz"):
        return load(spec)
    return build_model(spec, input_shape)


# -- train ----------------------------------------------------------------------------
# The settings a run keeps in its checkpoint and continues with when it is resumed.
RUN_SETTINGS = (
    "model",
    "dataset",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "weight_init",
    "val_fraction",
    "seed",
)
# The files of a training run; a folder holding any of them holds a run.
RUN_FILES = ("model.json", "model.npz", "history.json", "history.csv", "curves.png")
# The signals that stop a run, and the exit status each gives (128 + its number).
STOP_SIGNALS = {"SIGINT": 130, "SIGTERM": 143}


class _Stopped(KeyboardInterrupt):
    """Training was stopped by a signal (Ctrl-C, or SIGTERM from a scheduler or `timeout`)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _StopSignals:
    """While active (``with``), SIGINT and SIGTERM raise _Stopped in the main thread, so a run
    stopped either way saves what is complete and says so; inside ``deferred()`` a signal is
    held until the block is done. Saving a checkpoint and recording that it was saved must
    not be split by a signal, or the message would deny a checkpoint that is on disk. The
    holding is a flag, not a signal mask: a mask would hold the signal in this thread only,
    and the kernels' threads would still take it."""

    def __init__(self) -> None:
        self.pending: str | None = None
        self.deferring = 0
        self.previous: dict[int, object] = {}

    def _handle(self, number, frame) -> None:
        name = signal.Signals(number).name
        if self.deferring:
            self.pending = self.pending or name
            return
        raise _Stopped(name)

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread can handle signals
        for name in STOP_SIGNALS:
            number = getattr(signal, name, None)
            if number is None or signal.getsignal(number) is signal.SIG_IGN:
                continue  # a background job ignores Ctrl-C: keep it so
            self.previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    @contextlib.contextmanager
    def deferred(self):
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1
        if self.pending and not self.deferring:
            name, self.pending = self.pending, None
            raise _Stopped(name)


def _resumed_run(args):
    """(checkpoint path, model, training state) of the run --resume names, after checking
    that no flag given with it asks for another setting than the run's own."""
    from .checkpoint import load_training

    if args.out is not None or args.overwrite:
        raise DlxValueError(
            "--resume continues in the run's own folder: leave out --out and --overwrite"
        )
    path = Path(args.resume)
    checkpoint = path / "model.npz" if path.is_dir() else path
    net, state = load_training(checkpoint)
    run = state.get("run") if state is not None else None
    if not isinstance(run, dict) or set(run) != set(RUN_SETTINGS):
        raise DlxValueError(
            f"{checkpoint} holds no training state to resume from (a model saved without "
            "it, or by another version of dlx)"
        )
    kinds = {"batch_size": int, "seed": int, "lr": float, "val_fraction": float}
    for name in RUN_SETTINGS:
        value, kind = run[name], kinds.get(name, str)
        optional = name in ("weight_decay", "weight_init")
        if name == "weight_decay":
            kind = float
        if not (
            (optional and value is None)
            or (isinstance(value, kind) and not isinstance(value, bool))
            or (kind is float and isinstance(value, int) and not isinstance(value, bool))
        ):
            raise DlxValueError(f"{checkpoint}: the run's setting {name} is {value!r}")
    for name in RUN_SETTINGS:
        given = getattr(args, name)
        if given != args.train_defaults[name] and given != run[name]:
            flag = "--" + name.replace("_", "-")
            raise DlxValueError(
                f"{flag} {given} differs from the run's own {run[name]!r}: a resumed run keeps "
                "its settings (only --epochs, the total, and --no-progress apply)"
            )
    return checkpoint, net, state


def _communicator(args):
    """The ranks of a --distributed run, else None (one process, as ever)."""
    if not args.distributed:
        if args.sync_batchnorm:
            raise DlxValueError("--sync-batchnorm needs --distributed")
        return None
    from .distributed import init

    return init()


@contextlib.contextmanager
def _together(comm):
    """Run a block on every rank; when it fails on any rank (a setting or file one of them
    cannot use), every rank raises the same CollectiveError instead of waiting for it."""
    if comm is None:
        yield
        return
    try:
        yield
    except DlxError as error:
        comm.agree(error)
        raise
    comm.agree(None)


def _quiet(*args, **kwargs) -> None:
    """print for ranks other than 0: they say nothing."""


def _claim_run_folder(out: str | None, overwrite: bool, config: dict) -> Path:
    """A folder for a new run, claimed by creating its model.json exclusively, so that no two
    runs ever share one. Without ``out``: runs/train-DATE-TIME, with a suffix (-2, -3, ...)
    when that name is taken. ``out`` that already holds a run is refused unless ``overwrite``,
    which removes the old run's files first (a folder never mixes two runs' files)."""
    text = json.dumps(config, indent=1).encode()
    if out is None:
        base = Path("runs") / f"train-{datetime.now():%Y%m%d-%H%M%S}"
        _writable_folder(base.parent)
        for attempt in range(1, 1000):
            folder = base if attempt == 1 else base.with_name(f"{base.name}-{attempt}")
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            with open(folder / "model.json", "xb") as f:
                f.write(text)
            return folder
        raise DlxValueError(f"cannot find a free run folder next to {base}")
    folder = _writable_folder(Path(out))
    held = [name for name in RUN_FILES if (folder / name).exists()]
    if held and not overwrite:
        raise DlxValueError(
            f"the output folder {folder} already holds a run ({', '.join(held)}); choose "
            "another --out, or pass --overwrite to replace it"
        )
    for name in held:
        (folder / name).unlink()
    try:
        with open(folder / "model.json", "xb") as f:
            f.write(text)
    except FileExistsError:
        raise DlxValueError(f"another run has just claimed the output folder {folder}") from None
    return folder


def _writable_folder(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # a name of its own: runs may start together
            pass
    except OSError as error:
        raise DlxValueError(
            f"cannot write to the output folder {path}: {error.strerror or error}"
        ) from None
    return path


def _write_history(history: dict[str, list[float]], out: Path) -> None:
    from ._files import atomic_write

    atomic_write(out / "history.json", lambda f: f.write(json.dumps(history, indent=1).encode()))
    keys = list(history)
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(keys)
    writer.writerows(zip(*(history[k] for k in keys)))
    atomic_write(out / "history.csv", lambda f: f.write(table.getvalue().encode()))


def train(args) -> int:
    from tqdm.auto import tqdm

    from . import datasets
    from ._random import seed
    from .checkpoint import save
    from .optim import get_optimizer
    from .plots import plot_history
    from .trainer import StopRequested, Trainer

    comm = args.comm = _communicator(args)
    main = comm is None or comm.rank == 0
    say = print if main else _quiet
    with _together(comm):  # a setting or file one rank cannot use stops every rank
        resumed = _resumed_run(args) if args.resume else None
        if resumed is not None:
            checkpoint, net, state = resumed
            for name, value in state["run"].items():  # the run continues with its own settings
                setattr(args, name, value)
        seed(args.seed)
        (x_train, t_train), (x_test, t_test) = datasets.load_dataset(args.dataset)
        (x_train, t_train), (x_val, t_val) = datasets.train_val_split(
            x_train, t_train, args.val_fraction, np.random.default_rng(args.seed)
        )
        if resumed is None:
            net = build_model(args.model, x_train.shape[1:], weight_init=args.weight_init)
            if args.weight_decay is not None:  # a flag the user passed overrides the config's
                net.weight_decay = args.weight_decay
        optimizer = get_optimizer(args.optimizer, lr=args.lr)
    run_settings = {name: getattr(args, name) for name in RUN_SETTINGS}
    with _together(comm):  # rank 0 claims the folder and writes every file
        if resumed is None:
            out = _claim_run_folder(args.out, args.overwrite, net.to_config()) if main else None
        else:
            out = checkpoint.parent
    if comm is not None:
        out = comm.broadcast_object(out)
    if resumed is None:
        checkpoint = out / "model.npz"
    ranks = ""
    if comm is not None and comm.size > 1:
        from .threads import get_num_threads

        n = get_num_threads()
        ranks = f", {comm.size} processes x {n} thread{'s' if n > 1 else ''}"
    say(
        f"dlx train: {args.model} on {args.dataset} ({len(x_train)} train, {len(x_val)} validation, "
        f"{len(x_test)} test), {args.epochs} epochs, batch {args.batch_size}, "
        f"{args.optimizer} lr {args.lr:g}, weight decay {net.weight_decay:g} "
        f"({net.regularization}), seed {args.seed}{ranks}"
    )
    say(f"writing to {out}/")
    last_saved = [0]
    stops = _StopSignals()

    def on_epoch_end(epoch, record):
        if not main:  # rank 0 saves for every rank
            last_saved[0] = epoch
            return
        with stops.deferred():
            save(net, checkpoint, training={**trainer.state_dict(), "run": run_settings})
            last_saved[0] = epoch
        tqdm.write(
            f"epoch {epoch:3d}/{args.epochs}  loss {record['train_loss']:.4f}  "
            f"train acc {record['train_acc']:.4f}  val loss {record['val_loss']:.4f}  "
            f"val acc {record['val_acc']:.4f}  ({record['seconds']:.1f} s)"
        )

    trainer = Trainer(
        net,
        optimizer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        train_eval_samples=min(len(x_train), 10000),
        on_epoch_end=on_epoch_end,
        distributed=comm is not None,
        sync_batchnorm=args.sync_batchnorm,
    )
    if resumed is not None:
        with _together(comm):
            trainer.load_state_dict(state)
        last_saved[0] = trainer.epoch
        say(f"resuming after epoch {trainer.epoch} of {checkpoint}")
    started = time.perf_counter()
    stopped: str | None = None
    with stops:
        try:
            if comm is None:
                trainer.fit(x_train, t_train, x_val, t_val, resume=resumed is not None)
            else:  # a signal only raises a flag: every rank stops after the same step
                trainer.stop_requested = lambda: stops.pending
                with stops.deferred():
                    try:
                        trainer.fit(x_train, t_train, x_val, t_val, resume=resumed is not None)
                    except StopRequested as request:
                        stops.pending = stops.pending or request.signal
        except _Stopped as signal_stop:
            stopped = signal_stop.name
        history = trainer.history
        try:
            with stops.deferred():
                if history and main:
                    _write_history(history, out)
                    title = f"{args.model} on {args.dataset}"
                    plot_history(history, out / "curves.png", title=title)
            if stopped is None:
                test_acc = net.accuracy(x_test, t_test)
        except _Stopped as signal_stop:
            stopped = stopped or signal_stop.name
    if stopped is not None:
        kept = (
            f"kept the checkpoint of epoch {last_saved[0]}: {checkpoint}"
            if last_saved[0]
            else "no epoch had finished"
        )
        if main:
            print(f"\ninterrupted by {stopped}; {kept}", file=sys.stderr)
        return STOP_SIGNALS[stopped]

    elapsed = time.perf_counter() - started
    per_epoch = float(np.mean(history["seconds"])) if history else 0.0
    say(
        f"test accuracy {test_acc:.4f} on {len(x_test)} images "
        f"({elapsed:.1f} s in all, {per_epoch:.1f} s per epoch)"
    )
    say(f"wrote {checkpoint}, {out / 'history.json'}, {out / 'history.csv'}, {out / 'curves.png'}")
    return 0


# -- evaluate and summary ---------------------------------------------------------------
def evaluate(args) -> int:
    from . import datasets
    from .checkpoint import load
    from .plots import confusion_matrix, plot_confusion

    if args.plot:
        _check_plot_path(Path(args.plot))
    net = load(args.checkpoint)
    (_, _), (x_test, t_test) = datasets.load_dataset(args.dataset)
    scores = np.concatenate(
        [net.predict(x_test[i : i + 1000]) for i in range(0, len(x_test), 1000)]
    )
    if scores.ndim != 2:
        raise DlxValueError(
            f"the model's output has shape {scores.shape[1:]} per image; evaluate needs one "
            "score per class"
        )
    predictions = np.argmax(scores, axis=1)
    # Classes the model scores, and any label of the data beyond them (a model of fewer
    # classes than the dataset: those images count as errors).
    classes = max(scores.shape[1], int(t_test.max(initial=-1)) + 1)
    counts = confusion_matrix(t_test, predictions, classes)
    known = datasets.CLASS_NAMES.get(args.dataset, datasets.CLASS_NAMES["fashion-mnist"])
    names = list(known) if len(known) == classes else [str(i) for i in range(classes)]
    print(
        f"accuracy {float(np.mean(predictions == t_test)):.4f} on {len(t_test)} {args.dataset} test images"
    )
    print("confusion matrix (rows: true class, columns: predicted)")
    width = max(6, len(str(counts.max())) + 1, len(str(classes - 1)) + 1)
    print(" " * 13 + "".join(f"{j:>{width}d}" for j in range(len(counts))))
    for i, row in enumerate(counts):
        print(f"{i:2d} {names[i][:10]:10s}" + "".join(f"{v:>{width}d}" for v in row))
    if args.plot:
        print(f"wrote {plot_confusion(counts, names, args.plot)}")
    return 0


def _check_plot_path(path: Path) -> None:
    """A figure path the plot can be written to: a .png file in an existing folder."""
    if path.suffix.lower() != ".png":
        raise DlxValueError(f"--plot must name a .png file, got {str(path)!r}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DlxValueError(f"cannot write the plot {path}: {folder} {problem}")


def summary(args) -> int:
    shape = args.input_shape
    net = _load_model_for_summary(args.model, shape)
    print(net.summary(shape, batch_size=args.batch_size))
    return 0


def export(args) -> int:
    from . import onnx
    from .checkpoint import load_training
    from .network import Sequential

    net, state = load_training(args.checkpoint)
    shape = args.input_shape
    if shape is None and isinstance(net, Sequential) and not _starts_with_affine(net):
        shape = _trained_sample_shape(args.checkpoint, state)
    path = onnx.export(
        net,
        args.out,
        shape,
        opset=args.opset,
        fold_batchnorm=args.fold_batchnorm,
        softmax=args.softmax,
    )
    print(f"wrote {path} (ONNX opset {args.opset or onnx.DEFAULT_OPSET})")
    return 0


def _starts_with_affine(net) -> bool:
    from .layers import Affine

    return bool(net.layers) and isinstance(net.layers[0], Affine)


def _trained_sample_shape(checkpoint: str, state: dict | None) -> tuple[int, ...]:
    """One sample's shape of the data a `dlx train` checkpoint was trained on."""
    from . import datasets

    run = state.get("run") if isinstance(state, dict) else None
    dataset = run.get("dataset") if isinstance(run, dict) else None
    if not isinstance(dataset, str):
        raise DlxValueError(
            f"{checkpoint} does not say what shape its inputs have: give --input-shape C,H,W"
        )
    (x, _), _ = datasets.load_dataset(dataset)
    return tuple(x.shape[1:])


def experiment(args) -> int:
    from .experiments import EXPERIMENTS, run

    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    out = _writable_folder(Path(args.out))
    for name in names:
        started = time.perf_counter()
        paths = run(name, out)
        print(
            f"{name}: wrote {', '.join(str(p) for p in paths)} ({time.perf_counter() - started:.1f} s)"
        )
    return 0


# -- argument parsing -------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive whole numbers separated by commas (as 1,28,28), got {text!r}"
        )
    return shape


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _positive_float(text: str) -> float:
    value = _number(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, with a pointer to --help."""

    def error(self, message: str):
        from .distributed import launcher_rank

        if launcher_rank() not in (None, 0):  # under mpiexec every rank parses alike: one says
            self.exit(2)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version_line() -> str:
    from . import __version__, ops

    try:
        kernels = f"C++ kernels: {ops.cpu_capability()}"
    except ImportError:
        kernels = "C++ kernels: not built"
    return f"dlx {__version__} ({kernels}; see dlx config)"


def show_config(args: argparse.Namespace) -> int:
    from .config import show_config

    show_config()
    return 0


def make_parser() -> argparse.ArgumentParser:
    from .experiments import EXPERIMENTS
    from .optim import OPTIMIZERS

    parser = _Parser(
        prog="dlx", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=_version_line())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("train", help="train a model and save checkpoint, history and curves")
    p.add_argument(
        "--model",
        default="simpleconvnet",
        help=f"{', '.join(MODELS)}, or a JSON config (default: simpleconvnet)",
    )
    p.add_argument(
        "--dataset",
        default="bundled",
        help="bundled, fashion-mnist, mnist, or a folder of IDX files (default: bundled)",
    )
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=100)
    p.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS))
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument(
        "--weight-decay",
        type=_non_negative_float,
        help="weight decay (default: the JSON config's, else 0)",
    )
    p.add_argument(
        "--weight-init",
        choices=list(INITIALIZERS),
        help="initialisation of a built-in model's weights (default: the model's own, He for "
        "ReLU networks); uniform is PyTorch's default, xavier is glorot",
    )
    p.add_argument(
        "--val-fraction", type=_fraction, default=0.1, help="training data held out for validation"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", help="output folder, which must not hold a run (default: runs/train-DATE-TIME)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace the run the --out folder holds"
    )
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue the run in this folder (or checkpoint) to --epochs in total",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes of mpiexec (needs dlx-scratch[mpi]): "
        "mpiexec -n 4 dlx train --distributed ...; --batch-size is the global batch",
    )
    p.add_argument(
        "--sync-batchnorm",
        action="store_true",
        help="with --distributed: BatchNorm statistics over the whole global batch",
    )
    p.set_defaults(run=train)
    p.set_defaults(train_defaults={name: p.get_default(name) for name in RUN_SETTINGS})

    p = commands.add_parser("evaluate", help="accuracy and confusion matrix of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", default="bundled")
    p.add_argument("--plot", help="also write the confusion matrix to this PNG file")
    p.set_defaults(run=evaluate)

    p = commands.add_parser("summary", help="output shape, parameters and multiply-adds per layer")
    p.add_argument("model", help=f"{', '.join(MODELS)}, a JSON config, or a checkpoint (.npz)")
    p.add_argument(
        "--input-shape",
        type=_shape,
        default=(1, 28, 28),
        help="one sample's shape (default: 1,28,28)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=1)
    p.set_defaults(run=summary)

    p = commands.add_parser("export", help="write a checkpoint's model as an ONNX file")
    p.add_argument("checkpoint", help="a model saved by dlx train or dlx.save (.npz)")
    p.add_argument("out", help="the ONNX file to write (.onnx)")
    p.add_argument(
        "--input-shape",
        type=_shape,
        help="one sample's shape (default: the model's, else that of the data it was trained on)",
    )
    p.add_argument("--opset", type=_positive_int, help="ONNX operator set (default: 17)")
    p.add_argument(
        "--fold-batchnorm",
        action="store_true",
        help="merge each BatchNorm into the convolution or Affine layer before it",
    )
    p.add_argument(
        "--softmax", action="store_true", help="add the class probabilities as a second output"
    )
    p.set_defaults(run=export)

    p = commands.add_parser(
        "experiment", help="run a classic experiment of the course, writing figures"
    )
    p.add_argument("name", choices=[*EXPERIMENTS, "all"])
    p.add_argument("--out", default="experiments")
    p.set_defaults(run=experiment)

    commands.add_parser(
        "layers", help="list every layer with the package that provides it"
    ).set_defaults(run=list_layer_table)
    commands.add_parser(
        "config", help="the version, CPU capability, build, BLAS and threads of this dlx"
    ).set_defaults(run=show_config)
    commands.add_parser("demo", help="the edge-detection convolution (the default)").set_defaults(
        run=edge_demo
    )
    return parser


BUG_REPORT = (
    "dlx: this is a bug in dlx, not a mistake of yours: please report it with the traceback "
    "above and the output of `dlx config`"
)


def main(argv: list[str] | None = None) -> int:
    """Run a command. A mistake in what the user gave (a DlxError) is one line on stderr and
    exit status 2; anything else is a bug and shows its traceback."""
    from .distributed import CollectiveError, launcher_rank
    from .errors import DlxError, TrainingDivergedError

    args = None
    try:
        args = make_parser().parse_args(argv)
        return getattr(args, "run", edge_demo)(args)
    except DlxError as error:
        comm = getattr(args, "comm", None)
        if (
            comm is None
            and getattr(args, "distributed", False)
            and launcher_rank() not in (None, 0)
        ):
            return 2  # before MPI started every rank failed alike: rank 0 says so
        if comm is None or comm.size == 1:
            print(f"dlx: error: {error}", file=sys.stderr)
        elif isinstance(error, (CollectiveError, TrainingDivergedError)):
            if comm.rank == 0:  # every rank raised it: one says so
                print(f"dlx: error: {error}", file=sys.stderr)
        else:  # this rank alone: the others are waiting for it
            print(f"dlx: error on rank {comm.rank}: {error}", file=sys.stderr, flush=True)
            comm.abort(2)
        return 2
    except Exception:
        traceback.print_exc()
        print(BUG_REPORT, file=sys.stderr, flush=True)
        comm = getattr(args, "comm", None)
        if comm is not None:
            comm.abort(1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
