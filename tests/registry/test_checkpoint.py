"""dlx.save and dlx.load: exact round trips, atomic writes, and refusal of bad files."""

import io
import json
import pickle
import zipfile

import dlx
import numpy as np
import pytest
from dlx import checkpoint
from dlx.checkpoint import CheckpointError


def trained(model, shape, steps=3):
    """A model whose parameters and BatchNorm statistics have moved away from their start."""
    rng = np.random.default_rng(0)
    dtype = next(iter(model.params.values())).dtype
    opt = dlx.optim.Adam(0.01)
    for _ in range(steps):
        x = rng.standard_normal(shape).astype(dtype)
        opt.update(model.params, model.gradient(x, rng.integers(0, 3, shape[0])))
    return model


MODELS = {
    "mlp-bn-dropout": (
        lambda d: dlx.models.mlp(5, [6, 4], 3, batchnorm=True, dropout=0.2, dtype=d),
        (8, 5),
    ),
    "simple_conv_net": (
        lambda d: dlx.models.simple_conv_net(
            (1, 10, 10), filters=3, hidden_size=5, output_size=3, dtype=d
        ),
        (4, 1, 10, 10),
    ),
    "deep_conv_net-bn": (
        lambda d: dlx.models.deep_conv_net((1, 12, 12), output_size=3, batchnorm=True, dtype=d),
        (4, 1, 12, 12),
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(MODELS))
def test_round_trip_is_bit_identical(tmp_path, case, dtype):
    make, shape = MODELS[case]
    dlx.seed(0)
    model = trained(make(dtype), shape)
    path = dlx.save(model, tmp_path / "model.npz")
    loaded = dlx.load(path)
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.to_config() == model.to_config()
    for key, value in model.buffers.items():
        np.testing.assert_array_equal(loaded.buffers[key], value)
        assert loaded.buffers[key].dtype == dtype


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    dlx.save(dlx.models.mlp(3, [4], 2), path)
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt  # the process is interrupted mid-write

    monkeypatch.setattr(checkpoint.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        dlx.save(dlx.models.mlp(3, [4], 2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left


def test_a_killed_saves_temporary_file_is_removed_by_the_next_save(tmp_path):
    import fcntl

    stale = tmp_path / ".model.npz.k1ll3d.tmp"  # left by a save whose process was killed
    stale.write_bytes(b"PK\x03\x04" + bytes(1000))
    busy = tmp_path / ".model.npz.wr1t1ng.tmp"  # a save in progress in another process
    busy.write_bytes(b"PK")
    other = tmp_path / ".notes.txt.abc.tmp"  # not a temporary file of this name
    other.write_bytes(b"")
    with open(busy, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        dlx.save(dlx.models.mlp(3, [4], 2), tmp_path / "model.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [busy.name, other.name, "model.npz"]
    )


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_follow_the_umask(tmp_path, umask):
    import os

    previous = os.umask(umask)
    try:
        path = dlx.save(dlx.models.mlp(3, [4], 2), tmp_path / "model.npz")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_to_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dlx.save(dlx.models.mlp(3, [4], 2), tmp_path / "nope" / "model.npz")


def test_save_refuses_non_models(tmp_path):
    with pytest.raises(TypeError, match="model must be a dlx.Sequential"):
        dlx.save(dlx.layers.ReLU(), tmp_path / "m.npz")


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _write(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.fixture
def saved(tmp_path):
    dlx.seed(0)
    path = dlx.save(dlx.models.mlp(3, [4], 2, batchnorm=True), tmp_path / "good.npz")
    return path, _members(path)


def _meta(members):
    return json.loads(np.load(io.BytesIO(members["meta.npy"])).tobytes())


def _with_meta(members, meta):
    return {**members, "meta.npy": _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))}


def damaged(saved):
    path, members = saved
    meta = _meta(members)
    cases = {
        "text-file": (b"just some text", r"not a dlx checkpoint \(not an .npz archive\)"),
        "no-meta": ({k: v for k, v in members.items() if k != "meta.npy"}, r"no meta.npy"),
        "pickled-member": (
            {
                **members,
                "param/0.W.npy": _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True),
            },
            r"dtype object",
        ),
        "pickled-meta": (
            {**members, "meta.npy": _npy(np.array([print], dtype=object), allow_pickle=True)},
            r"meta.npy' has dtype object",
        ),
        "raw-pickle-member": (
            {**members, "param/0.W.npy": pickle.dumps({"x": 1})},
            r"not a valid .npy array",
        ),
        "int-member": (
            {**members, "param/0.W.npy": _npy(np.zeros((3, 4), np.int64))},
            r"dtype int64",
        ),
        "missing-key": (
            {k: v for k, v in members.items() if k != "param/0.b.npy"},
            r"layer 0 \(Affine\) is declared with b of shape \(4,\), but the file holds no "
            r"param/0.b.npy",
        ),
        "unexpected-key": (
            {**members, "param/9.W.npy": _npy(np.zeros(2, np.float32))},
            r"unexpected \['param/9.W.npy'\]",
        ),
        "wrong-shape": (
            {**members, "param/0.W.npy": _npy(np.zeros((4, 3), np.float32))},
            r"declared with W of shape \(3, 4\), but the file holds param/0.W.npy of shape "
            r"\(4, 3\)",
        ),
        "wrong-dtype": (
            {**members, "param/0.W.npy": _npy(np.zeros((3, 4), np.float64))},
            r"dtype float64, the model expects \(3, 4\) and float32",
        ),
        "future-version": (
            _with_meta(members, {**meta, "format_version": 99}),
            r"format version 99; this dlx reads version 1",
        ),
        "not-dlx-meta": (
            _with_meta(members, {"hello": 1}),
            r"not a dlx checkpoint \(wrong metadata\)",
        ),
        "bad-json": (
            {**members, "meta.npy": _npy(np.frombuffer(b"{not json", np.uint8))},
            r"metadata is not valid JSON",
        ),
        "unknown-layer": (
            _with_meta(
                members, {**meta, "config": {**meta["config"], "layers": [{"type": "Warp"}]}}
            ),
            r"layer type 'Warp', which is not registered",
        ),
        "bad-layer-args": (
            _with_meta(
                members,
                {**meta, "config": {**meta["config"], "layers": [{"type": "ReLU", "slope": 1}]}},
            ),
            r"layer 0 \(ReLU\) has arguments its class does not accept: .*'slope'",
        ),
        "huge-header": (
            {
                **members,
                "param/0.W.npy": _npy(np.zeros((3, 4), np.float32)).replace(
                    b"(3, 4)", b"(3, 9999999999)"
                ),
            },
            r"declares shape \(3, 9999999999\)",
        ),
        "oversized-header": (
            {
                **members,
                "param/0.W.npy": b"\x93NUMPY\x02\x00"
                + (10**6).to_bytes(4, "little")
                + b"{"
                + b" " * 10**6,
            },
            r"not a valid .npy array",
        ),
        "truncated": (None, r"damaged archive|could not be read|truncated|not a dlx checkpoint"),
    }
    return path, members, cases


CASE_NAMES = [
    "text-file",
    "no-meta",
    "pickled-member",
    "pickled-meta",
    "raw-pickle-member",
    "int-member",
    "missing-key",
    "unexpected-key",
    "wrong-shape",
    "wrong-dtype",
    "future-version",
    "not-dlx-meta",
    "bad-json",
    "unknown-layer",
    "bad-layer-args",
    "huge-header",
    "oversized-header",
    "truncated",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_damaged_files_are_refused(saved, tmp_path, case):
    path, members, cases = damaged(saved)
    content, message = cases[case]
    bad = tmp_path / f"{case}.npz"
    if case == "truncated":
        data = path.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        _write(bad, content)
    with pytest.raises(CheckpointError, match=message):
        dlx.load(bad)


def test_oversized_member_is_refused_before_reading(saved, tmp_path, monkeypatch):
    path, _ = saved
    monkeypatch.setattr(checkpoint, "MAX_MEMBER_BYTES", 16)
    with pytest.raises(CheckpointError, match=r"declares 176 bytes, more than the 16"):
        dlx.load(path)


def test_load_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        dlx.load(tmp_path / "none.npz")


def test_bit_flips_never_crash(saved, tmp_path):
    """Every flipped byte either loads (flip in slack space) or raises CheckpointError."""
    path, _ = saved
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    outcomes = {"loaded": 0, "refused": 0}
    for i, position in enumerate(rng.choice(len(data), size=120, replace=False)):
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        bad = tmp_path / f"flip{i}.npz"
        bad.write_bytes(bytes(flipped))
        try:
            dlx.load(bad)
            outcomes["loaded"] += 1
        except CheckpointError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0
