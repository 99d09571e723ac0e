"""What watches a training: :class:`BestEpoch` keeps the model at its best evaluation (early
stopping), :class:`Guard` stops a diverging run, and :class:`Progress` shows the run.
"""

from __future__ import annotations

import copy
import logging
import math

import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, TrainingError
from ..model.phases import Phase
from . import distributed
from .checkpoint import load_weights

log = logging.getLogger("aae")

EXPLODED = 1e6
"""a loss this many times its first epoch's value stops the run, as a NaN does"""


class BestEpoch:
    """Early stopping (``train.select_by``): a copy of the measured model at the lowest value of the
    metric so far (:attr:`model`, None before the first measure or without ``select_by``), with its
    :attr:`epoch` and :attr:`value`."""

    def __init__(self, key: str, measured: bool):
        if key and not measured:
            raise ConfigError(
                f"train.select_by = {key!r} needs a per-epoch evaluation; train with aae train (which "
                f"measures the validation split), or leave train.select_by empty"
            )
        self.key, self.model, self.epoch, self.value = key, None, 0, math.inf

    def update(self, row: dict, current: torch.nn.Module, epoch: int) -> None:
        """Keep a copy of ``current`` where the row's metric reaches a new low."""
        if not self.key:
            return
        if self.key not in row:
            measured = sorted(k for k in row if k not in ("epoch", "seconds") and "/" not in k)
            raise ConfigError(
                f"train.select_by = {self.key!r} is not measured in this run; it measures {', '.join(measured)}"
            )
        if row[self.key] < self.value:
            if self.model is None:
                self.model = copy.deepcopy(current)
            self.model.load_state_dict(current.state_dict())
            self.epoch, self.value = epoch, float(row[self.key])

    def state_dict(self) -> dict | None:
        """The epoch and value of the model kept, None before one is (its weights are the trainer's result)."""
        return None if self.model is None else {"epoch": self.epoch, "value": self.value}

    def load_state_dict(self, state: dict | None, weights: dict[str, torch.Tensor], like: torch.nn.Module) -> None:
        """Keep the model of ``weights`` (a copy of ``like`` holding them) as chosen at ``state``'s
        epoch and value; nothing where the run now selects by no metric."""
        if state is None or not self.key:
            return
        self.model = copy.deepcopy(like)
        load_weights(self.model, weights)
        self.epoch, self.value = state["epoch"], state["value"]


class RunningMeans:
    """Each loss's mean over an epoch's steps so far: summed on the device at every step, read on
    the host (and averaged over the processes) only when asked."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0) + v

    def means(self, steps: int) -> dict[str, float]:
        """The means over the first ``steps`` steps."""
        total = distributed.mean_over_processes(torch.stack(list(self.sums.values())).double()) / steps
        return dict(zip(self.sums, total.tolist()))


class Guard:
    """Stops a run whose loss turns NaN or infinite, or whose reconstruction (or KL) reaches
    :data:`EXPLODED` times its first measured value, with one line naming the loss, the epoch and
    step, the last good checkpoint (at ``checkpoint``, where there is one) and the rate to lower:
    that of the group the loss's phase steps (:attr:`sources`, which the training step fills)."""

    def __init__(self, checkpoint):
        self.checkpoint, self.first = checkpoint, {}
        self.sources: dict[str, Phase] = {}
        """the phase each loss comes from"""

    def rate_of(self, loss: str) -> str:
        """The ``train.lr`` key whose rate drives ``loss``."""
        phase = self.sources.get(loss)
        return loss if phase is None else phase.group_of(loss)

    def check(self, means: dict[str, float], epoch: int, step: int) -> None:
        """``means``: the mean losses of ``epoch`` (counted from 1) by ``step``."""
        for k, v in means.items():
            first = self.first.setdefault(k, abs(v))
            if math.isfinite(v) and not (k in ("reconstruction", "kl") and abs(v) > EXPLODED * max(first, 1e-3)):
                continue
            kept = self.checkpoint is not None and self.checkpoint.exists()
            where = f"; the last good checkpoint is {self.checkpoint}" if kept else ""
            raise TrainingError(
                f"the {k} loss became {v:.4g} (first {first:.4g}) in epoch {epoch} by step "
                f"{step}{where}; lower train.lr.{self.rate_of(k)} and {'resume' if kept else 'train again'}"
            )


class Progress:
    """What a training shows as it runs: a bar of this process's steps (on process 0, with
    ``progress``) and a log line per epoch, at debug level under the bar so that it does not tear it."""

    def __init__(self, show: bool, epochs: int, steps: int, epoch: int):
        self.epochs, self.level = epochs, logging.DEBUG if show or not distributed.is_main() else logging.INFO
        self.bar = tqdm(
            total=epochs * steps,
            initial=epoch * steps,
            disable=not (show and distributed.is_main()),
            dynamic_ncols=True,
            desc="training",
            unit="step",
        )

    def losses(self, epoch: int, means: dict[str, float]) -> None:
        """Show ``epoch`` (counted from 1) and its mean losses so far beside the bar."""
        self.bar.set_postfix({"epoch": epoch, **{k: f"{v:.3g}" for k, v in means.items()}}, refresh=False)

    def step(self) -> None:
        self.bar.update()

    def epoch(self, row: dict) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float))
        log.log(self.level, "epoch %d/%d %s", row["epoch"], self.epochs, shown)

    def close(self) -> None:
        self.bar.close()
