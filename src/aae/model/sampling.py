"""What the priors of :mod:`aae.model.priors` share: the checks of their arguments (one line naming
the bad one), and the random draws, each from ``generator`` where one is given (else from torch's
global stream).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError


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


LARGEST = 1e6
"""the largest magnitude of a prior's argument (a radius, a scale, a bound): beyond it, samples overflow
the losses"""
MOST_PARTS = MOST_DIMS = 65_536
"""the most modes or pieces a prior may have, and the largest dimension"""


def numbers(prior: str, positive: dict[str, Any] = {}, non_negative: dict[str, Any] = {}) -> list[float]:  # noqa: B006
    """The prior's arguments as floats, each checked (finite, at most LARGEST); one line naming the bad one."""
    out = []
    for kind, values in (("> 0", positive), (">= 0", non_negative)):
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"model.prior: {prior} {name} = {value!r} is not a finite number")
            if (value <= 0) if kind == "> 0" else (value < 0):
                raise ConfigError(f"model.prior: {prior} {name} = {value!r} is not allowed; it must be {kind}")
            if value > LARGEST:
                raise ConfigError(f"model.prior: {prior} {name} = {value!r} is not allowed; at most {LARGEST:g}")
            out.append(float(value))
    return out


def whole(prior: str, name: str, value: Any, high: int = MOST_PARTS) -> int:
    """A prior's count (modes, pieces, a dimension): a whole number in 1..high, never truncated."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ConfigError(f"model.prior: {prior} {name} = {value!r} is not allowed; give a whole number in 1..{high}")
    return int(value)
