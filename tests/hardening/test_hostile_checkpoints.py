"""Crafted checkpoints that once made dlx.load allocate gigabytes, crash with an error other
than CheckpointError, or print what the file said: each is refused with a CheckpointError,
and the loading process's peak memory grows by a few megabytes at most."""

import io
import json
import subprocess
import sys
import zipfile

import dlx
import numpy as np
import pytest
from dlx.checkpoint import CheckpointError


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _write(path, meta: dict, members: dict[str, bytes], deflated: dict[str, tuple] = ()) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("meta.npy", _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8)))
        for name, data in members.items():
            archive.writestr(name, data)
        for name, (header, zeros) in dict(deflated).items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as f:
                f.write(header)
                chunk = bytes(1 << 24)
                for _ in range(zeros // len(chunk)):
                    f.write(chunk)


def _small_model_file(tmp_path):
    path = dlx.save(dlx.Sequential([dlx.layers.Affine(3, 2)]), tmp_path / "small.npz")
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    meta = json.loads(np.load(io.BytesIO(members.pop("meta.npy"))).tobytes())
    return meta, members


def _declaring(meta, layer):
    return {**meta, "config": {**meta["config"], "layers": [layer]}, "providers": {}}


def hostile_files(tmp_path) -> dict:
    meta, members = _small_model_file(tmp_path)
    files = {}

    def add(name, meta, members, deflated=()):
        files[name] = tmp_path / f"{name}.npz"
        _write(files[name], meta, members, deflated)

    add(
        "huge-affine",
        _declaring(meta, {"type": "Affine", "in_features": 20000, "out_features": 20000}),
        members,
    )
    add(
        "enormous-affine",
        _declaring(meta, {"type": "Affine", "in_features": 100000, "out_features": 100000}),
        members,
    )
    add(
        "rng-is-a-number",
        _declaring(meta, {"type": "Affine", "in_features": 3, "out_features": 2, "rng": 5}),
        members,
    )
    # W's header declares 256 MiB of float32 zeros, which deflate to about 256 KiB
    count = (256 << 20) // 4
    buffer = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": (count,)}
    )
    header = buffer.getvalue()
    inflating = {k: v for k, v in members.items() if k != "param/0.W.npy"}
    add("deflate-bomb", meta, inflating, {"param/0.W.npy": (header, count * 4)})
    return files


HOSTILE = {
    "huge-affine": r"declared with W of shape \(20000, 20000\), but the file holds param/0.W.npy of shape \(3, 2\)",
    "enormous-affine": r"declared with W of shape \(100000, 100000\)",
    "rng-is-a-number": r"rng must be a numpy.random.Generator or None, got int",
    "deflate-bomb": r"would expand from [\d,]+ to 268,435,\d{3} bytes: refused",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return hostile_files(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_is_refused(hostile, name):
    with pytest.raises(CheckpointError, match=HOSTILE[name]):
        dlx.load(hostile[name])


PEAK = """
import sys, dlx
def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the high-water mark to the current resident set
before = peak_kib()
try:
    dlx.load(sys.argv[1])
except dlx.checkpoint.CheckpointError:
    pass
print(peak_kib() - before)
"""


@pytest.mark.parametrize("name", list(HOSTILE))
def test_refusing_a_hostile_file_costs_a_few_megabytes(hostile, name):
    if hasattr(dlx.ops._module_of("cpp")._core, "_sanitizer_canary"):
        pytest.skip("under AddressSanitizer the resident set counts its quarantine and shadow")
    run = subprocess.run(
        [sys.executable, "-c", PEAK, str(hostile[name])], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) < 20 * 1024, f"peak memory grew by {int(run.stdout):,} KiB"


@pytest.mark.parametrize(
    "provider",
    [
        "numpy --index-url http://evil.example/simple",
        "evil\x1b[2J\x1b[31mpackage",
        "-r requirements.txt",
    ],
)
def test_a_provider_name_from_a_file_is_never_suggested_raw(tmp_path, provider):
    meta, members = _small_model_file(tmp_path)
    meta = _declaring(meta, {"type": "NoSuch\x1b[0mLayer"})
    meta["providers"] = {"NoSuch\x1b[0mLayer": provider}
    _write(tmp_path / "m.npz", meta, members)
    with pytest.raises(CheckpointError) as caught:
        dlx.load(tmp_path / "m.npz")
    message = str(caught.value)
    assert "pip install" not in message and "\x1b" not in message
    assert r"NoSuch\x1b[0mLayer" in message  # the type name, escaped


def test_a_valid_provider_name_is_suggested(tmp_path):
    meta, members = _small_model_file(tmp_path)
    meta = _declaring(meta, {"type": "Gelu2"})
    meta["providers"] = {"Gelu2": "dlx-example-plugin"}
    _write(tmp_path / "m.npz", meta, members)
    with pytest.raises(CheckpointError, match="pip install dlx-example-plugin"):
        dlx.load(tmp_path / "m.npz")


def test_metadata_nested_too_deep_is_refused(tmp_path):
    path = tmp_path / "deep.npz"
    text = ("[" * 100_000 + "]" * 100_000).encode()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("meta.npy", _npy(np.frombuffer(text, np.uint8)))
    with pytest.raises(CheckpointError):
        dlx.load(path)
