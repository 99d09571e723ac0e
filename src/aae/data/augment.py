"""Augmentation, for training and evaluation alike: images moved by whole pixels (training's
``train.shift``, the test-time views of ``eval.tta_shift``), images rotated and moved (the views
that ``model.y_invariance_weight`` makes q(y|x) ignore), and each training image's neighbour
distance (IMSAT's per-image VAT radius, ``model.vat_knn``). Not in the AAE paper."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError, DataError


def image_shape_of(d: int, setting: str = "train.shift", known: tuple[int, ...] | None = None) -> tuple[int, int, int]:
    """(height, width, channels) of a flattened image of ``d`` values: the ``known`` shape of its data
    set, else a square grey (s * s) or colour (s * s * 3, HWC as the loaders store it) image."""
    if known is not None:
        return (*known, 1) if len(known) == 2 else tuple(known)
    for channels in (1, 3):
        side = math.isqrt(d // channels)
        if d % channels == 0 and side * side * channels == d:
            return side, side, channels
    raise DataError(
        f"{d} features are not a square image (s*s grey or s*s*3 colour), so they cannot be shifted; set {setting} = 0"
    )


def translate(x: Tensor, dy, dx, shift: int, image_shape: tuple[int, int, int]) -> Tensor:
    """The flattened images ``x`` (n, h*w*c) moved so that pixel (i, j) of the result is pixel
    (i + dy, j + dx) of the input, zero where that falls outside; ``dy``, ``dx`` are ints, or (n, 1)
    tensors for one offset per image, each in [-shift, shift]."""
    h, w, c = image_shape
    n = x.shape[0]
    padded = torch.nn.functional.pad(x.reshape(n, h, w, c), (0, 0, shift, shift, shift, shift))
    rows = (torch.arange(h, device=x.device) + shift + torch.as_tensor(dy, device=x.device).reshape(-1, 1))[:, :, None]
    cols = (torch.arange(w, device=x.device) + shift + torch.as_tensor(dx, device=x.device).reshape(-1, 1))[:, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None], rows, cols].reshape(n, -1)


def random_shift(x: Tensor, shift: int, image_shape: tuple[int, int, int]) -> Tensor:
    """Each flattened image of ``x`` moved by its own random offsets in [-shift, shift] pixels along
    each axis, zero filled."""
    dy, dx = torch.randint(-shift, shift + 1, (2, x.shape[0], 1), device=x.device)
    return translate(x, dy, dx, shift, image_shape)


def random_affine(x: Tensor, degrees: float, shift: float, image_shape: tuple[int, int, int]) -> Tensor:
    """Each flattened image of ``x`` rotated about its centre by its own random angle in [-degrees,
    degrees] and moved by its own random offsets in [-shift, shift] pixels along each axis (bilinear,
    zero filled)."""
    h, w, c = image_shape
    n = x.shape[0]
    angle = torch.deg2rad((2 * torch.rand(n, device=x.device) - 1) * degrees)
    offset = (2 * torch.rand(n, 2, device=x.device) - 1) * shift
    cos, sin = angle.cos(), angle.sin()
    # affine_grid maps output to input coordinates in [-1, 1]: a pixel is 2 / side of them
    theta = torch.stack(
        [
            torch.stack([cos, -sin * h / w, offset[:, 0] * 2 / w], -1),
            torch.stack([sin * w / h, cos, offset[:, 1] * 2 / h], -1),
        ],
        1,
    )
    images = x.reshape(n, h, w, c).permute(0, 3, 1, 2)
    grid = torch.nn.functional.affine_grid(theta.to(x.dtype), [n, c, h, w], align_corners=False)
    moved = torch.nn.functional.grid_sample(images, grid, padding_mode="zeros", align_corners=False)
    return moved.permute(0, 2, 3, 1).reshape(n, -1)


def small_transforms(x: Tensor, image_shape: tuple[int, ...] | None = None) -> Tensor:
    """T of ``model.y_invariance_weight``: each flattened image of ``x`` rotated by up to 15
    degrees and moved by up to 1/14 of its side along each axis (2 pixels on MNIST)."""
    shape = image_shape_of(x.shape[1], "model.y_invariance_weight", image_shape)
    return random_affine(x, 15.0, shape[0] / 14, shape)


def shifter(shift: int, x_dim: int, image_shape: tuple[int, ...] | None = None):
    """The training augmentation of ``train.shift``: a function of a batch (the identity at 0)."""
    if not shift:
        return lambda x: x
    shape = image_shape_of(x_dim, known=image_shape)
    return lambda x: random_shift(x, shift, shape)


def shifted_views(x: Tensor, shift: int, image_shape: tuple[int, ...] | None = None) -> list[Tensor]:
    """``x`` moved by every offset in [-shift, shift]^2 (``eval.tta_shift``); ``[x]`` at 0."""
    if not shift:
        return [x]
    shape, k = image_shape_of(x.shape[1], "eval.tta_shift", image_shape), range(-shift, shift + 1)
    return [translate(x, dy, dx, shift, shape) for dy in k for dx in k]


@torch.no_grad()
def neighbour_distance(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """The Euclidean distance from each row of ``x`` (n, d) to its k-th nearest other row, in chunks
    of rows so that memory stays at chunk * n (for model.vat_knn)."""
    if not 0 < k < len(x):
        raise ConfigError(f"model.vat_knn = {k} must be between 1 and the number of training points - 1 ({len(x) - 1})")
    squared = (x * x).sum(1)
    out = []
    for i in range(0, len(x), chunk):
        d2 = squared[i : i + chunk, None] + squared[None] - 2 * x[i : i + chunk] @ x.T
        d2[torch.arange(len(d2)), torch.arange(i, i + len(d2))] = float("inf")  # not itself
        out.append(d2.topk(k, dim=1, largest=False).values[:, -1].clamp_min(0).sqrt())
    return torch.cat(out)


@torch.no_grad()
def median_distance(x: Tensor, most: int = 2000) -> Tensor:
    """The median Euclidean distance between two rows of ``x`` (n, d), over at most ``most`` rows
    spread evenly through it (for model.vat_scale = "spread")."""
    rows = x[:: max(1, len(x) // most)][:most]
    return torch.pdist(rows).median()


def vat_radii(x: Tensor, eps: float, k: int, scale: str = "neighbour") -> Tensor:
    """(n,) IMSAT's per-image VAT radius: ``eps`` times each row's k-th neighbour distance, or with
    ``scale = "spread"`` those distances rescaled so that their median is ``eps`` times the median
    distance between rows."""
    near = neighbour_distance(x, k)
    if scale == "spread":
        return eps * near * (median_distance(x) / near.median().clamp_min(1e-12))
    return eps * near
