"""MNIST and Fashion-MNIST: find the files, or download them, and load them as arrays.

Where the four IDX files are looked for, in order:

1. the ``data_dir`` you pass (if you pass one, only there);
2. ``$DLX_DATA/<name>`` and ``$DLX_DATA``;
3. the user cache, ``$XDG_CACHE_HOME/dlx/<name>`` (``~/.cache/dlx/<name>``);
4. for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian's package
   ``dataset-fashion-mnist``).

If none has them, they are downloaded into the cache (checksums verified, written
atomically); offline, the error says where to put them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DlxError, DlxValueError
from .idx import IDXError, read_idx

__all__ = [
    "CLASS_NAMES",
    "DatasetNotFoundError",
    "cache_dir",
    "load_bundled",
    "load_dataset",
    "load_directory",
    "load_mnist",
]

PARTS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class _Source:
    md5: dict[str, str]  # of the published .gz files
    mirrors: tuple[str, ...]
    system_dir: str | None


SOURCES = {
    "fashion-mnist": _Source(
        md5={
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        system_dir="/usr/share/datasets/fashion-mnist",
    ),
    "mnist": _Source(
        md5={
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        system_dir=None,
    ),
}

CLASS_NAMES = {
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "mnist": tuple(str(d) for d in range(10)),
}


class DatasetNotFoundError(DlxError, FileNotFoundError):
    """The data set's files are nowhere dlx looks, and could not be downloaded."""


