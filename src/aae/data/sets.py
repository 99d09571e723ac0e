"""Named datasets: MNIST (downloaded and checksummed), sklearn digits, SVHN, and the
name-to-loader dispatcher :func:`load` that also takes a user .npy/.npz file.

Every loader returns :class:`aae.data.splits.Dataset` objects; anything wrong with a file raises
:class:`aae.errors.DataError` with a one-line message naming the file and what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from aae._version import __version__
from aae.data.idx import REDOWNLOAD, is_idx_dir, load_idx_dir, parse_idx, read_bytes
from aae.data.images import load_image_folder
from aae.data.splits import Dataset, Splits, carve, load_arrays
from aae.errors import DataError, one_line
from aae.files import file_mode

DATASETS = ("mnist", "digits", "svhn")

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# SHA-256 of the *decompressed* IDX files.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
DIGITS_TEST_SIZE = 600  # of sklearn's 1797 digits; fixed split (seed 0)
GENERIC_TEST_FRACTION = 0.1  # test part carved (seed 0) from a user array


def default_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Data root: ``explicit`` > $AAE_DATA_DIR > $XDG_CACHE_HOME/aae > ~/.cache/aae."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    if env := os.environ.get("AAE_DATA_DIR"):
        return Path(env).expanduser()
    if (xdg := os.environ.get("XDG_CACHE_HOME")) and os.path.isabs(xdg):
        return Path(xdg) / "aae"
    return Path.home() / ".cache" / "aae"


# ----------------------------------------------------------------------------- files


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    progress: bool = True,
    timeout: float = 30,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Fetch ``url`` to ``dest`` atomically (temp file + os.replace).

    ``check(tmp_path)`` may raise DataError to reject the content before it
    lands; nothing is left behind on any failure.
    """
    import http.client
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise DataError(f"cannot write to {dest.parent} to download {url}: {one_line(e)}") from e
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": f"aae/{__version__}"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                n = 0
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False
                ) as bar:
                    while chunk := resp.read(1 << 16):
                        out.write(chunk)
                        n += len(chunk)
                        bar.update(len(chunk))
        if total is not None and n != total:
            raise DataError(f"download of {url} stopped after {n} of {total} bytes; run again")
        if check is not None:
            try:
                check(tmp)
            except DataError as e:
                raise DataError(f"download of {url} rejected: {e}") from e
        os.chmod(tmp, file_mode())  # what the umask gives, as open() would
        os.replace(tmp, dest)
    except DataError:
        raise
    except urllib.error.HTTPError as e:
        raise DataError(f"could not download {url}: HTTP {e.code} {one_line(e.reason)}") from e
    except urllib.error.URLError as e:
        raise DataError(f"could not download {url}: {one_line(e.reason)}") from e
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DataError(f"could not download {url}: {one_line(e) or type(e).__name__}") from e
    finally:
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- MNIST


def _gz_sha256_check(expected: str) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        try:
            data = gzip.decompress(tmp.read_bytes())
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"not a valid gzip file ({one_line(e)})") from e
        found = hashlib.sha256(data).hexdigest()
        if found != expected:
            raise DataError(f"sha256 checksum mismatch (expected {expected}, found {found})")

    return check


def _mnist_mirrors(mirrors: Sequence[str] | None) -> tuple[str, ...]:
    if mirrors is not None:
        return tuple(mirrors)
    if env := os.environ.get("AAE_MNIST_MIRROR"):
        return tuple(m.strip() for m in env.split(",") if m.strip())
    return tuple(MNIST_MIRRORS)


def _fetch_mnist_file(folder: Path, stem: str, mirrors: Sequence[str], progress: bool) -> None:
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + stem + ".gz"
        try:
            download(url, folder / f"{stem}.gz", progress=progress, check=_gz_sha256_check(MNIST_SHA256[stem]))
            return
        except DataError as e:
            errors.append(str(e))
    detail = "; ".join(errors) if errors else "no mirrors configured"
    raise DataError(
        f"MNIST download of {stem}.gz failed ({detail}); check the network, set AAE_MNIST_MIRROR, "
        f"or put the MNIST files in {folder} yourself"
    )


def _read_mnist_file(folder: Path, stem: str) -> np.ndarray:
    path = folder / stem if (folder / stem).is_file() else folder / f"{stem}.gz"
    data = read_bytes(path)
    found, expected = hashlib.sha256(data).hexdigest(), MNIST_SHA256[stem]
    if found != expected:
        raise DataError(f"{path}: sha256 checksum mismatch (expected {expected}, found {found}); {REDOWNLOAD}")
    return parse_idx(data, path)


def _mnist_split(folder: Path, prefix: str, name: str) -> Dataset:
    images = _read_mnist_file(folder, f"{prefix}-images-idx3-ubyte")
    labels = _read_mnist_file(folder, f"{prefix}-labels-idx1-ubyte")
    if images.ndim != 3 or labels.shape != (len(images),) or (labels.size and labels.max() > 9):
        raise DataError(
            f"MNIST {prefix} files in {folder} do not match (images {images.shape}, "
            f"labels {labels.shape}); {REDOWNLOAD}"
        )
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= 255.0
    return Dataset(x, labels.astype(np.int64), tuple(images.shape[1:]), 10, name)


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
) -> tuple[Dataset, Dataset]:
    """MNIST (train 60000, test 10000) from ``<data_dir>/mnist``, downloading if allowed.

    Mirrors: ``mirrors`` > $AAE_MNIST_MIRROR (comma-separated) > MNIST_MIRRORS.
    """
    folder = default_data_dir(data_dir) / "mnist"
    missing = [s for s in MNIST_SHA256 if not (folder / s).is_file() and not (folder / f"{s}.gz").is_file()]
    if missing and not download:
        names = ", ".join(f"{s}.gz" for s in missing)
        raise DataError(
            f"MNIST not found in {folder} (expected {names}, gzipped or not); "
            "pass --data-dir DIR or set AAE_DATA_DIR, or allow download"
        )
    urls = _mnist_mirrors(mirrors)
    for stem in missing:
        _fetch_mnist_file(folder, stem, urls, progress)
    return _mnist_split(folder, "train", "mnist"), _mnist_split(folder, "t10k", "mnist")


