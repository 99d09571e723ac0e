"""Convolutional networks for images (``model.net = "conv"``; beyond the paper, whose networks
are MLPs): a DCGAN-style encoder trunk (stride-2 convolutions, batch normalization, leaky ReLU)
that feeds the same heads as the MLP trunk, and a transposed-convolution decoder back to the
image. The discriminators on the code stay MLPs.

Images travel through the rest of the package flattened in HWC order (as the loaders store
them); these networks view them as (n, c, h, w) in the channels-last memory layout, which is
what a flattened HWC row already is, so no copy is made on the way in or out.

Each stage halves the height and width, rounding up (a 3x3 kernel, stride 2, padding 1), until
both are at most 4: 28 -> 14 -> 7 -> 4, 32 -> 16 -> 8 -> 4, 64 -> ... -> 4. The decoder retraces
the same sizes exactly (each transposed convolution's output padding restores an odd size), so
any image of at least 8 pixels a side works.

>>> enc = ConvFeatures((28, 28, 1), channels=8)
>>> enc(torch.rand(2, 784)).shape, enc.out_dim
(torch.Size([2, 512]), 512)
>>> ConvDecoder(16, (28, 28, 1), channels=8)(torch.rand(2, 16)).shape
torch.Size([2, 784])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError

MIN_SIDE = 8
MAX_CHANNELS = 256


def image_hwc(image_shape: tuple[int, ...] | None) -> tuple[int, int, int]:
    """(height, width, channels) of a data set's ``image_shape``, (h, w) or (h, w, c); a clear
    error for data that is not images or images too small for one stride-2 stage."""
    if image_shape is None or len(image_shape) not in (2, 3):
        raise ConfigError(
            "model.net = 'conv' needs images, (n, h, w) or (n, h, w, c); this data set is flat "
            "(n, features): set model.net = 'mlp'"
        )
    h, w, c = (*image_shape, 1) if len(image_shape) == 2 else image_shape
    if min(h, w) < MIN_SIDE:
        raise ConfigError(
            f"model.net = 'conv' needs images of at least {MIN_SIDE}x{MIN_SIDE} pixels, found {h}x{w}: "
            "set model.net = 'mlp'"
        )
    return int(h), int(w), int(c)


def stage_sizes(h: int, w: int) -> list[tuple[int, int]]:
    """The (height, width) after each stage: halved, rounded up, until both are at most 4."""
    sizes = [(h, w)]
    while max(sizes[-1]) > 4:
        a, b = sizes[-1]
        sizes.append(((a + 1) // 2, (b + 1) // 2))
    return sizes


def stage_widths(n_stages: int, channels: int) -> list[int]:
    """Channels after each stage: ``channels`` doubled at every stage, at most MAX_CHANNELS."""
    return [min(channels * 2**i, MAX_CHANNELS) for i in range(n_stages)]


class ConvFeatures(nn.Module):
    """Flattened HWC images (n, h*w*c) -> flattened features (n, out_dim) of the last stage."""

    def __init__(self, image_shape: tuple[int, ...], channels: int = 32, batch_norm: bool = True):
        super().__init__()
        self.hwc = h, w, c = image_hwc(image_shape)
        sizes = stage_sizes(h, w)
        widths = stage_widths(len(sizes) - 1, channels)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip([c, *widths[:-1]], widths)):
            layers.append(nn.Conv2d(a, b, 3, stride=2, padding=1, bias=not (batch_norm and i)))
            if batch_norm and i:  # DCGAN: no normalization on the first stage
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)
        last = sizes[-1]
        self.out_dim = widths[-1] * last[0] * last[1]

    def forward(self, x: Tensor) -> Tensor:
        h, w, c = self.hwc
        images = x.reshape(x.shape[0], h, w, c).permute(0, 3, 1, 2)  # channels-last, no copy
        return self.net(images).flatten(1)


class ConvDecoder(nn.Module):
    """(n, in_dim) -> flattened HWC image logits or means (n, h*w*c): a linear layer to the last
    stage's feature map, then transposed convolutions that retrace the encoder's sizes."""

    def __init__(self, in_dim: int, image_shape: tuple[int, ...], channels: int = 32):
        super().__init__()
        self.hwc = h, w, c = image_hwc(image_shape)
        sizes = stage_sizes(h, w)
        widths = stage_widths(len(sizes) - 1, channels)
        self.start = (widths[-1], *sizes[-1])
        self.project = nn.Sequential(
            nn.Linear(in_dim, widths[-1] * sizes[-1][0] * sizes[-1][1], bias=False),
            nn.BatchNorm1d(widths[-1] * sizes[-1][0] * sizes[-1][1]),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        outs = [*reversed(widths[:-1]), c]
        for i, (a, b) in enumerate(zip(reversed(widths), outs)):
            (hi, wi), (ho, wo) = sizes[-1 - i], sizes[-2 - i]
            pad = (ho - (2 * hi - 1), wo - (2 * wi - 1))
            last = i == len(outs) - 1
            layers.append(nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=pad, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(b), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, r: Tensor) -> Tensor:
        start = self.project(r).unflatten(1, self.start)
        out = self.net(start.contiguous(memory_format=torch.channels_last))
        return out.permute(0, 2, 3, 1).flatten(1)  # channels-last NCHW is HWC in memory: no copy
