"""A folder of pictures as a data set (PNG, JPEG and the other formats Pillow reads).

Layouts, read the first that fits:
- ``DIR/train/`` and ``DIR/test/``: the official split, each laid out as below;
- ``DIR/<class>/*.png``: one subfolder per class gives the labels, in the sorted order of the
  subfolders' names (the classes of a split must be those of the other);
- ``DIR/*.png``: no labels.

Every picture is converted to grey (where all of them are grey) or RGB (alpha dropped) and, with
``image_size``, resized to it (Pillow's bicubic resampling); without it they must all have one size.
Decoding is done once: the arrays are cached under the data directory, keyed by the folder's
listing (each file's relative path, size and modification time) and the size asked for, so a file
added, removed or rewritten decodes the folder again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from aae.data.splits import Dataset
from aae.errors import DataError, one_line
from aae.files import atomic_write

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CACHE_FORMAT = 1
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _pictures(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS
    )


def _classes(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def listing(folder: Path) -> list[tuple[Path, str | None]]:
    """Every picture of one split with its class name (None for a flat folder)."""
    flat, classes = _pictures(folder), _classes(folder)
    if flat and classes:
        raise DataError(
            f"{folder} holds both pictures and subfolders ({flat[0].name}, {classes[0].name}/); put every "
            "picture in a class subfolder, or none of them"
        )
    items = [(p, None) for p in flat] + [(p, c.name) for c in classes for p in _pictures(c)]
    if not items:
        raise DataError(f"{folder} has no pictures ({', '.join(EXTENSIONS)}), directly or in class subfolders")
    return items


def _decode(path: Path, size: tuple[int, int] | None):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            out = im.convert("L" if im.mode in GREY_MODES else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path} is not a readable picture ({one_line(e)}); remove or replace it") from None
    if size is not None and out.size != (size[1], size[0]):
        out = out.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return out


def decode_split(items: list[tuple[Path, str | None]], size: tuple[int, int] | None) -> tuple[np.ndarray, list]:
    """(n, h, w, c) uint8 pictures and their class names."""
    pictures = [_decode(p, size) for p, _ in items]
    first = pictures[0]
    for (path, _), pic in zip(items, pictures):
        if pic.size != first.size:
            raise DataError(
                f"{path} is {pic.size[0]}x{pic.size[1]} pixels but {items[0][0]} is {first.size[0]}x{first.size[1]}; "
                "set data.image_size = [height, width] to resize them all"
            )
    colour = any(p.mode == "RGB" for p in pictures)
    arrays = [np.asarray(p.convert("RGB") if colour else p) for p in pictures]
    x = np.stack(arrays)
    return (x if colour else x[..., None]), [c for _, c in items]


def _cache_key(splits: dict[str, list[tuple[Path, str | None]]], root: Path, size) -> str:
    h = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, "size": size}).encode())
    for name, items in splits.items():
        for path, _ in items:
            st = path.stat()
            h.update(f"{name}\0{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache atomically (never through a link); one that cannot be written only costs the
    next run a decode."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        atomic_write(path, buffer.getvalue())
    except OSError:
        pass


def load_image_folder(
    folder: str | os.PathLike, image_size: tuple[int, int] | None, cache_dir: Path | None
) -> tuple[Dataset, Dataset | None]:
    """(train, test or None) of a folder of pictures; test is None where the folder has no
    ``train/`` and ``test/`` split (the caller carves one)."""
    root = Path(folder)
    split_dirs = {"train": root / "train", "test": root / "test"}
    if not all(d.is_dir() for d in split_dirs.values()):
        split_dirs = {"train": root}
    items = {name: listing(d) for name, d in split_dirs.items()}
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    cache = None if cache_dir is None else cache_dir / "images" / f"{_cache_key(items, root, size)}.npz"
    arrays = None
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception:  # a damaged cache is decoded again
            arrays = None
    if arrays is None:
        arrays = {}
        for name, split in items.items():
            arrays[f"x_{name}"], classes = decode_split(split, size)
            arrays[f"c_{name}"] = np.array([c or "" for c in classes])
        if cache is not None:
            _save_cache(cache, arrays)
    names = sorted({str(c) for k, v in arrays.items() if k.startswith("c_") for c in v} - {""})
    shapes = {arrays[f"x_{n}"].shape[1:] for n in items}
    if len(shapes) > 1:
        raise DataError(
            f"{root}: train and test pictures differ in size or colour {sorted(shapes)}; set data.image_size"
        )
    index = {c: i for i, c in enumerate(names)}
    out = []
    for name in items:
        x, classes = arrays[f"x_{name}"], arrays[f"c_{name}"]
        y = np.array([index.get(str(c), -1) for c in classes], dtype=np.int64) if names else None
        shape = x.shape[1:]
        flat = x.reshape(len(x), -1).astype(np.float32) / np.float32(255)
        out.append(Dataset(flat, y, shape[:2] if shape[2] == 1 else shape, len(names) or None, root.name))
    return out[0], (out[1] if len(out) > 1 else None)
