"""A decoder likelihood per column, for tables whose columns are of mixed kinds: a Gaussian
(squared error / 2) on real columns, a Bernoulli on binary ones and a categorical softmax on each
one-hot group. A model with one (``model.likelihood``) reads it in its losses and ``to_data``
instead of ``model.output``'s one likelihood for every column.

>>> lik = ColumnLikelihood(5, "gaussian", bernoulli=[0], groups=[[2, 3, 4]])
>>> lik.to_data(torch.zeros(1, 5))
tensor([[0.5000, 0.0000, 0.3333, 0.3333, 0.3333]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class ColumnLikelihood:
    """-log p(x|r) summed over columns: ``base`` (bernoulli or gaussian) for every column not in
    ``bernoulli`` or a group of ``groups``."""

    def __init__(self, d: int, base: str, bernoulli: list[int] = (), groups: list[list[int]] = ()):
        self.d, self.base, self.groups = d, base, [list(g) for g in groups]
        in_groups = {c for g in self.groups for c in g}
        kind = torch.zeros(d, dtype=torch.bool)  # True: Bernoulli
        kind[list(bernoulli)] = True
        if base == "bernoulli":
            kind[:] = True
        kind[list(in_groups)] = False
        self.bernoulli = kind
        self.gaussian = ~kind
        self.gaussian[list(in_groups)] = False

    def to_dict(self) -> dict:
        b = [] if self.base == "bernoulli" else torch.nonzero(self.bernoulli).ravel().tolist()
        return {"d": self.d, "base": self.base, "bernoulli": b, "groups": self.groups}

    def __call__(self, out: Tensor, x: Tensor) -> Tensor:
        """The batch's mean of -log p(x|r), for decoder outputs ``out``."""
        out = out.float()
        b, g = self.bernoulli.to(out.device), self.gaussian.to(out.device)
        total = F.binary_cross_entropy_with_logits(out[:, b], x[:, b], reduction="sum")
        total = total + 0.5 * ((out[:, g] - x[:, g]) ** 2).sum()
        for group in self.groups:
            total = total + F.cross_entropy(out[:, group], x[:, group].argmax(1), reduction="sum")
        return total / out.shape[0]

    def to_data(self, out: Tensor) -> Tensor:
        """Decoder outputs as data: probabilities (Bernoulli, each group's softmax) or means."""
        out = out.clone()
        b = self.bernoulli.to(out.device)
        out[:, b] = out[:, b].sigmoid()
        for group in self.groups:
            out[:, group] = out[:, group].softmax(1)
        return out
