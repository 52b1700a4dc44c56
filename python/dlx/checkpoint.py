"""Saving and loading networks: one .npz file, no pickle, atomic writes, validated loads.

A checkpoint is a zip archive of .npy members (NumPy's npz format):

- ``meta.npy``: the UTF-8 bytes of a JSON document (uint8), holding the format version, the
  network's config (registered layer names and arguments), and which distribution provided
  each layer type, so a missing plugin can be named when the file is loaded;
- ``param/<key>.npy`` and ``buffer/<key>.npy``: every parameter and buffer (BatchNorm running
  statistics) under the keys of the network's ``params`` and ``buffers``.

Loading never unpickles and allocates nothing a file has not paid for: it reads every member's
header first (refusing any member that does not hold the bytes its header declares, and any
compressed member that would expand more than MAX_DEFLATE_RATIO times), compares the shapes
each layer's arguments imply with those headers (:meth:`dlx.Layer.state_shapes`) before it
builds the model, and reads the data last. Every failure is a :class:`CheckpointError`, and
strings from a file are shown escaped.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_write
from .errors import DlxFileNotFoundError, DlxTypeError, DlxValueError
from .network import Network

__all__ = ["FORMAT_VERSION", "CheckpointError", "load", "load_training", "save"]

FORMAT_VERSION = 1
_META = "meta.npy"
_ARRAY_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# A member larger than this is refused before it is read: no dlx model comes near it.
MAX_MEMBER_BYTES = 4 << 30
MAX_META_BYTES = 16 << 20
# A compressed member may expand at most this many times (dlx writes them uncompressed; numbers
# deflate by far less): past it the file is refused before anything is decompressed.
MAX_DEFLATE_RATIO = 64


class CheckpointError(DlxValueError):
    """A file that is not a valid dlx checkpoint, or one that does not fit its model."""


def save(model: Network, path: str | os.PathLike, *, training: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically: a crash mid-save leaves any old file intact,
    and a temporary file left by a save that was killed is removed by the next save there.

    ``training`` (a :meth:`dlx.Trainer.state_dict`, optionally with a ``"run"`` dict of JSON
    settings) is stored beside the model, so that :func:`load_training` can continue the
    run; :func:`load` reads the model alone from such a file too."""
    from .registry import layer_providers

    if not isinstance(model, Network):
        raise DlxTypeError(
            f"model must be a dlx.Sequential or dlx.Model, got {type(model).__name__}"
        )
    path = Path(path)
    config = model.to_config()
    providers = layer_providers()
    meta = {
        "format": "dlx-checkpoint",
        "format_version": FORMAT_VERSION,
        "config": config,
        "providers": {
            c["type"]: providers.get(c["type"], "unknown") for _, c in _layer_configs(config)
        },
    }
    arrays = {f"param/{k}": v for k, v in model.params.items()}
    arrays.update({f"buffer/{k}": v for k, v in model.buffers.items()})
    if training is not None:
        meta["training"], training_arrays = _split_training(training)
        arrays.update(training_arrays)
    members: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
        **arrays,
    }
    return atomic_write(path, lambda f: np.savez(f, **members))


_TRAINING_KEYS = ("epoch", "history", "best_score", "waited", "optimizer", "rng", "run")
# The model states a Trainer keeps (its best epoch's, and its last epoch's once the best was
# put back), stored as training/<name>/<key>.npy.
_MODEL_STATES = ("best", "last")


