"""Tests for aae.data: IDX reading, checksums, downloads (local server only), loaders, labels."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from aae.data import idx
from aae.data import sets as datasets
from aae.data import splits as data
from aae.errors import DataError
from conftest import idx_bytes, write_idx

MNIST_STEMS = list(datasets.MNIST_SHA256)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Point every MNIST mirror at a closed local port, so no test reaches a real host."""
    monkeypatch.setattr(datasets, "MNIST_MIRRORS", ("http://127.0.0.1:9/",))
    monkeypatch.delenv("AAE_MNIST_MIRROR", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def fake_mnist(rng: np.random.Generator, n_train: int = 20, n_test: int = 8) -> dict:
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }


def patch_sums(monkeypatch, arrays: dict[str, np.ndarray]) -> None:
    sums = {k: hashlib.sha256(idx_bytes(v)).hexdigest() for k, v in arrays.items()}
    monkeypatch.setattr(datasets, "MNIST_SHA256", sums)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, suffix):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = idx.read_idx(write_idx(tmp_path / f"a-idx3-ubyte{suffix}", arr))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)
    floats = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32)
    out = idx.read_idx(write_idx(tmp_path / f"f{suffix}", floats))
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, floats)
    ints = np.array([1, -70000, 2**30], dtype=np.int32)
    np.testing.assert_array_equal(idx.read_idx(write_idx(tmp_path / f"i{suffix}", ints)), ints)


def test_read_idx_truncated_and_bad_magic(tmp_path):
    raw = idx_bytes(np.zeros((5, 4, 4), dtype=np.uint8))
    plain = tmp_path / "short-idx3-ubyte"
    plain.write_bytes(raw[:-7])
    with pytest.raises(DataError, match="short-idx3-ubyte.*truncated"):
        idx.read_idx(plain)
    gz = tmp_path / "short.gz"
    gz.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(DataError, match=r"short\.gz.*(truncated|corrupt).*re-download"):
        idx.read_idx(gz)
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(DataError, match="bad-magic.*not an IDX file"):
        idx.read_idx(bad)
    with pytest.raises(DataError, match="not found"):
        idx.read_idx(tmp_path / "nope")


def test_sha256_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert datasets.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# ----------------------------------------------------------------------------- MNIST, local files


def test_mnist_local_files_gz_and_plain(tmp_path, monkeypatch):
    arrays = fake_mnist(np.random.default_rng(1))
    patch_sums(monkeypatch, arrays)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for i, (stem, arr) in enumerate(arrays.items()):  # mix gzipped and plain files
        write_idx(folder / (stem + (".gz" if i % 2 else "")), arr)
    train, test = datasets.load_mnist(tmp_path, download=False)
    assert train.x.shape == (20, 784) and test.x.shape == (8, 784)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    img = arrays["train-images-idx3-ubyte"][3].ravel()
    np.testing.assert_allclose(train.x[3] * 255, img, atol=1e-4)
    np.testing.assert_array_equal(test.y, [7, 6, 5, 4, 3, 2, 1, 0])
    assert train.image_shape == (28, 28) and train.n_classes == 10


def test_mnist_checksum_mismatch(tmp_path, monkeypatch):
    arrays = fake_mnist(np.random.default_rng(2))
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem, arr in arrays.items():
        write_idx(folder / f"{stem}.gz", arr)  # real MNIST checksums, fake content
    with pytest.raises(DataError) as err:
        datasets.load_mnist(tmp_path, download=False)
    msg = str(err.value)
    assert "sha256" in msg and "train-images-idx3-ubyte.gz" in msg
    assert datasets.MNIST_SHA256["train-images-idx3-ubyte"] in msg and "re-download" in msg
    assert "\n" not in msg


def test_mnist_missing_without_download(tmp_path):
    with pytest.raises(DataError) as err:
        datasets.load_mnist(tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "mnist") in msg and "train-images-idx3-ubyte.gz" in msg
    assert "AAE_DATA_DIR" in msg and "download" in msg


# ----------------------------------------------------------------------------- MNIST, download


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Local HTTP server over tmp_path/www: yields (base_url, root)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def serve_mnist(root: Path, sub: str, arrays: dict[str, np.ndarray], corrupt: bool = False) -> None:
    (root / sub).mkdir()
    for stem, arr in arrays.items():
        if corrupt:
            arr = arr.copy()
            arr.flat[0] ^= 0xFF
        write_idx(root / sub / f"{stem}.gz", arr)


