"""The random draws the priors of :mod:`aae.model.priors` share, each from ``generator`` where one is
given (else from torch's global stream).
"""

from __future__ import annotations

import torch
from torch import Tensor


def normal(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    return torch.randn(shape, generator=generator)


def uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator)


def whole_or_part(labels: Tensor | None, n: int, n_parts: int, generator: torch.Generator | None) -> Tensor:
    """The part each sample comes from: its label, or a uniform draw where the label is -1."""
    drawn = torch.randint(n_parts, (n,), generator=generator)
    if labels is None:
        return drawn
    return torch.where(labels >= 0, labels, drawn)
