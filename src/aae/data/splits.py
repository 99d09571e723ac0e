"""Datasets as arrays: the :class:`Dataset` type, user .npy/.npz arrays, labels and splits.

A :class:`Dataset`'s ``x`` is float32 of shape (n, d) with pixels in [0, 1] (images
flattened, HWC order for colour) and its ``y`` is int64 with -1 marking an unlabeled
point.  The named datasets (MNIST, digits, SVHN) are read by :mod:`aae.data.sets`.
Anything wrong with a file raises :class:`aae.errors.DataError` with a one-line
message naming the file and what to do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aae.errors import DataError, one_line


@dataclass
class Dataset:
    """Flattened float32 features in [0, 1], optional int64 labels (-1 = unlabeled)."""

    x: np.ndarray
    y: np.ndarray | None
    image_shape: tuple[int, ...] | None
    n_classes: int | None
    name: str = ""

    def __post_init__(self) -> None:
        if self.x.ndim != 2:
            raise DataError(f"dataset {self.name!r}: x has shape {self.x.shape}, expected (n, d)")
        if self.y is not None and self.y.shape != (len(self.x),):
            raise DataError(f"dataset {self.name!r}: y has shape {self.y.shape}, expected ({len(self.x)},)")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def unit(self) -> bool:
        """Whether every value lies in [0, 1] (what a Bernoulli decoder can model)."""
        return bool(len(self.x) == 0 or (self.x.min() >= 0 and self.x.max() <= 1))

    def subset(self, idx: np.ndarray | slice | Sequence[int]) -> Dataset:
        """Rows ``idx`` (index array or slice) as a new Dataset."""
        if not isinstance(idx, slice):
            idx = np.asarray(idx, dtype=np.int64)
        y = None if self.y is None else self.y[idx]
        return Dataset(self.x[idx], y, self.image_shape, self.n_classes, self.name)


@dataclass
class Splits:
    """Train / validation / test datasets."""

    train: Dataset
    valid: Dataset
    test: Dataset


# ----------------------------------------------------------------------------- user arrays


def _features(x: np.ndarray, where: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    if x.ndim < 2 or x.shape[0] == 0 or math.prod(x.shape[1:]) == 0:
        raise DataError(f"{where} has shape {x.shape}, expected (n, features) or (n, h, w[, c]) with n > 0")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where} has dtype {x.dtype}, expected numbers")
    image_shape: tuple[int, ...] | None = None
    if x.ndim == 3 or (x.ndim == 4 and x.shape[3] in (1, 3)):
        image_shape = tuple(x.shape[1:3]) if x.ndim == 4 and x.shape[3] == 1 else tuple(x.shape[1:])
    flat = x.reshape(len(x), -1)
    if x.dtype.kind == "f" and not np.isfinite(flat).all():
        raise DataError(f"{where} contains NaN or infinite values; clean the data first")
    lo, hi = float(flat.min()), float(flat.max())
    out = flat.astype(np.float32)
    if lo >= 0 and hi <= 1:
        return out, image_shape
    if x.dtype.kind in "iu" and lo >= 0 and hi <= 255:
        out /= 255.0  # 8-bit pixels
    return out, image_shape  # other real values as they are: a Gaussian decoder models them


def _is_npy_of_objects(path: Path) -> bool:
    """Whether ``path`` is a well-formed .npy (or .npz member) header of dtype object, as opposed to
    bytes that numpy fails to parse and then blames on pickling."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    return head.startswith(b"PK") or (head.startswith(b"\x93NUMPY") and b"'|O'" in head)


MAX_ELEMENTS = 500_000_000
"""the most values an array file may hold (2 GB as float32; MNIST's training images are 47 million)"""


def _check_sizes(path: Path) -> None:
    """Refuse, from the headers alone, an array file whose arrays would hold more than MAX_ELEMENTS
    values (a .npz decompresses: a small file can claim a huge array). Headers that do not parse are
    left to the loader's own error."""
    import zipfile

    def check(f, where: str) -> None:
        try:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f, max_header_size=10_000)
        except (ValueError, OSError, SyntaxError, TypeError, EOFError):
            return
        values = math.prod(shape) * max(1, dtype.itemsize // 4)
        if values > MAX_ELEMENTS:
            raise DataError(
                f"{where} claims an array of shape {shape} ({dtype}), more than {MAX_ELEMENTS:.0e} values; "
                f"give a smaller array (or data.subset)"
            )

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    with z.open(name) as f:
                        check(f, f"{path}[{name!r}]")
        else:
            with open(path, "rb") as f:
                check(f, str(path))
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError):
        return


def load_array(path: str | os.PathLike) -> Dataset:
    """A user .npy (features) or .npz (keys ``x`` and optional ``y``) as a Dataset; an .npz's
    ``x_test``/``y_test`` are left out (see :func:`load_arrays`)."""
    return load_arrays(path)[0]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        if "x" not in z.files:
            keys = ", ".join(z.files) or "none"
            raise DataError(f"{path} has no key 'x' (keys: {keys}); save it with np.savez(path, x=..., y=...)")
        return {k: z[k] for k in ("x", "y", "x_test", "y_test") if k in z.files}