def test_download_from_local_mirror(tmp_path, monkeypatch, server):
    base, root = server
    arrays = fake_mnist(np.random.default_rng(3))
    patch_sums(monkeypatch, arrays)
    serve_mnist(root, "good", arrays)
    cache = tmp_path / "cache"
    monkeypatch.setattr(datasets, "MNIST_MIRRORS", (f"{base}/missing/", f"{base}/good/"))  # 404 first
    train, test = datasets.load_mnist(cache, progress=False)
    np.testing.assert_array_equal(train.y, np.arange(20) % 10)
    np.testing.assert_array_equal(
        np.round(test.x * 255).astype(np.uint8), arrays["t10k-images-idx3-ubyte"].reshape(8, -1)
    )
    assert [p.name for p in files_under(cache)] == sorted(f"{s}.gz" for s in arrays)
    # Second load uses the cache: no mirror needed.
    train2, _ = datasets.load_mnist(cache, download=False)
    np.testing.assert_array_equal(train2.x, train.x)


def test_download_corrupt_mirror_leaves_nothing(tmp_path, monkeypatch, server):
    base, root = server
    arrays = fake_mnist(np.random.default_rng(4))
    patch_sums(monkeypatch, arrays)
    serve_mnist(root, "bad", arrays, corrupt=True)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        datasets.load_mnist(cache, progress=False, mirrors=[f"{base}/bad/"])
    msg = str(err.value)
    assert "sha256" in msg and f"{base}/bad/train-images-idx3-ubyte.gz" in msg and "\n" not in msg
    assert files_under(cache) == []
    # A corrupt first mirror falls through to a good second one.
    serve_mnist(root, "good", arrays)
    train, _ = datasets.load_mnist(cache, progress=False, mirrors=[f"{base}/bad/", f"{base}/good/"])
    assert len(train) == 20 and len(files_under(cache)) == 4


def test_download_errors_name_url(tmp_path, server):
    base, _ = server
    with pytest.raises(DataError, match=f"{base}/nothing.gz.*404"):
        datasets.download(f"{base}/nothing.gz", tmp_path / "d" / "x.gz", progress=False)
    with pytest.raises(DataError, match="127.0.0.1:9"):
        datasets.download("http://127.0.0.1:9/x.gz", tmp_path / "d" / "x.gz", progress=False, timeout=5)
    assert files_under(tmp_path / "d") == []


def test_mirror_env_var(tmp_path, monkeypatch, server):
    base, root = server
    arrays = fake_mnist(np.random.default_rng(5))
    patch_sums(monkeypatch, arrays)
    serve_mnist(root, "env", arrays)
    monkeypatch.setenv("AAE_MNIST_MIRROR", f"{base}/env")
    train, test = datasets.load_mnist(tmp_path, progress=False)
    assert (len(train), len(test)) == (20, 8)


# ----------------------------------------------------------------------------- data dir