def cache_dir() -> Path:
    """dlx's user cache folder: ``$XDG_CACHE_HOME/dlx``, by default ``~/.cache/dlx``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlx"


def _files_in(folder: Path) -> dict[str, Path] | None:
    """The four files in ``folder`` (each gzipped or plain), or None if any is missing."""
    found = {}
    for part in PARTS:
        for candidate in (folder / f"{part}.gz", folder / part):
            if candidate.is_file():
                found[part] = candidate
                break
        else:
            return None
    return found


def _candidates(name: str, data_dir) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir)]
    places = []
    if os.environ.get("DLX_DATA"):
        places += [Path(os.environ["DLX_DATA"]) / name, Path(os.environ["DLX_DATA"])]
    places.append(cache_dir() / name)
    if SOURCES[name].system_dir:
        places.append(Path(SOURCES[name].system_dir))
    return places


def _mirrors(name: str) -> tuple[str, ...]:
    override = os.environ.get("DLX_DATA_MIRROR")
    return (override.rstrip("/") + "/",) if override else SOURCES[name].mirrors


def _download(name: str, dest: Path) -> dict[str, Path]:
    """Download the four files into ``dest``, each verified before it is moved into place."""
    dest.mkdir(parents=True, exist_ok=True)
    errors = []
    for part in PARTS:
        target = dest / f"{part}.gz"
        if target.is_file():
            continue
        for mirror in _mirrors(name):
            url = f"{mirror}{part}.gz"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    data = response.read()
            except (urllib.error.URLError, OSError, ValueError) as error:
                errors.append(f"{url}: {error}")
                continue
            digest = hashlib.md5(data).hexdigest()
            if digest != SOURCES[name].md5[part]:
                errors.append(f"{url}: checksum {digest} does not match {SOURCES[name].md5[part]}")
                continue
            fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{part}.", suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
            break
        else:
            raise DatasetNotFoundError("; ".join(errors))
    return _files_in(dest)  # type: ignore[return-value]


def _not_found(name: str, searched: list[Path], why: str) -> DatasetNotFoundError:
    hint = (
        " On Debian or Ubuntu, `apt-get install dataset-fashion-mnist` provides them."
        if name == "fashion-mnist"
        else ""
    )
    return DatasetNotFoundError(
        f"{name} not found in {', '.join(str(p) for p in searched)}{why}. Put the files "
        f"{', '.join(p + '.gz' for p in PARTS)} into {cache_dir() / name} "
        f"(or a folder named by $DLX_DATA).{hint}"
    )


def _arrays(files: dict[str, Path]):
    arrays = {part: read_idx(path) for part, path in files.items()}
    out = []
    for split in ("train", "t10k"):
        images, labels = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
        where = files[f"{split}-images-idx3-ubyte"].parent
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IDXError(
                f"{where}: {split} images must be uint8 (N, H, W), got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise IDXError(
                f"{where}: {len(images)} {split} images but labels of shape {labels.shape}"
            )
        if labels.size and labels.max() > 9:
            raise IDXError(f"{where}: {split} labels must lie in 0..9, found {labels.max()}")
        out.append((images, labels))
    return out


def _prepare(images: np.ndarray, labels: np.ndarray, flatten: bool, one_hot: bool, normalize: bool):
    x = images.astype(np.float32)
    if normalize:
        x /= np.float32(255.0)
    x = x.reshape(len(x), -1) if flatten else x[:, None, :, :]
    t = labels.astype(np.int64)
    if one_hot:
        t = np.eye(10, dtype=np.float32)[t]
    return x, t


def _load(files, flatten, one_hot, normalize):
    (xi, xl), (ti, tl) = _arrays(files)
    return _prepare(xi, xl, flatten, one_hot, normalize), _prepare(
        ti, tl, flatten, one_hot, normalize
    )


def load_mnist(
    name: str = "fashion-mnist",
    data_dir: str | os.PathLike | None = None,
    *,
    flatten: bool = False,
    one_hot: bool = False,
    normalize: bool = True,
    download: bool = True,
):
    """``((x_train, t_train), (x_test, t_test))`` of MNIST or Fashion-MNIST.

    Images are float32 (N, 1, 28, 28) scaled to [0, 1] (``flatten=True``: (N, 784);
    ``normalize=False``: 0..255), labels int64 (N,) (``one_hot=True``: float32 (N, 10)).
    """
    if name not in SOURCES:
        raise DlxValueError(f"name must be one of {sorted(SOURCES)}, got {name!r}")
    searched = _candidates(name, data_dir)
    for folder in searched:
        files = _files_in(folder)
        if files:
            return _load(files, flatten, one_hot, normalize)
    if data_dir is not None or not download:
        raise _not_found(name, searched, "")
    try:
        files = _download(name, cache_dir() / name)
    except DatasetNotFoundError as error:
        raise _not_found(name, searched, f", and the download failed ({error})") from None
    return _load(files, flatten, one_hot, normalize)


def load_directory(path: str | os.PathLike, *, flatten=False, one_hot=False, normalize=True):
    """The four IDX files of an MNIST-format data set in the folder ``path``."""
    files = _files_in(Path(path))
    if not files:
        raise DatasetNotFoundError(
            f"{path} does not hold the four files {', '.join(PARTS)} (gzipped or not)"
        )
    return _load(files, flatten, one_hot, normalize)


def load_bundled(*, flatten=False, one_hot=False, normalize=True):
    """The Fashion-MNIST subset shipped inside dlx (6,000 training and 1,000 test images,
    class-balanced; made by ``scripts/make_bundled_subset.py``). Works offline."""
    folder = resources.files("dlx.datasets") / "data" / "fashion-mnist-subset"
    with resources.as_file(folder) as path:
        return load_directory(path, flatten=flatten, one_hot=one_hot, normalize=normalize)


def load_dataset(name: str, **kwargs):
    """By name: "bundled", "fashion-mnist", "mnist", or a folder holding the IDX files."""
    if name == "bundled":
        return load_bundled(**kwargs)
    if name in SOURCES:
        return load_mnist(name, **kwargs)
    if Path(name).is_dir():
        return load_directory(name, **kwargs)
    raise DlxValueError(
        f"dataset must be 'bundled', 'fashion-mnist', 'mnist' or a folder of IDX files, got {name!r}"
    )
