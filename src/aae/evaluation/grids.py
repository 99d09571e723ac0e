"""Pictures made of images: image grids, reconstructions, style grids, cluster heads, 2-D manifolds;
and the making and saving of figures that :mod:`aae.evaluation.charts` (charts on axes) shares.

Every picture function writes one PNG to ``path`` (creating parent directories), returns the
:class:`pathlib.Path`, and releases its figure. Figures are built with
``matplotlib.figure.Figure`` + ``FigureCanvasAgg`` (:func:`new_figure`, :func:`save_figure`), so
no pyplot state or global backend is touched; matplotlib is imported only when a picture is made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aae.errors import ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["image_grid", "manifold", "reconstructions", "style_grid", "cluster_heads_grid"]

_BLANK = 1.0  # value of gaps and empty cells (white)


# --------------------------------------------------------------------------- helpers
def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a numpy array (a torch tensor detached and moved to the CPU first)."""
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_shape(image_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(v) for v in image_shape)
    ok = len(shape) == 2 or (len(shape) == 3 and (shape[2] in (1, 3) or shape[0] in (1, 3)))
    if not ok or min(shape) < 1:
        raise ConfigError(f"image_shape must be (H, W), (H, W, C) or (C, H, W) with C in (1, 3), got {image_shape!r}")
    return shape


def _images(images: Any, image_shape: Sequence[int], name: str = "images") -> np.ndarray:
    """(n, d) or (n, *image_shape) -> (n, H, W) or (n, H, W, 3) float in [0, 1]."""
    shape = _check_shape(image_shape)
    arr = to_numpy(images).astype(np.float64)
    if arr.ndim < 2:
        raise DataError(f"{name} must be (n, d) with one flat image per row, got shape {arr.shape}")
    arr = arr.reshape(len(arr), -1)
    d = int(np.prod(shape))
    if arr.shape[1] != d:
        raise DataError(f"{name} have {arr.shape[1]} values per image but image_shape={shape} needs {d}")
    arr = np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0).reshape(len(arr), *shape)
    if len(shape) == 3 and shape[2] not in (1, 3):  # channels first -> last
        arr = arr.transpose(0, 2, 3, 1)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    return arr


def _tile(
    cells: list[list[np.ndarray | None]],
    cell_shape: tuple[int, ...],
    gap: int = 1,
    col_gaps: dict[int, int] | None = None,
) -> np.ndarray:
    """Tile a ragged grid of images (None = blank) with ``gap`` pixels between cells.

    ``col_gaps`` maps a column index to a wider gap placed after that column.
    """
    h, w = cell_shape[:2]
    nrow, ncol = len(cells), max(len(r) for r in cells)
    col_gaps = col_gaps or {}
    xs = [0]
    for c in range(1, ncol):
        xs.append(xs[-1] + w + col_gaps.get(c - 1, gap))
    canvas = np.full((nrow * h + (nrow - 1) * gap, xs[-1] + w, *cell_shape[2:]), _BLANK)
    for r, row in enumerate(cells):
        for c, img in enumerate(row):
            if img is not None:
                y0 = r * (h + gap)
                canvas[y0 : y0 + h, xs[c] : xs[c] + w] = img
    return canvas


def new_figure(figsize: tuple[float, float], layout: str | None = None) -> Figure:
    """A figure on its own Agg canvas, outside pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` (creating parent directories; atomically and never
    through a link, :func:`aae.files.atomic_write`), clear it, return the path."""
    import io

    from ..files import atomic_write

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.05)
    finally:
        fig.clear()
    return atomic_write(path, buf.getvalue())