def test_default_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("AAE_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.default_data_dir() == tmp_path / "home" / ".cache" / "aae"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.default_data_dir() == tmp_path / "xdg" / "aae"
    monkeypatch.setenv("AAE_DATA_DIR", str(tmp_path / "env"))
    assert datasets.default_data_dir() == tmp_path / "env"
    assert datasets.default_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert datasets.default_data_dir(str(tmp_path / "s")) == tmp_path / "s"


# ----------------------------------------------------------------------------- digits, MNIST, SVHN


def test_digits():
    train, test = datasets.load_digits()
    assert train.x.shape == (1197, 64) and test.x.shape == (600, 64)
    assert train.x.dtype == np.float32 and train.x.min() == 0.0 and train.x.max() == 1.0
    assert train.n_classes == 10 and train.image_shape == (8, 8)
    s = datasets.load("digits", seed=3)
    assert (len(s.train), len(s.valid), len(s.test)) == (1077, 120, 600)
    rows = {tuple(r) for part in (s.train, s.valid, s.test) for r in (part.x * 16).astype(int)}
    assert len(rows) > 1700  # digits has a few duplicate images; splits are disjoint by index
    # Same seed -> same split; another seed -> another valid set, same test set.
    s2, s3 = datasets.load("digits", seed=3), datasets.load("digits", seed=4)
    np.testing.assert_array_equal(s.valid.x, s2.valid.x)
    assert not np.array_equal(s.valid.x, s3.valid.x)
    np.testing.assert_array_equal(s.test.x, s3.test.x)


def test_digits_split_indices_disjoint():
    full_x = datasets.load_digits()
    train, test = full_x
    both = np.concatenate([train.x, test.x])
    assert both.shape == (1797, 64)
    from sklearn.datasets import load_digits

    ref = np.asarray(load_digits().data, dtype=np.float32) / 16
    # Each sklearn row appears exactly as many times across train+test as in the original.
    a = np.unique(ref, axis=0, return_counts=True)
    b = np.unique(both, axis=0, return_counts=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_real_mnist(mnist_dir):
    train, test = datasets.load_mnist(mnist_dir, download=False)
    assert train.x.shape == (60000, 784) and test.x.shape == (10000, 784)
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(train.y).tolist() == counts
    assert np.bincount(test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    s = datasets.load("mnist", mnist_dir, download=False)
    assert (len(s.train), len(s.valid), len(s.test)) == (50000, 10000, 10000)
    assert s.train.y.shape == (50000,) and s.test.n_classes == 10


def test_svhn(tmp_path):
    import scipy.io

    rng = np.random.default_rng(6)
    folder = tmp_path / "svhn"
    folder.mkdir()
    X = rng.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[10], [1], [2], [9], [10]], dtype=np.uint8)
    scipy.io.savemat(folder / "train_32x32.mat", {"X": X, "y": y})
    scipy.io.savemat(folder / "test_32x32.mat", {"X": X[..., :2], "y": y[:2]})
    train, test = datasets.load_svhn(tmp_path)
    assert train.x.shape == (5, 3072) and test.x.shape == (2, 3072)
    np.testing.assert_array_equal(train.y, [0, 1, 2, 9, 0])
    np.testing.assert_allclose(train.x[1].reshape(32, 32, 3) * 255, X[..., 1], atol=1e-4)  # HWC
    assert train.image_shape == (32, 32, 3) and train.x.max() <= 1.0
    (folder / "test_32x32.mat").unlink()
    with pytest.raises(DataError, match=r"test_32x32\.mat.*ufldl"):
        datasets.load_svhn(tmp_path)


def test_unknown_name():
    with pytest.raises(DataError, match="unknown data set 'cifar'.*mnist, digits, svhn.*IDX files.*pictures"):
        datasets.load("cifar")


# ----------------------------------------------------------------------------- user arrays


def test_load_array_npy_and_npz(tmp_path):
    x = np.random.default_rng(7).integers(0, 256, (50, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "a.npy", x)
    ds = data.load_array(tmp_path / "a.npy")
    assert ds.x.shape == (50, 36) and ds.x.dtype == np.float32 and ds.y is None
    assert ds.image_shape == (6, 6) and ds.x.max() <= 1.0
    np.testing.assert_allclose(ds.x * 255, x.reshape(50, -1), atol=1e-4)
    y = np.arange(50) % 3
    y[::5] = -1
    np.savez(tmp_path / "b.npz", x=np.linspace(0, 1, 100).reshape(50, 2), y=y.astype(float))
    ds = data.load_array(tmp_path / "b.npz")
    assert ds.x.shape == (50, 2) and ds.n_classes == 3 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, y)
    s = datasets.load(str(tmp_path / "b.npz"), seed=1)
    assert (len(s.train), len(s.valid), len(s.test)) == (41, 4, 5)
    all_rows = np.concatenate([s.train.x, s.valid.x, s.test.x])
    assert len(np.unique(all_rows, axis=0)) == 50


def test_load_array_bad(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[0.1, np.nan]]))
    with pytest.raises(DataError, match=r"nan\.npy.*NaN"):
        data.load_array(tmp_path / "nan.npy")
    # real values outside [0, 1] load as they are (a gaussian decoder models them); Dataset.unit tells
    np.save(tmp_path / "range.npy", np.array([[0.0, 3.5], [-1.0, 0.5]]))
    real = data.load_array(tmp_path / "range.npy")
    np.testing.assert_array_equal(real.x, [[0.0, 3.5], [-1.0, 0.5]])
    assert not real.unit and real.x.dtype == np.float32
    np.save(tmp_path / "unit.npy", np.array([[0.0, 1.0], [0.25, 0.5]]))
    assert data.load_array(tmp_path / "unit.npy").unit
    np.savez(tmp_path / "len.npz", x=np.zeros((4, 2)), y=np.zeros(3, dtype=int))
    with pytest.raises(DataError, match=r"len\.npz\['y'\] has shape \(3,\), expected \(4,\)"):
        data.load_array(tmp_path / "len.npz")
    np.savez(tmp_path / "frac.npz", x=np.zeros((2, 2)), y=np.array([0.0, 2.5]))
    with pytest.raises(DataError, match=r"frac\.npz\['y'\]\[1\] = 2\.5"):
        data.load_array(tmp_path / "frac.npz")
    np.savez(tmp_path / "nox.npz", z=np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"nox\.npz has no key 'x'"):
        data.load_array(tmp_path / "nox.npz")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy.*pickle"):
        data.load_array(tmp_path / "obj.npy")
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((100, 10), dtype=np.float32))
    (tmp_path / "cut.npy").write_bytes(good.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cut\.npy.*(corrupt|truncated)"):
        data.load_array(tmp_path / "cut.npy")
    np.savez(tmp_path / "z.npz", x=np.zeros((100, 10)))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "z.npz").read_bytes()[:500])
    with pytest.raises(DataError, match=r"cut\.npz.*(corrupt|truncated)"):
        data.load_array(tmp_path / "cut.npz")
    (tmp_path / "junk.npy").write_bytes(b"hello world, not numpy")
    with pytest.raises(DataError, match=r"junk\.npy"):
        data.load_array(tmp_path / "junk.npy")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(DataError, match=r"flat\.npy has shape \(5,\)"):
        data.load_array(tmp_path / "flat.npy")
    with pytest.raises(DataError, match="not found"):
        data.load_array(tmp_path / "missing.npy")


