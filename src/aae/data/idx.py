"""IDX files, MNIST's format: one file read (gzipped or not), and a directory of them in MNIST's
layout (Fashion-MNIST, KMNIST, EMNIST's digits and any other set saved that way), read with the
same checks as MNIST but without MNIST's checksums."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from aae.data.splits import Dataset
from aae.errors import DataError, one_line

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
REDOWNLOAD = "delete it and run again to re-download"
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


MAX_FILE_BYTES = 1 << 30
"""the most bytes an IDX file may hold once unzipped (MNIST's largest: 47 MB): a small .gz can claim more"""


def read_bytes(path: Path) -> bytes:
    """File content, gunzipped if it starts with the gzip magic; at most MAX_FILE_BYTES."""
    try:
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                f.seek(0)
                with gzip.GzipFile(fileobj=f) as gz:
                    data = gz.read(MAX_FILE_BYTES + 1)
            else:
                f.seek(0)
                data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise DataError(
                f"{path} holds more than {MAX_FILE_BYTES} bytes, not an IDX file of a data set; {REDOWNLOAD}"
            )
        return data
    except FileNotFoundError:
        raise DataError(f"{path} not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is truncated or corrupt ({one_line(e)}); {REDOWNLOAD}") from e


def parse_idx(data: bytes, path: Path) -> np.ndarray:
    if len(data) < 4:
        raise DataError(f"{path} is truncated ({len(data)} bytes, no IDX header); {REDOWNLOAD}")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (magic bytes {data[:4].hex()}); {REDOWNLOAD}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated inside its IDX header; {REDOWNLOAD}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{path} has {len(data)} bytes but its IDX header {dims} needs {expected}; "
            f"the file is truncated or corrupt, {REDOWNLOAD}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or plain) into a native-endian numpy array."""
    path = Path(path)
    return parse_idx(read_bytes(path), path)


def idx_path(folder: Path, stem: str) -> Path | None:
    """The file of ``stem`` in ``folder``: plain or .gz (also the ``stem.idx3-ubyte`` spelling some
    sets use, with a dot); None where there is none."""
    for name in (stem, f"{stem}.gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def is_idx_dir(folder: Path) -> bool:
    """Whether ``folder`` holds a training image file in MNIST's layout."""
    return folder.is_dir() and idx_path(folder, IDX_STEMS[0]) is not None


def _idx_split(folder: Path, prefix: str) -> Dataset:
    found = {kind: idx_path(folder, f"{prefix}-{kind}") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")}
    missing = [f"{prefix}-{k}[.gz]" for k, v in found.items() if v is None]
    if missing:
        raise DataError(f"{folder} has no {' or '.join(missing)}; an IDX directory needs MNIST's four files")
    images, labels = read_idx(found["images-idx3-ubyte"]), read_idx(found["labels-idx1-ubyte"])
    if images.ndim not in (3, 4) or len(images) == 0:
        raise DataError(
            f"{found['images-idx3-ubyte']}: expected images (n, h, w) or (n, h, w, c), found {images.shape}"
        )
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise DataError(
            f"{found['labels-idx1-ubyte']}: expected {len(images)} integer labels to match the images, "
            f"found {labels.shape} of {labels.dtype}"
        )
    x = images.reshape(len(images), -1).astype(np.float32)
    if images.dtype == np.uint8:
        x /= 255.0
    elif x.min() < 0 or x.max() > 1:
        raise DataError(f"{found['images-idx3-ubyte']}: pixels must be bytes (0..255) or in [0, 1]")
    shape = tuple(images.shape[1:])
    return Dataset(x, labels.astype(np.int64), shape[:2] if shape[2:] == (1,) else shape, None, folder.name)


def load_idx_dir(folder: str | os.PathLike) -> tuple[Dataset, Dataset]:
    """(train, test) of a directory in MNIST's layout: ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
    gzipped or not. The classes are 0..K-1 over both files (EMNIST's letters start at 1: their
    class 0 is then simply never seen)."""
    folder = Path(folder)
    train, test = _idx_split(folder, "train"), _idx_split(folder, "t10k")
    if train.image_shape != test.image_shape:
        raise DataError(f"{folder}: train images are {train.image_shape} but t10k images are {test.image_shape}")
    n_classes = int(max(train.y.max(), test.y.max())) + 1
    train.n_classes = test.n_classes = n_classes
    return train, test
