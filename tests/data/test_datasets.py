"""IDX reading, data set discovery and download, the bundled subset, and the split helpers."""

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from dlx import datasets
from dlx.datasets import IDXError, mnist, read_idx, write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    a = (np.arange(60) - 20).astype(dtype).reshape(3, 4, 5)
    write_idx(tmp_path / f"a{suffix}", a)
    b = read_idx(tmp_path / f"a{suffix}")
    assert b.dtype == np.dtype(dtype).newbyteorder("=") and b.shape == (3, 4, 5)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"bad magic number \(empty\)"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01x", r"bad magic number 00000701"),
        (b"\x00\x00\x08\x03\x00\x00", r"declares 3 dimensions but the file ends first"),
        (
            b"\x00\x00\x08\x01\x00\x00\x00\x05abc",
            r"declares shape \(5,\) \(5 bytes of data\) but the file holds 3",
        ),
        (
            b"\x00\x00\x08\x01\x00\x00\x00\x02abcd",
            r"declares shape \(2,\) \(2 bytes of data\) but the file holds 4",
        ),
        (
            gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")[:-6],
            r"gzip data is damaged or truncated",
        ),
    ],
    ids=["empty", "bad-type", "short-header", "truncated", "too-long", "broken-gzip"],
)
def test_corrupt_idx_files(tmp_path, content, match):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(IDXError, match=match):
        read_idx(path)


def fake_mnist(folder: Path, n_train=20, n_test=10, gz=True, label_max=9):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            folder / f"{split}-images-idx3-ubyte{suffix}",
            rng.integers(0, 256, (n, 28, 28)).astype(np.uint8),
        )
        write_idx(
            folder / f"{split}-labels-idx1-ubyte{suffix}",
            (np.arange(n) % (label_max + 1)).astype(np.uint8),
        )
    return folder


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $DLX_DATA, an empty cache, no system folder and no network for data."""
    monkeypatch.delenv("DLX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DLX_DATA_MIRROR", "http://127.0.0.1:9/")  # nothing listens there
    monkeypatch.setitem(
        mnist.SOURCES,
        "fashion-mnist",
        mnist.SOURCES["fashion-mnist"].__class__(
            md5=mnist.SOURCES["fashion-mnist"].md5,
            mirrors=(),
            system_dir=str(tmp_path / "no-system"),
        ),
    )
    return tmp_path


def test_formats_and_options(isolated):
    folder = fake_mnist(isolated / "d", gz=False)
    (x, t), (xt, tt) = datasets.load_mnist("mnist", folder)
    assert x.shape == (20, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert t.dtype == np.int64 and xt.shape == (10, 1, 28, 28)
    (x, t), _ = datasets.load_mnist("mnist", folder, flatten=True, one_hot=True, normalize=False)
    assert x.shape == (20, 784) and x.max() > 1
    assert t.shape == (20, 10) and t.dtype == np.float32 and np.all(t.sum(axis=1) == 1)


def test_search_order(isolated, monkeypatch):
    cache = fake_mnist(isolated / "cache" / "dlx" / "mnist", n_train=7)
    (x, _), _ = datasets.load_mnist("mnist")
    assert len(x) == 7  # found in the cache
    monkeypatch.setenv("DLX_DATA", str(isolated / "env"))
    fake_mnist(isolated / "env" / "mnist", n_train=5)
    (x, _), _ = datasets.load_mnist("mnist")
    assert len(x) == 5  # $DLX_DATA comes before the cache
    (x, _), _ = datasets.load_mnist("mnist", fake_mnist(isolated / "explicit", n_train=3))
    assert len(x) == 3  # an explicit folder comes first
    assert cache.is_dir()


def test_missing_data_says_where_to_put_it(isolated):
    with pytest.raises(datasets.DatasetNotFoundError) as caught:
        datasets.load_mnist("fashion-mnist")
    message = str(caught.value)
    assert "Put the files train-images-idx3-ubyte.gz" in message
    assert str(isolated / "cache" / "dlx" / "fashion-mnist") in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_explicit_folder_without_files(isolated):
    with pytest.raises(datasets.DatasetNotFoundError, match="not found in"):
        datasets.load_mnist("mnist", isolated / "empty")


def test_corrupt_labels_are_refused(isolated):
    folder = fake_mnist(isolated / "bad", label_max=11)
    with pytest.raises(IDXError, match="labels must lie in 0..9, found 11"):
        datasets.load_directory(folder)


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """An HTTP server on the loopback address serving a folder, as a data mirror."""
    served = tmp_path / "served"
    served.mkdir()
    handler = lambda *a, **k: _Files(*a, directory=str(served), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DLX_DATA_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
    yield served
    server.shutdown()
    server.server_close()


def _publish(folder, monkeypatch, corrupt=None):
    """Serve fake files and make their checksums the published ones."""
    fake_mnist(folder)
    sums = {p.name[:-3]: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    if corrupt:
        (folder / corrupt).write_bytes(b"not the published file")
    monkeypatch.setitem(
        mnist.SOURCES,
        "mnist",
        mnist.SOURCES["mnist"].__class__(md5=sums, mirrors=(), system_dir=None),
    )


def test_download_verifies_and_caches(isolated, mirror, monkeypatch):
    _publish(mirror, monkeypatch)
    (x, t), _ = datasets.load_mnist("mnist")
    assert x.shape == (20, 1, 28, 28)
    cached = sorted(p.name for p in (isolated / "cache" / "dlx" / "mnist").iterdir())
    assert cached == sorted(p.name for p in mirror.iterdir())


def test_download_with_a_bad_checksum_is_not_cached(isolated, mirror, monkeypatch):
    _publish(mirror, monkeypatch, corrupt="t10k-images-idx3-ubyte.gz")
    with pytest.raises(datasets.DatasetNotFoundError, match="checksum .* does not match"):
        datasets.load_mnist("mnist")
    cache = isolated / "cache" / "dlx" / "mnist"
    assert not (cache / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no partial files


def test_bundled_subset_is_real_and_balanced():
    (x, t), (xt, tt) = datasets.load_bundled()
    assert x.shape == (6000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28)
    assert np.bincount(t).tolist() == [600] * 10 and np.bincount(tt).tolist() == [100] * 10
    assert 0.2 < x.mean() < 0.4  # Fashion-MNIST's mean intensity is about 0.29


def test_load_dataset_by_name(tmp_path):
    folder = fake_mnist(tmp_path / "d")
    (x, _), _ = datasets.load_dataset(str(folder))
    assert len(x) == 20
    with pytest.raises(ValueError, match="dataset must be 'bundled'"):
        datasets.load_dataset("cifar")


def test_split_helpers():
    x, t = np.arange(100).reshape(50, 2), np.arange(50)
    rng = np.random.default_rng(0)
    xs, ts = datasets.shuffle(x, t, rng)
    assert np.array_equal(xs[:, 0] // 2, ts) and not np.array_equal(ts, t)
    (xa, ta), (xb, tb) = datasets.train_val_split(x, t, 0.2, rng)
    assert len(xb) == 10 and len(xa) == 40 and set(ta) | set(tb) == set(t)
    folds = datasets.kfold_indices(50, 5, rng)
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(50))
    for train, val in folds:
        assert not set(train) & set(val) and len(train) + len(val) == 50
    batches = list(datasets.iterate_minibatches(x, t, 16, shuffle=False))
    assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
    with pytest.raises(ValueError, match="k must be an int in"):
        datasets.kfold_indices(5, 6)
    with pytest.raises(ValueError, match="x has 50 samples but t has 3"):
        datasets.shuffle(x, t[:3])
