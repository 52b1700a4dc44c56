"""Data sets (MNIST, Fashion-MNIST, the bundled subset) and the helpers to split them."""

from .idx import IDXError, read_idx, write_idx
from .mnist import (
    CLASS_NAMES,
    DatasetNotFoundError,
    cache_dir,
    load_bundled,
    load_dataset,
    load_directory,
    load_mnist,
)
from .splits import iterate_minibatches, kfold_indices, shuffle, train_val_split

__all__ = [
    "CLASS_NAMES",
    "DatasetNotFoundError",
    "IDXError",
    "cache_dir",
    "iterate_minibatches",
    "kfold_indices",
    "load_bundled",
    "load_dataset",
    "load_directory",
    "load_mnist",
    "read_idx",
    "shuffle",
    "train_val_split",
    "write_idx",
]
