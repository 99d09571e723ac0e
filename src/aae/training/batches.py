"""What the phases read: the training data checked against the model (:func:`training_tensors`),
on the device and cut into minibatches (:class:`Minibatches`), each a :class:`~aae.model.phases.Batch`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..data.augment import vat_radii
from ..data.splits import labels_for_regime
from ..errors import DataError
from ..model.phases import Batch
from . import distributed


def training_tensors(model, x, labels, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x`` (n, d) as a float tensor, checked against the model and the batch size, and the labels
    the regime trains on (-1 unlabeled), or None."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if x.ndim != 2 or x.shape[1] != model.x_dim:
        raise DataError(f"x has shape {tuple(x.shape)}, expected (n, {model.x_dim})")
    if not torch.isfinite(x).all():
        raise DataError("x contains NaN or infinite values")
    n = x.shape[0]
    if n < batch_size:
        raise DataError(f"{n} training points is fewer than train.batch_size = {batch_size}")
    return x, labels_for_regime(labels, n, model.config.n_classes, model.labels_needed)


class Minibatches:
    """The training data on the device, cut into :attr:`steps` minibatches an epoch (shared out
    between the processes), and the :class:`~aae.model.phases.Batch` of each: its images through the
    augmentation, with their VAT radii (``model.vat_knn``), and beside them, for the classification
    phase, a labeled minibatch drawn from the labeled points."""

    def __init__(self, x, y, model, augment: Callable, batch_size: int, device: torch.device):
        self.x, self.y = x.to(device), y.to(device) if y is not None else None
        self.augment, self.batch_size, self.device = augment, batch_size, device
        c = model.config
        # per-image VAT radii, from the unshifted images, once per fit
        self.vat_radii = (
            vat_radii(self.x, c.vat_eps, c.vat_knn, c.vat_scale)[:, None] if c.vat_knn and c.vat_weight else None
        )
        reads_labeled = any(phase.labeled for phase in model.phases)
        labeled = torch.nonzero(self.y >= 0).squeeze(1) if y is not None and reads_labeled else None
        self.labeled = labeled if labeled is not None and labeled.numel() else None  # no labels: no classification
        n, world = self.x.shape[0], distributed.world_size()
        self.steps = n // batch_size
        """minibatches in an epoch, over all processes"""
        if self.steps < world:
            raise DataError(
                f"{n} training points make {self.steps} minibatches of {batch_size}, fewer than "
                f"the {world} processes; lower train.batch_size or the number of processes"
            )

    def epoch(self, seed: int, epoch: int) -> torch.Tensor:
        """This process's minibatches of an epoch, as rows of indices."""
        n = self.x.shape[0]
        if distributed.world_size() == 1:
            perm = torch.randperm(n)
        else:  # one permutation on every process, each its own share of it and its own noise
            epoch_seed = seed * 100_003 + epoch
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed))
            torch.manual_seed(epoch_seed * 1_009 + distributed.rank())
        return distributed.shard(perm, self.steps, self.batch_size).to(self.device)

    def batch(self, idx: torch.Tensor) -> Batch:
        x, y = self.x, self.y
        batch = Batch(
            self.augment(x[idx]),
            y[idx] if y is not None else None,
            vat_eps=self.vat_radii[idx] if self.vat_radii is not None else None,
        )
        if self.labeled is not None:
            pick = self.labeled[torch.randint(self.labeled.numel(), (self.batch_size,)).to(self.device)]
            batch.x_labeled, batch.y_labeled = self.augment(x[pick]), y[pick]
        return batch