def load_arrays(path: str | os.PathLike) -> tuple[Dataset, Dataset | None]:
    """A user .npy (features) or .npz (keys ``x`` and optional ``y``, ``x_test``, ``y_test``) as
    (train, test), test None where the file has no ``x_test``.

    Features are flattened to float32; integer pixels in 0..255 are divided by 255, other
    finite values are kept (values outside [0, 1] need ``model.output = "gaussian"``).
    Arrays shaped (n, h, w) or (n, h, w, 1|3) keep their image_shape.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found; give the path of an existing .npy or .npz file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .npy or .npz")
    _check_sizes(path)
    try:
        arrays = {"x": np.load(path, allow_pickle=False)} if suffix == ".npy" else _read_npz(path)
    except DataError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) and _is_npy_of_objects(path):
            raise DataError(
                f"{path} holds pickled Python objects, which are not loaded for safety; save plain numeric arrays"
            ) from e
        detail = "" if "allow_pickle" in str(e) else f" ({one_line(e)})"  # numpy's guess at bytes it cannot parse
        raise DataError(f"{path} is corrupt or not a numpy file{detail}; save it again with np.save") from e
    except Exception as e:  # zipfile, EOF, OS errors from a truncated file
        raise DataError(f"{path} is corrupt or truncated ({type(e).__name__}: {one_line(e)}); save it again") from e
    where = (lambda k: str(path)) if suffix == ".npy" else (lambda k: f"{path}['{k}']")
    if "y_test" in arrays and "x_test" not in arrays:
        raise DataError(f"{path} has 'y_test' but no 'x_test'; save the test images beside their labels")
    parts = []
    for xk, yk in (("x", "y"), ("x_test", "y_test")):
        if xk not in arrays:
            continue
        feats, image_shape = _features(arrays[xk], where(xk))
        y = None
        if yk in arrays:
            y = _integer_labels(arrays[yk], len(feats), where(yk))
            if (y < -1).any():
                raise DataError(f"{where(yk)} has label {int(y.min())}; use -1 for unlabeled, 0..K-1 for classes")
        parts.append(Dataset(feats, y, image_shape, None, path.stem))
    if len(parts) == 2 and parts[0].x.shape[1] != parts[1].x.shape[1]:
        raise DataError(f"{where('x_test')} has rows of {parts[1].x.shape[1]} values but 'x' has {parts[0].x.shape[1]}")
    labels = [d.y[d.y >= 0] for d in parts if d.y is not None]
    n_classes = int(max(a.max() for a in labels if a.size)) + 1 if any(a.size for a in labels) else None
    for d in parts:
        d.n_classes = n_classes
    return parts[0], (parts[1] if len(parts) == 2 else None)


# ----------------------------------------------------------------------------- labels


def _integer_labels(y: object, n: int, where: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise DataError(f"{where} has shape {arr.shape}, expected ({n},)")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind != "f":
        raise DataError(f"{where} has dtype {arr.dtype}, expected integer class labels")
    bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where}[{i}] = {arr[i]} is not an integer class label")
    return arr.astype(np.int64)


def check_labels(y: object, n_classes: int, n: int, where: str = "y") -> np.ndarray:
    """Validate labels: shape (n,), integer-valued, each in {-1, 0..n_classes-1}; return int64."""
    out = _integer_labels(y, n, where)
    bad = np.flatnonzero((out < -1) | (out >= n_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where}[{i}] = {out[i]} is not a valid label; allowed: -1 (unlabeled) or 0..{n_classes - 1}")
    return out


def labels_for_regime(labels: object, n: int, n_classes: int, need: str):
    """Training labels checked against what a regime needs (none, optional, some, all), as a
    LongTensor (-1 unlabeled), or None where there are none."""
    import torch

    if labels is None:
        if need in ("all", "some"):
            raise DataError(f"this regime needs labels ({need}); pass y (with -1 for unlabeled points)")
        return None
    y = check_labels(np.asarray(labels), n_classes, n)
    if need == "all" and (y < 0).any():
        raise DataError(f"the supervised regime needs every label; {int((y < 0).sum())} of {n} are -1")
    if need in ("some", "all") and not (y >= 0).any():
        raise DataError(
            "the semi-supervised regime needs at least one labeled point; for none use the clustering regime"
        )
    if need == "optional" and not (y >= 0).any():
        raise DataError("every training label is -1 (unlabeled); label some points, or train without labels")
    return torch.from_numpy(y)


def label_budget(y: np.ndarray, n_labeled: int | None, seed: int = 0, n_classes: int | None = None) -> np.ndarray:
    """Copy of ``y`` keeping only ``n_labeled`` labels, balanced across classes, seeded.

    Class c keeps ``n_labeled // n_classes`` labels, plus one for the first
    ``n_labeled % n_classes`` classes; the rest become -1.
    """
    y = np.asarray(y)
    if n_classes is None:
        n_classes = int(y.max()) + 1 if y.size and (y >= 0).any() else 0
    if n_labeled is not None and n_labeled < 0:
        raise DataError(f"n_labeled={n_labeled} must be >= 0 (or None for all labels)")
    y = check_labels(y, n_classes, len(y), "y")
    if n_labeled is None or n_labeled >= int((y >= 0).sum()):
        return y
    rng = np.random.default_rng(seed)
    base, extra = divmod(int(n_labeled), n_classes)
    out = np.full_like(y, -1)
    for c in range(n_classes):
        want = base + (1 if c < extra else 0)
        idx = np.flatnonzero(y == c)
        if len(idx) < want:
            raise DataError(
                f"class {c} has only {len(idx)} labeled examples but {want} are needed "
                f"for n_labeled={n_labeled} balanced over {n_classes} classes; "
                "lower n_labeled"
            )
        keep = rng.choice(idx, size=want, replace=False)
        out[keep] = c
    return out


# ----------------------------------------------------------------------------- splits


def carve(ds: Dataset, size: int, seed: int) -> tuple[Dataset, Dataset]:
    """(rest, carved) with ``size`` rows chosen by a seeded permutation; order kept."""
    perm = np.random.default_rng(seed).permutation(len(ds))
    return ds.subset(np.sort(perm[size:])), ds.subset(np.sort(perm[:size]))
