"""Saving and loading networks: one .npz file, no pickle, atomic writes, validated loads.

A checkpoint is a zip archive of .npy members (NumPy's npz format):

- ``meta.npy``: the UTF-8 bytes of a JSON document (uint8), holding the format version, the
  network's config (registered layer names and arguments), and which distribution provided
  each layer type, so a missing plugin can be named when the file is loaded;
- ``param/<key>.npy`` and ``buffer/<key>.npy``: every parameter and buffer (BatchNorm running
  statistics) under the keys of ``Sequential.params`` and ``Sequential.buffers``.

Loading reads every member header itself and refuses anything but the expected numeric
arrays of plausible size before reading any data, so no file can run code or exhaust memory.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_write
from .network import Sequential

__all__ = ["FORMAT_VERSION", "CheckpointError", "load", "save"]

FORMAT_VERSION = 1
_META = "meta.npy"
_ARRAY_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# A member larger than this is refused before it is read: no dlx model comes near it.
MAX_MEMBER_BYTES = 4 << 30
MAX_META_BYTES = 16 << 20


class CheckpointError(ValueError):
    """A file that is not a valid dlx checkpoint, or one that does not fit its model."""


def save(model: Sequential, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` atomically: a crash mid-save leaves any old file intact,
    and a temporary file left by a save that was killed is removed by the next save there."""
    from .registry import layer_providers

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a dlx.Sequential, got {type(model).__name__}")
    path = Path(path)
    config = model.to_config()
    providers = layer_providers()
    meta = {
        "format": "dlx-checkpoint",
        "format_version": FORMAT_VERSION,
        "config": config,
        "providers": {c["type"]: providers.get(c["type"], "unknown") for c in config["layers"]},
    }
    members: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    }
    members.update({f"param/{k}": v for k, v in model.params.items()})
    members.update({f"buffer/{k}": v for k, v in model.buffers.items()})

    return atomic_write(path, lambda f: np.savez(f, **members))


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dtypes, limit: int) -> np.ndarray:
    """One .npy member, its header checked before any data is read."""
    if info.file_size > limit:
        raise CheckpointError(
            f"member {info.filename!r} declares {info.file_size:,} bytes, more than the "
            f"{limit:,} a dlx checkpoint member may hold"
        )
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise CheckpointError(f"member {info.filename!r} has .npy version {version}")
        except CheckpointError:
            raise
        except Exception as error:
            raise CheckpointError(
                f"member {info.filename!r} is not a valid .npy array: {error}"
            ) from error
        if dtype not in dtypes:
            raise CheckpointError(
                f"member {info.filename!r} has dtype {dtype}; a dlx checkpoint holds only "
                f"{', '.join(str(d) for d in dtypes)}"
            )
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        nbytes = count * dtype.itemsize
        if nbytes > limit or nbytes > info.file_size:
            raise CheckpointError(
                f"member {info.filename!r} declares shape {shape} ({nbytes:,} bytes) but holds "
                f"{info.file_size:,} bytes"
            )
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise CheckpointError(f"member {info.filename!r} is truncated")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.array(array)  # writable, owning its memory


def _rebuild(meta: dict[str, Any]) -> Sequential:
    from .registry import get_layer

    for layer_config in meta["config"].get("layers", []):
        name = layer_config.get("type") if isinstance(layer_config, dict) else None
        try:
            get_layer(name)
        except KeyError as error:
            provider = meta.get("providers", {}).get(name)
            if provider and provider not in ("dlx", "unknown"):
                raise CheckpointError(
                    f"the model uses layer type {name!r}, which came from the distribution "
                    f"{provider!r} when it was saved and is not installed now: "
                    f"pip install {provider}"
                ) from error
            raise CheckpointError(
                f"the model uses layer type {name!r}, which is not registered: {error}"
            ) from error
    try:
        return Sequential.from_config(meta["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"cannot rebuild the model from its config: {error}") from error


def load(path: str | os.PathLike) -> Sequential:
    """Rebuild the network saved at ``path`` through the layer registry, with its arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
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
            model = _rebuild(meta)

            expected = {f"param/{k}.npy": v for k, v in model.params.items()}
            expected.update({f"buffer/{k}.npy": v for k, v in model.buffers.items()})
            missing = sorted(set(expected) - set(infos))
            unexpected = sorted(set(infos) - set(expected))
            if missing or unexpected:
                raise CheckpointError(
                    f"{path} does not fit its model: missing {missing or 'nothing'}, "
                    f"unexpected {unexpected or 'nothing'}"
                )
            for name, target in expected.items():
                array = _read_member(archive, infos[name], _ARRAY_DTYPES, MAX_MEMBER_BYTES)
                if array.shape != target.shape or array.dtype != target.dtype:
                    raise CheckpointError(
                        f"{path}: {name} has shape {array.shape} and dtype {array.dtype}, the "
                        f"model expects {target.shape} and {target.dtype}"
                    )
                target[...] = array
    except zipfile.BadZipFile as error:
        raise CheckpointError(f"{path} is a damaged archive: {error}") from error
    except (EOFError, OSError, zipfile.LargeZipFile) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(f"{path} could not be read: {error}") from error
    return model