def _split_training(training: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """A Trainer state as (its JSON part, its arrays by member name)."""
    if not isinstance(training, dict):
        raise DlxTypeError(
            f"training must be a Trainer.state_dict(), got {type(training).__name__}"
        )
    optimizer = training["optimizer"]
    text = {k: training.get(k) for k in _TRAINING_KEYS}
    text["optimizer"] = {
        "type": optimizer["type"],
        "settings": optimizer["settings"],
        "slots": {key: sorted(slots) for key, slots in optimizer["slots"].items()},
    }
    arrays = {
        f"training/optimizer/{key}/{name}": a
        for key, slots in optimizer["slots"].items()
        for name, a in slots.items()
    }
    for model_state in _MODEL_STATES:
        held = training.get(f"{model_state}_state")
        text[f"{model_state}_keys"] = None if held is None else sorted(held)
        arrays.update({f"training/{model_state}/{key}": a for key, a in (held or {}).items()})
    try:
        json.dumps(text)
    except TypeError as error:  # MT19937's and Philox's states hold arrays
        raise DlxTypeError(
            f"this training state cannot be saved ({error}): give the Trainer a generator "
            "made by numpy.random.default_rng, or none (dlx's own)"
        ) from None
    return text, arrays


def _training_members(training: object) -> list[str]:
    """The member names a checkpoint's training section declares."""
    if not isinstance(training, dict):
        raise CheckpointError("the training section of the metadata is not a dict")
    optimizer = training.get("optimizer")
    slots = optimizer.get("slots") if isinstance(optimizer, dict) else None
    if not isinstance(slots, dict) or not all(
        isinstance(names, list) and all(isinstance(n, str) for n in names)
        for names in slots.values()
    ):
        raise CheckpointError("the training section lists no valid optimizer slots")
    names = [f"training/optimizer/{key}/{n}.npy" for key, ns in slots.items() for n in ns]
    for model_state in _MODEL_STATES:
        keys = training.get(f"{model_state}_keys")
        if keys is not None and not (
            isinstance(keys, list) and all(isinstance(k, str) for k in keys)
        ):
            raise CheckpointError(f"the training section's {model_state}_keys is not a list")
        names += [f"training/{model_state}/{key}.npy" for key in keys or []]
    return names


def _parse_header(f, name: str):
    """(shape, fortran order, dtype) from the header of the .npy stream f."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version in ((2, 0), (3, 0)):
            return np.lib.format.read_array_header_2_0(f)
    except Exception as error:
        raise CheckpointError(f"member {name!r} is not a valid .npy array: {error}") from error
    raise CheckpointError(f"member {name!r} has .npy version {version}")


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dtypes, limit: int):
    """(shape, fortran order, dtype) of one .npy member, from its header alone, after checking
    that the member holds the bytes the header declares. A compressed member is refused,
    before anything is decompressed, when it would expand past MAX_DEFLATE_RATIO."""
    if info.file_size > limit:
        raise CheckpointError(
            f"member {info.filename!r} declares {info.file_size:,} bytes, more than the "
            f"{limit:,} a dlx checkpoint member may hold"
        )
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(
        MAX_DEFLATE_RATIO * info.compress_size, 1 << 20
    ):
        raise CheckpointError(
            f"member {info.filename!r} would expand from {info.compress_size:,} to "
            f"{info.file_size:,} bytes: refused"
        )
    with archive.open(info) as f:
        shape, fortran, dtype = _parse_header(f, info.filename)
        header_bytes = f.tell()
    if dtype not in dtypes:
        raise CheckpointError(
            f"member {info.filename!r} has dtype {dtype}; a dlx checkpoint holds only "
            f"{', '.join(str(d) for d in dtypes)}"
        )
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize > info.file_size - header_bytes:
        raise CheckpointError(
            f"member {info.filename!r} declares shape {shape} ({count * dtype.itemsize:,} "
            f"bytes) but holds {info.file_size - header_bytes:,}"
        )
    return tuple(shape), fortran, dtype


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dtypes, limit: int) -> np.ndarray:
    """One .npy member, its header checked (see _read_header) before its data is read."""
    shape, fortran, dtype = _read_header(archive, info, dtypes, limit)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
    with archive.open(info) as f:
        _parse_header(f, info.filename)
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise CheckpointError(f"member {info.filename!r} is truncated")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.array(array)  # writable, owning its memory


def _shown(text: object) -> str:
    """A string from a file, quoted and with every control character escaped."""
    return repr(str(text))


# A distribution name as PEP 508 allows it: only such a name is suggested to pip.
_DISTRIBUTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")


def _check_declared_shapes(config: dict[str, Any], headers: dict[str, tuple]) -> None:
    """Compare the shapes each layer's arguments imply (Layer.state_shapes) with the members'
    headers, before any layer is built."""
    from .registry import declared_state_shapes

    for i, layer_config in _layer_configs(config):
        try:
            shapes = declared_state_shapes(layer_config)
        except Exception as error:
            raise CheckpointError(
                f"layer {i} ({layer_config['type']}) has arguments its class does not accept: "
                f"{error}"
            ) from error
        if shapes is None:
            continue
        for kind, prefix in (("params", "param"), ("buffers", "buffer")):
            for name, shape in shapes[kind].items():
                member = f"{prefix}/{i}.{name}.npy"
                held = headers.get(member)
                if held is None or held[0] != tuple(shape):
                    raise CheckpointError(
                        f"layer {i} ({layer_config['type']}) is declared with {name} of shape "
                        f"{tuple(shape)}, but the file holds "
                        f"{'no ' + member if held is None else f'{member} of shape {held[0]}'}"
                    )


def _layer_configs(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """(the prefix of its arrays' names, its config) of every layer of a network config: a
    Sequential's layers by index, a graph's by name."""
    layers = config.get("layers")
    if isinstance(layers, list):
        return [(str(i), c) for i, c in enumerate(layers)]
    if isinstance(layers, dict) and "nodes" in config:
        return [(str(name), c) for name, c in layers.items()]
    raise CheckpointError("the network config holds no layers")


def _rebuild(meta: dict[str, Any], headers: dict[str, tuple]) -> Network:
    from .model import network_from_config
    from .registry import get_layer

    config = meta["config"]
    providers = meta.get("providers", {})
    for i, layer_config in _layer_configs(config):
        name = layer_config.get("type") if isinstance(layer_config, dict) else None
        if not isinstance(name, str):
            raise CheckpointError(f"layer {i} of the config has no type name")
        try:
            get_layer(name)
        except KeyError as error:
            provider = providers.get(name) if isinstance(providers, dict) else None
            if (
                isinstance(provider, str)
                and provider not in ("dlx", "unknown")
                and _DISTRIBUTION_NAME.match(provider)
            ):
                raise CheckpointError(
                    f"the model uses layer type {_shown(name)}, which came from the "
                    f"distribution {provider!r} when it was saved and is not installed now: "
                    f"pip install {provider}"
                ) from error
            raise CheckpointError(
                f"the model uses layer type {_shown(name)}, which is not registered"
            ) from error
    _check_declared_shapes(config, headers)
    try:
        return network_from_config(config)
    except Exception as error:  # whatever a config from a file makes a constructor raise
        raise CheckpointError(f"cannot rebuild the model from its config: {error}") from error


def load(path: str | os.PathLike) -> Network:
    """Rebuild the network saved at ``path`` through the layer registry, with its arrays."""
    return _load(path, with_training=False)[0]


def load_training(path: str | os.PathLike) -> tuple[Network, dict | None]:
    """The network saved at ``path`` and the training state saved with it (a
    :meth:`dlx.Trainer.state_dict` with the ``"run"`` settings, or None if the file holds
    the model alone)."""
    return _load(path, with_training=True)


def _load(path: str | os.PathLike, with_training: bool) -> tuple[Network, dict | None]:
    path = Path(path)
    if not path.is_file():
        raise DlxFileNotFoundError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a dlx checkpoint (not an .npz archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            if _META not in infos:
                raise CheckpointError(f"{path} is not a dlx checkpoint (no {_META})")
            raw = _read_member(archive, infos.pop(_META), (np.dtype(np.uint8),), MAX_META_BYTES)
            try:
                meta = json.loads(raw.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise CheckpointError(f"{path}: the metadata is not valid JSON: {error}") from error
            if not isinstance(meta, dict) or meta.get("format") != "dlx-checkpoint":
                raise CheckpointError(f"{path} is not a dlx checkpoint (wrong metadata)")
            if meta.get("format_version") != FORMAT_VERSION:
                raise CheckpointError(
                    f"{path} has checkpoint format version {meta.get('format_version')!r}; this "
                    f"dlx reads version {FORMAT_VERSION}"
                )
            if not isinstance(meta.get("config"), dict):
                raise CheckpointError(f"{path}: the metadata holds no network config")
            headers = {
                name: _read_header(archive, info, _ARRAY_DTYPES, MAX_MEMBER_BYTES)
                for name, info in infos.items()
            }
            model = _rebuild(meta, headers)

            expected = {f"param/{k}.npy": v for k, v in model.params.items()}
            expected.update({f"buffer/{k}.npy": v for k, v in model.buffers.items()})
            training = meta.get("training")
            extra = [] if training is None else _training_members(training)
            missing = sorted((set(expected) | set(extra)) - set(infos))
            unexpected = sorted(set(infos) - set(expected) - set(extra))
            if missing or unexpected:
                raise CheckpointError(
                    f"{path} does not fit its model: missing {missing or 'nothing'}, "
                    f"unexpected {unexpected or 'nothing'}"
                )
            for name, target in expected.items():  # every header fits before any data is read
                shape, _, dtype = headers[name]
                if shape != target.shape or dtype != target.dtype:
                    raise CheckpointError(
                        f"{path}: {name} has shape {shape} and dtype {dtype}, the model "
                        f"expects {target.shape} and {target.dtype}"
                    )
            for name, target in expected.items():
                target[...] = _read_member(archive, infos[name], _ARRAY_DTYPES, MAX_MEMBER_BYTES)
            state = None
            if with_training and training is not None:
                read = {
                    name: _read_member(archive, infos[name], _ARRAY_DTYPES, MAX_MEMBER_BYTES)
                    for name in extra
                }
                state = _join_training(training, read)
    except zipfile.BadZipFile as error:
        raise CheckpointError(f"{path} is a damaged archive: {error}") from error
    except (EOFError, OSError, zipfile.LargeZipFile) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(f"{path} could not be read: {error}") from error
    except (NotImplementedError, RuntimeError, RecursionError) as error:
        # An unknown compression method, an encrypted member, metadata nested too deep.
        raise CheckpointError(f"{path} could not be read: {error}") from error
    return model, state


def _join_training(training: dict, arrays: dict[str, np.ndarray]) -> dict:
    """The Trainer state of a checkpoint's training section and its arrays."""
    optimizer = dict(training["optimizer"])
    optimizer["slots"] = {
        key: {n: arrays[f"training/optimizer/{key}/{n}.npy"] for n in names}
        for key, names in optimizer["slots"].items()
    }
    state = {k: training.get(k) for k in _TRAINING_KEYS}
    state["optimizer"] = optimizer
    for model_state in _MODEL_STATES:
        keys = training.get(f"{model_state}_keys")
        state[f"{model_state}_state"] = (
            None if keys is None else {k: arrays[f"training/{model_state}/{k}.npy"] for k in keys}
        )
    return state