def _show_canvas(
    canvas: np.ndarray,
    path: str | Path,
    *,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    row_pos: Sequence[float] | None = None,
    col_labels: Sequence[str] | None = None,
    col_pos: Sequence[float] | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Path:
    """Draw a tiled canvas without ticks (except optional row/column labels) and save it."""
    ch, cw = canvas.shape[:2]
    scale = min(4.0, max(1.0, 900.0 / max(ch, cw))) / 100.0  # inches per canvas pixel
    fig = new_figure((max(cw * scale, 1.0), max(ch * scale, 1.0)))
    ax = fig.add_axes((0, 0, 1, 1))
    if canvas.ndim == 2:
        ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks(list(col_pos) if col_labels is not None else [])
    ax.set_yticks(list(row_pos) if row_labels is not None else [])
    if col_labels is not None:
        ax.set_xticklabels([str(v) for v in col_labels], fontsize=8)
        ax.xaxis.tick_top()
    if row_labels is not None:
        ax.set_yticklabels([str(v) for v in row_labels], fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)
    if title:
        ax.set_title(title, fontsize=10, pad=14 if col_labels is not None else 6)
    return save_figure(fig, path)


def _centres(n: int, size: int, gap: int = 1) -> list[float]:
    return [i * (size + gap) + (size - 1) / 2 for i in range(n)]


def _check_tick_labels(labels: Sequence[Any] | None, n: int, name: str) -> None:
    if labels is not None and len(labels) != n:
        raise ConfigError(f"{name} must have {n} entries (one per {name[:3]}), got {len(labels)}")


# --------------------------------------------------------------------------- pictures of images
def image_grid(
    images: Any,
    path: str | Path,
    *,
    image_shape: Sequence[int],
    nrow: int | None = None,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
) -> Path:
    """Tile flat images (n, d) in [0, 1] into ``nrow`` rows (default: about square) with 1-px gaps."""
    imgs = _images(images, image_shape)
    n = len(imgs)
    if n == 0:
        raise DataError("images is empty; need at least one image")
    if nrow is None:
        nrow = math.ceil(n / math.ceil(math.sqrt(n)))
    if int(nrow) < 1 or int(nrow) > n:
        raise ConfigError(f"nrow must be an integer in 1..{n} (the number of images), got {nrow!r}")
    nrow = int(nrow)
    ncol = math.ceil(n / nrow)
    _check_tick_labels(row_labels, nrow, "row_labels")
    _check_tick_labels(col_labels, ncol, "col_labels")
    cells = [[imgs[r * ncol + c] if r * ncol + c < n else None for c in range(ncol)] for r in range(nrow)]
    canvas = _tile(cells, imgs.shape[1:])
    h, w = imgs.shape[1:3]
    return _show_canvas(
        canvas,
        path,
        title=title,
        row_labels=row_labels,
        row_pos=_centres(nrow, h),
        col_labels=col_labels,
        col_pos=_centres(ncol, w),
    )


def reconstructions(
    x: Any, x_hat: Any, path: str | Path, *, image_shape: Sequence[int], n: int = 10, title: str | None = None
) -> Path:
    """Originals above their reconstructions; for ``n > 10``, pairs of rows of 10."""
    a, b = _images(x, image_shape, "x"), _images(x_hat, image_shape, "x_hat")
    if len(a) != len(b):
        raise DataError(f"x and x_hat must have the same number of images, got {len(a)} and {len(b)}")
    if int(n) < 1:
        raise ConfigError(f"n must be an integer >= 1, got {n!r}")
    n = min(int(n), len(a))
    if n == 0:
        raise DataError("x is empty; need at least one image")
    per_row = min(n, 10)
    cells: list[list[np.ndarray | None]] = []
    for start in range(0, n, per_row):
        idx = range(start, min(start + per_row, n))
        cells.append([a[i] for i in idx])
        cells.append([b[i] for i in idx])
    canvas = _tile(cells, a.shape[1:])
    h = a.shape[1]
    labels = ["original", "reconstruction"] * (len(cells) // 2)
    return _show_canvas(canvas, path, title=title, row_labels=labels, row_pos=_centres(len(cells), h))


def style_grid(
    images: Any,
    path: str | Path,
    *,
    image_shape: Sequence[int],
    n_styles: int,
    n_classes: int,
    title: str | None = None,
) -> Path:
    """Style-major grid (row = one style, column = one class), columns labelled 0..n_classes-1."""
    if int(n_styles) < 1 or int(n_classes) < 1:
        raise ConfigError(f"n_styles and n_classes must be integers >= 1, got {n_styles!r} and {n_classes!r}")
    imgs = _images(images, image_shape)
    if len(imgs) != n_styles * n_classes:
        raise DataError(f"images must hold n_styles*n_classes = {n_styles * n_classes} images, got {len(imgs)}")
    return image_grid(
        imgs.reshape(len(imgs), -1),
        path,
        image_shape=imgs.shape[1:],
        nrow=n_styles,
        title=title,
        col_labels=[str(c) for c in range(n_classes)],
    )


def cluster_heads_grid(
    heads: Any,
    members: Sequence[Any],
    path: str | Path,
    *,
    image_shape: Sequence[int],
    title: str | None = None,
    max_members: int = 10,
) -> Path:
    """Row i: the cluster head image, a wide separator gap, then up to ``max_members`` members."""
    if int(max_members) < 1:
        raise ConfigError(f"max_members must be an integer >= 1, got {max_members!r}")
    hd = _images(heads, image_shape, "heads")
    if len(hd) == 0:
        raise DataError("heads is empty; need one image per cluster")
    if len(members) != len(hd):
        raise DataError(f"members must be a list of {len(hd)} arrays (one per head), got {len(members)}")
    cells: list[list[np.ndarray | None]] = []
    for i, mem in enumerate(members):
        m = to_numpy(mem)
        row: list[np.ndarray | None] = [hd[i]]
        if m.size > 0:
            m = m[None] if m.ndim == 1 else m  # a single flat image
            row += list(_images(m, image_shape, f"members[{i}]")[:max_members])
        row += [None] * (1 + max_members - len(row))
        cells.append(row)
    w = hd.shape[2]
    sep = max(4, w // 3)
    canvas = _tile(cells, hd.shape[1:], col_gaps={0: sep})
    return _show_canvas(
        canvas, path, title=title, row_labels=[str(i) for i in range(len(hd))], row_pos=_centres(len(hd), hd.shape[1])
    )


def manifold(
    decode: Callable[[np.ndarray], Any],
    path: str | Path,
    *,
    image_shape: Sequence[int],
    extent: Sequence[float] = (-3, 3, -3, 3),
    n: int = 20,
    title: str | None = None,
) -> Path:
    """Decode a regular n x n grid of 2-D codes over ``extent`` = (x0, x1, y0, y1); top row = largest y."""
    if len(extent) != 4 or not (extent[0] < extent[1] and extent[2] < extent[3]):
        raise ConfigError(f"extent must be (x0, x1, y0, y1) with x0 < x1 and y0 < y1, got {extent!r}")
    if int(n) < 1:
        raise ConfigError(f"n must be an integer >= 1, got {n!r}")
    n = int(n)
    xs = np.linspace(extent[0], extent[1], n)
    ys = np.linspace(extent[3], extent[2], n)  # top row first
    gx, gy = np.meshgrid(xs, ys)
    codes = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    out = to_numpy(decode(codes))
    if out.ndim < 1 or len(out) != n * n:
        raise DataError(f"decode must return {n * n} images for {n * n} codes, got shape {out.shape}")
    imgs = _images(out, image_shape, "decoded images")
    canvas = _tile([[imgs[r * n + c] for c in range(n)] for r in range(n)], imgs.shape[1:])
    return _show_canvas(
        canvas,
        path,
        title=title,
        xlabel=f"z1 from {extent[0]:.3g} to {extent[1]:.3g}",
        ylabel=f"z2 from {extent[2]:.3g} (bottom) to {extent[3]:.3g} (top)",
    )
