"""Priors p(z) that the adversarial regularizer matches q(z) to.

Every prior follows one contract, so any prior fits any model (Section 2 of the
paper: "p(z) can be any distribution we can sample from"):

- ``dim``: the dimension of a sample;
- ``n_parts``: how many labelled parts it has (mixture modes, swiss-roll pieces,
  categories), or ``None`` when it has none;
- ``sample(n, labels=None, generator=None)``: ``n`` samples; with ``labels``
  (a LongTensor of shape ``(n,)``) sample ``i`` comes from part ``labels[i]``,
  and a label of ``-1`` draws from the whole prior (Section 2.3);
- ``log_prob(z, labels=None)``: the density, where it has one (the VAE needs it).

A new prior is one class here and one line in :data:`PRIORS`; nothing else changes.

>>> prior = GaussianMixture(n_modes=10)
>>> prior.sample(4, labels=torch.tensor([0, 3, -1, 9])).shape
torch.Size([4, 2])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import ConfigError
from . import sampling
from .sampling import MOST_DIMS, numbers, whole

__all__ = [
    "Prior",
    "Gaussian",
    "GaussianMixture",
    "SwissRoll",
    "Uniform",
    "Categorical",
    "CallablePrior",
    "PRIORS",
    "describe",
    "make_prior",
]


class Prior:
    """Base class of every prior; see the module docstring for the contract."""

    dim: int
    n_parts: int | None = None

    def sample(self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def log_prob(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        raise ConfigError(
            f"prior {type(self).__name__} has no density; the VAE needs one (use gaussian, mixture or swiss_roll)"
        )

    def part_means(self) -> Tensor:
        """One representative point per part (mode centres), for the nearest-mode metric."""
        raise ConfigError(f"prior {type(self).__name__} has no parts")

    def assign_part(self, z: Tensor) -> Tensor:
        """The part each code lies in: by default the nearest part mean (the nearest mode)."""
        return torch.cdist(z, self.part_means().to(z)).argmin(1)

    def part_log_probs(self, z: Tensor) -> Tensor:
        """(n, n_parts): log p(z | part k) for each part, for model.label_part_weight."""
        raise ConfigError(
            f"prior {type(self).__name__} has no part densities; model.label_part_weight needs mixture or swiss_roll"
        )

    def _check_labels(self, n: int, labels: Tensor | None) -> Tensor | None:
        if labels is None:
            return None
        if self.n_parts is None:
            raise ConfigError(
                f"prior {type(self).__name__} has no parts to sample per label; use mixture, swiss_roll or categorical"
            )
        labels = torch.as_tensor(labels)
        if labels.shape != (n,):
            raise ConfigError(f"labels have shape {tuple(labels.shape)}, expected ({n},)")
        if labels.numel() and (labels.min() < -1 or labels.max() >= self.n_parts):
            raise ConfigError(
                f"labels must lie in -1..{self.n_parts - 1} for this prior, got "
                f"{labels.min().item()}..{labels.max().item()}"
            )
        return labels.long()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Gaussian(Prior):
    """N(0, std^2 I) in ``dim`` dimensions."""

    def __init__(self, dim: int = 2, std: float = 1.0):
        self.dim, (self.std,) = whole("gaussian", "dim", dim, MOST_DIMS), numbers("gaussian", {"std": std})

    def sample(self, n, labels=None, generator=None):
        self._check_labels(n, labels)
        return self.std * sampling.normal((n, self.dim), generator)

    def log_prob(self, z, labels=None):
        return (-0.5 * (z / self.std) ** 2 - math.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(-1)


class GaussianMixture(Prior):
    """The paper's mixture of 10 2-D Gaussians (Figure 2): elongated modes on a circle.

    Mode k sits at angle 2*pi*k/n_modes and ``radius`` from the origin, with standard
    deviation ``radial_std`` along the ray and ``tangential_std`` across it.
    """

    dim = 2

    def __init__(self, n_modes: int = 10, radius: float = 4.0, radial_std: float = 1.0, tangential_std: float = 0.15):
        self.n_modes = self.n_parts = whole("mixture", "n_modes", n_modes)
        self.radial_std, self.tangential_std, self.radius = numbers(
            "mixture", {"radial_std": radial_std, "tangential_std": tangential_std}, {"radius": radius}
        )

    def _frames(self, k: Tensor) -> tuple[Tensor, Tensor]:
        angle = 2 * math.pi * k.float() / self.n_modes
        ray = torch.stack([angle.cos(), angle.sin()], -1)
        across = torch.stack([-angle.sin(), angle.cos()], -1)
        return ray, across

    def sample(self, n, labels=None, generator=None):
        k = sampling.whole_or_part(self._check_labels(n, labels), n, self.n_modes, generator)
        ray, across = self._frames(k)
        eps = sampling.normal((n, 2), generator)
        return ray * (self.radius + self.radial_std * eps[:, :1]) + across * (self.tangential_std * eps[:, 1:])

    def part_means(self):
        return self._frames(torch.arange(self.n_modes))[0] * self.radius

    def part_log_probs(self, z):
        ray, across = self._frames(torch.arange(self.n_modes, device=z.device))
        along = z @ ray.T - self.radius  # (n, K) offset along each mode's ray
        side = z @ across.T
        return (
            -0.5 * (along / self.radial_std) ** 2
            - 0.5 * (side / self.tangential_std) ** 2
            - math.log(2 * math.pi * self.radial_std * self.tangential_std)
        )

    def log_prob(self, z, labels=None):
        comp = self.part_log_probs(z)
        if labels is not None:
            labels = self._check_labels(z.shape[0], labels).to(z.device)
            own = comp.gather(1, labels.clamp(min=0)[:, None])[:, 0]
            whole = torch.logsumexp(comp, 1) - math.log(self.n_modes)
            return torch.where(labels >= 0, own, whole)
        return torch.logsumexp(comp, 1) - math.log(self.n_modes)


class SwissRoll(Prior):
    """The paper's swiss-roll prior (Figure 3): a 2-D spiral, cut into ``n_parts`` pieces.

    A point is u ~ U(0, 1) mapped to radius ``scale*sqrt(u)`` and angle ``turns*2*pi*sqrt(u)``,
    plus isotropic noise ``noise`` (which also gives it a density, for the VAE). Piece k
    is u in [k/n_parts, (k+1)/n_parts).
    """

    dim = 2

    def __init__(self, n_parts: int = 10, scale: float = 3.0, turns: float = 2.0, noise: float = 0.05):
        self.n_parts = whole("swiss_roll", "n_parts", n_parts)
        self.scale, self.turns, self.noise = numbers("swiss_roll", {"scale": scale, "turns": turns}, {"noise": noise})

    def _curve(self, u: Tensor) -> Tensor:
        r = u.sqrt()
        angle = self.turns * 2 * math.pi * r
        return torch.stack([self.scale * r * angle.cos(), self.scale * r * angle.sin()], -1)

    def sample(self, n, labels=None, generator=None):
        k = sampling.whole_or_part(self._check_labels(n, labels), n, self.n_parts, generator)
        u = (k.float() + sampling.uniform((n,), generator)) / self.n_parts
        return self._curve(u) + self.noise * sampling.normal((n, 2), generator)

    def part_means(self):
        return self._curve((torch.arange(self.n_parts) + 0.5) / self.n_parts)

    def _quadrature(self, z: Tensor, grid: int) -> tuple[Tensor, Tensor]:
        """The grid u of ``grid`` points over (0, 1) and, for each code, log N(z; curve(u), noise²)
        at each: the noisy curve as a mixture of narrow Gaussians."""
        u = (torch.arange(grid, device=z.device) + 0.5) / grid
        centres = self._curve(u).to(z)
        return u, -0.5 * torch.cdist(z, centres).pow(2) / self.noise**2 - math.log(2 * math.pi * self.noise**2)

    def log_prob(self, z, labels=None, grid: int = 2000):
        # The noisy curve's density, by a fine quadrature over u.
        u, comp = self._quadrature(z, grid)
        whole = torch.logsumexp(comp, 1) - math.log(grid)
        if labels is None:
            return whole
        labels = self._check_labels(z.shape[0], labels).to(z.device)
        piece = (u * self.n_parts).long()
        own = comp.masked_fill(piece[None, :] != labels.clamp(min=0)[:, None], -math.inf)
        own = torch.logsumexp(own, 1) - math.log(grid / self.n_parts)
        return torch.where(labels >= 0, own, whole)

    def assign_part(self, z, grid: int = 2000):
        # The piece of highest density: nearest centres would cut across the spiral's turns.
        return self.part_log_probs(z, grid).argmax(1)

    def part_log_probs(self, z, grid: int = 2000):
        # each piece's density by log_prob's quadrature, on a grid of whole runs, one per piece
        per = -(-grid // self.n_parts)
        _, comp = self._quadrature(z, per * self.n_parts)
        return torch.logsumexp(comp.view(len(z), self.n_parts, per), 2) - math.log(per)


class Uniform(Prior):
    """U(low, high)^dim."""

    def __init__(self, dim: int = 2, low: float = -1.0, high: float = 1.0):
        numbers(
            "uniform",
            {},
            {
                "low": abs(low) if isinstance(low, (int, float)) else low,
                "high": abs(high) if isinstance(high, (int, float)) else high,
            },
        )
        if not high > low:
            raise ConfigError(f"uniform prior: high ({high}) must exceed low ({low})")
        self.dim, self.low, self.high = whole("uniform", "dim", dim, MOST_DIMS), float(low), float(high)

    def sample(self, n, labels=None, generator=None):
        self._check_labels(n, labels)
        return self.low + (self.high - self.low) * sampling.uniform((n, self.dim), generator)

    def log_prob(self, z, labels=None):
        inside = ((z >= self.low) & (z <= self.high)).all(-1)
        value = -self.dim * math.log(self.high - self.low)
        return torch.where(inside, torch.full_like(z[:, 0], value), torch.full_like(z[:, 0], -math.inf))


class Categorical(Prior):
    """One-hot samples of Cat(probs) over ``n_classes`` (the prior of the y head, Section 5)."""

    def __init__(self, n_classes: int = 10, probs: list[float] | None = None):
        self.dim = self.n_parts = self.n_classes = whole("categorical", "n_classes", n_classes)
        bad = ConfigError(f"categorical prior: probs must be {self.n_classes} non-negative numbers summing to 1")
        try:
            p = (
                torch.full((self.n_classes,), 1.0 / self.n_classes)
                if probs is None
                else torch.as_tensor(probs, dtype=torch.float)
            )
        except (TypeError, ValueError, RuntimeError):
            raise bad from None
        if p.shape != (self.n_classes,) or not torch.isfinite(p).all() or (p < 0).any():
            raise bad
        if abs(float(p.sum()) - 1) > 1e-5:
            raise bad
        self.probs = p

    def sample(self, n, labels=None, generator=None):
        drawn = (
            torch.multinomial(self.probs, n, replacement=True, generator=generator)
            if n
            else torch.zeros(0, dtype=torch.long)
        )
        labels = self._check_labels(n, labels)
        k = drawn if labels is None else torch.where(labels >= 0, labels, drawn)
        return torch.nn.functional.one_hot(k, self.n_classes).float()

    def part_means(self):
        return torch.eye(self.n_classes)


class CallablePrior(Prior):
    """A prior from any function ``n -> Tensor(n, dim)``, passed as the function itself. A config
    records it as ``{name = "callable", fn = "module:function"}``, a name only: aae never imports
    code named in a file, so a model loaded from such a run needs the function passed again."""

    def __init__(self, fn: Callable[[int], Tensor] | None = None, dim: int | None = None):
        if fn is None or isinstance(fn, str):
            raise ConfigError(
                f"the prior is the function {fn!r}, named in a config; aae never imports code named in "
                f"a file: pass the function itself (prior=fn)"
            )
        if not callable(fn):
            raise ConfigError(f"callable prior: {fn!r} is not callable")
        self.fn = fn
        probe = self._call(2)
        self.dim = probe.shape[1] if dim is None else whole("callable", "dim", dim, MOST_DIMS)
        if probe.shape[1] != self.dim:
            raise ConfigError(f"callable prior returned dimension {probe.shape[1]}, expected {self.dim}")

    def _call(self, n: int) -> Tensor:
        out = torch.as_tensor(self.fn(n), dtype=torch.float32)
        if out.ndim != 2 or out.shape[0] != n:
            raise ConfigError(f"callable prior must return shape (n, dim); for n={n} it returned {tuple(out.shape)}")
        return out

    def sample(self, n, labels=None, generator=None):
        self._check_labels(n, labels)
        return self._call(n)


def describe(fn: Callable) -> dict[str, str]:
    """How a config records a prior passed as a function: its name, for the reader only."""
    return {"name": "callable", "fn": f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"}


PRIORS: dict[str, type[Prior]] = {
    "gaussian": Gaussian,
    "mixture": GaussianMixture,
    "swiss_roll": SwissRoll,
    "uniform": Uniform,
    "categorical": Categorical,
    "callable": CallablePrior,
}


def make_prior(spec: str | dict | Prior | Callable, dim: int) -> Prior:
    """Build a prior of dimension ``dim`` from a name, a ``{"name": ..., **args}`` table,
    a :class:`Prior`, or a callable ``n -> Tensor``.

    >>> make_prior({"name": "gaussian", "std": 2.0}, dim=8).sample(3).shape
    torch.Size([3, 8])
    """
    if isinstance(spec, Prior):
        prior = spec
    elif callable(spec):
        prior = CallablePrior(spec, dim)
    else:
        args = dict(spec) if isinstance(spec, dict) else {"name": spec}
        name = args.pop("name", "gaussian")
        if not isinstance(name, str) or name not in PRIORS:
            raise ConfigError(f"unknown prior {name!r}; allowed: {', '.join(PRIORS)}")
        cls = PRIORS[name]
        if cls in (Gaussian, Uniform, CallablePrior):
            args.setdefault("dim", dim)
        if cls is Categorical:
            args.setdefault("n_classes", dim)
        try:
            prior = cls(**args)
        except TypeError as exc:
            raise ConfigError(f"prior {name!r}: {exc}") from None
    if prior.dim != dim:
        raise ConfigError(
            f"prior {type(prior).__name__} has dimension {prior.dim} but the code has {dim} "
            f"(set model.z_dim = {prior.dim})"
        )
    return prior