# ----------------------------------------------------------------------------- digits, SVHN


def load_digits() -> tuple[Dataset, Dataset]:
    """sklearn's 8x8 digits, pixels /16; fixed seed-0 split: 1197 train, 600 test."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = np.asarray(bunch.data, dtype=np.float32) / np.float32(16)
    full = Dataset(x, np.asarray(bunch.target, dtype=np.int64), (8, 8), 10, "digits")
    perm = np.random.default_rng(0).permutation(len(full))
    test_idx, train_idx = np.sort(perm[:DIGITS_TEST_SIZE]), np.sort(perm[DIGITS_TEST_SIZE:])
    return full.subset(train_idx), full.subset(test_idx)


def _svhn_split(path: Path) -> Dataset:
    import scipy.io

    if not path.is_file():
        raise DataError(
            f"SVHN file {path} not found (expected train_32x32.mat and test_32x32.mat in "
            f"{path.parent}); SVHN is not downloaded automatically, get them from {SVHN_URL}"
        )
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises many types for a bad .mat
        raise DataError(f"{path} is not a readable .mat file ({one_line(e)}); download it again from {SVHN_URL}") from e
    X, y = mat.get("X"), mat.get("y")
    if X is None or y is None or X.ndim != 4 or X.shape[:3] != (32, 32, 3) or y.size != X.shape[3]:
        shapes = (getattr(X, "shape", None), getattr(y, "shape", None))
        raise DataError(f"{path}: expected X (32, 32, 3, N) and y (N, 1), found {shapes}")
    labels = np.asarray(y).reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"{path}: labels must be 1..10 (10 = digit 0), found {labels.min()}..{labels.max()}")
    labels[labels == 10] = 0
    x = np.transpose(X, (3, 0, 1, 2)).reshape(X.shape[3], -1).astype(np.float32)
    x /= 255.0
    return Dataset(x, labels, (32, 32, 3), 10, "svhn")


def load_svhn(data_dir: str | os.PathLike | None = None) -> tuple[Dataset, Dataset]:
    """SVHN cropped digits from ``<data_dir>/svhn/{train,test}_32x32.mat`` (no download)."""
    folder = default_data_dir(data_dir) / "svhn"
    return _svhn_split(folder / "train_32x32.mat"), _svhn_split(folder / "test_32x32.mat")


# ----------------------------------------------------------------------------- by name


def load(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    valid_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
    image_size: int | Sequence[int] | None = None,
) -> Splits:
    """Train/valid/test splits of a named data set, an IDX directory in MNIST's layout, a folder
    of pictures, or a .npy/.npz file (a named set wins over a folder of its name: write ./mnist).

    The test set is the official one (MNIST t10k, an IDX directory's t10k files, SVHN
    test_32x32.mat, a picture folder's ``test/``, an .npz's ``x_test``; digits: a fixed 600-image
    split; otherwise a fixed seed-0 10%). The validation set is carved from train with ``seed``:
    ``valid_size`` rows, by default a sixth of train for MNIST and IDX directories (MNIST's
    50k/10k) and 10% of train otherwise. ``image_size`` (pixels, or [height, width]) resizes a
    picture folder's images.
    """
    key, path = str(name).lower(), Path(name).expanduser()
    test, mnist_layout = None, key == "mnist"
    if key == "mnist":
        train, test = load_mnist(data_dir, download=download, progress=progress)
    elif key == "digits":
        train, test = load_digits()
    elif key == "svhn":
        train, test = load_svhn(data_dir)
    elif path.is_dir() and is_idx_dir(path):
        train, test = load_idx_dir(path)
        mnist_layout = True
    elif path.is_dir():
        size = None if image_size is None else _pixels(image_size)
        train, test = load_image_folder(path, size, default_data_dir(data_dir) / "cache")
    elif path.suffix.lower() in (".npy", ".npz") or path.is_file():
        train, test = load_arrays(path)
    else:
        raise DataError(
            f"unknown data set {name!r}; use one of {', '.join(DATASETS)}, a .npy/.npz file, a directory of "
            "IDX files in MNIST's layout, or a folder of pictures"
        )
    if test is None:
        train, test = carve(train, int(round(GENERIC_TEST_FRACTION * len(train))), 0)
    if valid_size is None:
        valid_size = len(train) // 6 if mnist_layout else int(round(0.1 * len(train)))
    if (
        isinstance(valid_size, bool)
        or not isinstance(valid_size, (int, np.integer))
        or not 0 <= valid_size < len(train)
    ):
        raise DataError(
            f"valid_size={valid_size!r} must be an integer in 0..{len(train) - 1} "
            f"for {name} ({len(train)} training examples)"
        )
    train, valid = carve(train, int(valid_size), seed)
    return Splits(train, valid, test)


def _pixels(size: int | Sequence[int]) -> tuple[int, int]:
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(hw) != 2 or not all(isinstance(s, (int, np.integer)) and 4 <= s <= 4096 for s in hw):
        raise DataError(f"data.image_size = {size!r} must be a side in pixels or [height, width], each 4..4096")
    return int(hw[0]), int(hw[1])