# ----------------------------------------------------------------------------- labels


def test_label_budget():
    y = np.repeat(np.arange(10), 30)
    out = data.label_budget(y, 100, seed=0)
    assert out.dtype == np.int64 and (out >= 0).sum() == 100
    assert np.bincount(out[out >= 0], minlength=10).tolist() == [10] * 10
    np.testing.assert_array_equal(out[out >= 0], y[out >= 0])  # kept labels are unchanged
    np.testing.assert_array_equal(out, data.label_budget(y, 100, seed=0))
    assert not np.array_equal(out, data.label_budget(y, 100, seed=1))
    odd = data.label_budget(y, 23, seed=0)
    assert np.bincount(odd[odd >= 0], minlength=10).tolist() == [3, 3, 3] + [2] * 7
    np.testing.assert_array_equal(data.label_budget(y, None), y)
    np.testing.assert_array_equal(data.label_budget(y, 300), y)
    assert (data.label_budget(y, 0) == -1).all()
    assert data.label_budget(y, 100) is not y
    with pytest.raises(DataError, match="n_labeled=-1"):
        data.label_budget(y, -1)
    short = np.concatenate([np.repeat(np.arange(9), 40), np.full(30, 9)])  # class 9: 30 examples
    with pytest.raises(DataError, match="class 9 has only 30 labeled examples but 35 are needed"):
        data.label_budget(short, 350)


def test_check_labels():
    np.testing.assert_array_equal(data.check_labels([0, -1, 9], 10, 3), [0, -1, 9])
    out = data.check_labels(np.array([1.0, 2.0, -1.0]), 3, 3)
    assert out.dtype == np.int64 and out.tolist() == [1, 2, -1]
    msg = r"y\[1\] = 10 is not a valid label; allowed: -1 \(unlabeled\) or 0\.\.9"
    with pytest.raises(DataError, match=msg):
        data.check_labels([0, 10], 10, 2)
    with pytest.raises(DataError, match=r"y\[0\] = -2"):
        data.check_labels([-2, 0], 10, 2)
    with pytest.raises(DataError, match=r"y\[1\] = 2\.5 is not an integer"):
        data.check_labels([1.0, 2.5], 10, 2)
    with pytest.raises(DataError, match=r"y has shape \(2, 2\), expected \(2,\)"):
        data.check_labels(np.zeros((2, 2), dtype=int), 10, 2)
    with pytest.raises(DataError, match=r"labels has shape \(3,\), expected \(4,\)"):
        data.check_labels([0, 1, 2], 10, 4, where="labels")
    with pytest.raises(DataError, match="dtype"):
        data.check_labels(np.array(["a", "b"]), 10, 2)
