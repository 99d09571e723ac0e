"""The one training loop: epochs x minibatches x the model's phases.

The :class:`Trainer` runs the epochs, sets the learning-rate schedule and guards against
diverging losses; :class:`Minibatches` makes what the phases read, :class:`BestEpoch` keeps the
model at its best evaluation (early stopping) and :class:`Progress` shows the run. The
optimizers and the weight average are :mod:`aae.training.optimizers`', the run directory and resume
:mod:`aae.training.resume`'s. It never asks which regime it trains: it runs ``model.phases``. Under
``torchrun`` it trains on every process, sharing the minibatches (:mod:`aae.training.distributed`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config.schema import ExperimentConfig
from ..data.augment import image_shape_of, neighbour_distance, shifter
from ..data.splits import labels_for_regime
from ..errors import ConfigError, DataError, TrainingError
from ..model.phases import Batch, train_step
from . import distributed
from .checkpoint import CHECKPOINT, atomic_write
from .devices import flush_denormals, machine, pick_device, pick_precision, step_autocast
from .optimizers import phase_optimizers, weight_average
from .resume import resume_training, save_training, training_run_dir
from .runlog import RunLog, check_tensorboard, record_machine

log = logging.getLogger("aae")

EXPLODED = 1e6
"""a loss this many times its first epoch's value stops the run, as a NaN does"""


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
    return x, labels_for_regime(labels, n, model.config.n_classes, model.regime.labels)


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
            (c.vat_eps * neighbour_distance(self.x, c.vat_knn))[:, None] if c.vat_knn and c.vat_weight else None
        )
        labeled = torch.nonzero(self.y >= 0).squeeze(1) if y is not None and "classification" in model.phases else None
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


class Trainer:
    """Trains a model (:class:`~aae.model.autoencoder.AdversarialAutoencoder` or a baseline) by its phases.

    >>> history = Trainer(model, config, "runs/x").fit(x_train, y_train)   # doctest: +SKIP
    """

    def __init__(
        self,
        model,
        config: ExperimentConfig,
        run_dir: str | Path | None = None,
        evaluate: Callable[[torch.nn.Module], dict] | None = None,
        *,
        device: str = "auto",
        progress: bool = True,
        log_dir: str | None = None,
    ):
        self.config, self.cfg, self.evaluate, self.progress = config, config.train, evaluate, progress
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.log_dir = log_dir
        """where TensorBoard event files go (needs the tensorboard package), beside the run's own logs"""
        if log_dir is not None:
            check_tensorboard(log_dir)
        self.device = distributed.setup(pick_device(device))
        self.main, self.world = distributed.is_main(), distributed.world_size()
        self.writes = self.run_dir is not None and self.main
        """whether this process writes the run directory (process 0 of a multi-process run)"""
        self.model = model.to(self.device)
        self.phases = model.phases
        self.optimizers = phase_optimizers(self.model, self.cfg)
        distributed.share(self.model, self.optimizers)
        self.averaged = weight_average(self.model, self.cfg.ema)
        self.selection = BestEpoch(self.cfg.select_by, measured=evaluate is not None)
        self.epoch, self.history, self._first = 0, [], {}
        image_shape = getattr(model, "image_shape", None)
        self._augment = shifter(self.cfg.shift, model.x_dim, image_shape)
        if model.config.y_invariance_weight:  # its rotations need images: say so before training
            image_shape_of(model.x_dim, "model.y_invariance_weight", image_shape)
        self.autocast, self.precision = pick_precision(self.cfg.precision, self.device)

    @property
    def current(self):
        """The model each evaluation measures: the weight average if ``train.ema`` is set, else the trained weights."""
        return self.model if self.averaged is None else self.averaged.module

    @property
    def result(self):
        """The model to use: with ``train.select_by`` the one at the best evaluation, else :attr:`current`."""
        return self.current if self.selection.model is None else self.selection.model

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / CHECKPOINT

    def fit(self, x, labels=None, *, resume: bool = False, require_checkpoint: bool = False) -> list[dict]:
        """Train on ``x`` (n, d) with optional ``labels`` (-1 unlabeled) up to ``train.epochs``; with
        ``resume``, from the run directory's checkpoint where there is one (``require_checkpoint``: an
        error where there is none)."""
        x, y = training_tensors(self.model, x, labels, self.cfg.batch_size)
        with flush_denormals():
            if self.run_dir is None:
                return self._train(x, y, resume=False)
            with training_run_dir(
                self.run_dir, lock=self.main, resume=resume, require_checkpoint=require_checkpoint, trainer=self
            ) as resuming:
                return self._train(x, y, resume=resuming)

    def _train(self, x, y, resume: bool) -> list[dict]:
        cfg = self.cfg
        if resume:
            resume_training(self)
            log.info("resumed %s at epoch %d", self.checkpoint_path, self.epoch)
        else:
            torch.manual_seed(cfg.seed)
        if self.writes:  # the config the run now follows, and where it trains from this epoch on
            atomic_write(self.run_dir / "config.json", self.config.to_json())
            record_machine(self.run_dir, self.epoch, machine(self.device, self.precision))
        # metrics.jsonl and .csv from the checkpoint's history: a kill between log and checkpoint left more
        runlog = RunLog(self.run_dir if self.writes else None, self.log_dir if self.main else None)
        runlog.reset(self.history)
        data = Minibatches(x, y, self.model, self._augment, cfg.batch_size, self.device)
        local = data.steps // self.world
        log.info("precision: %s", self.precision)
        self._progress = Progress(self.progress, cfg.epochs, local, self.epoch)
        try:
            while self.epoch < cfg.epochs:
                row = self._epoch(data)
                self.history.append(row)
                runlog.append(row)
                runlog.scalars(self.epoch, {k: v for k, v in row.items() if k != "epoch"})
                if self.writes:
                    save_training(self)
        finally:
            self._progress.close()
            runlog.close()
        return self.history

    def _epoch(self, data: Minibatches) -> dict:
        model, cfg = self.model.train(), self.cfg
        self._set_learning_rates()
        start = time.perf_counter()
        batches = data.epoch(cfg.seed, self.epoch)
        sums: dict[str, torch.Tensor] = {}
        steps = len(batches)
        for i, idx in enumerate(batches):
            with step_autocast(self.device, self.autocast):
                losses = train_step(model, data.batch(idx), self.optimizers, self.phases)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0) + v
            if self.averaged is not None:
                self.averaged.update_parameters(model)
            if i % 50 == 49 or i == steps - 1:
                total = distributed.mean_over_processes(torch.stack(list(sums.values())).double()) / (i + 1)
                means = dict(zip(sums, total.tolist()))
                self._guard(means, i + 1)
                self._progress.losses(self.epoch + 1, means)
            self._progress.step()
        self.epoch += 1
        row = {"epoch": self.epoch, **means, "seconds": round(time.perf_counter() - start, 3)}
        if self.evaluate is not None and self.main and (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs):
            # Measuring must not change training: it draws from a forked random stream.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                row.update(self.evaluate(self.current.eval()))
            self.selection.update(row, self.current, self.epoch)
        self._progress.epoch(row)
        return row

    def _set_learning_rates(self) -> None:
        """The schedule: each phase's rate from the config, times lr_gamma per milestone passed.
        Set from the config every epoch, so a resumed run takes a changed train.lr."""
        decay = self.cfg.lr_gamma ** sum(self.epoch >= m for m in self.cfg.lr_milestones)
        for phase, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.cfg.lr[phase] * decay

    def _guard(self, means: dict[str, float], step: int) -> None:
        """Stop on a loss that is NaN, infinite, or EXPLODED times its first measured value."""
        for k, v in means.items():
            first = self._first.setdefault(k, abs(v))
            if math.isfinite(v) and not (k in ("reconstruction", "kl") and abs(v) > EXPLODED * max(first, 1e-3)):
                continue
            kept = self.checkpoint_path is not None and self.checkpoint_path.exists()
            where = f"; the last good checkpoint is {self.checkpoint_path}" if kept else ""
            phase = k if k in self.cfg.lr else "reconstruction"
            raise TrainingError(
                f"the {k} loss became {v:.4g} (first {first:.4g}) in epoch {self.epoch + 1} by step "
                f"{step}{where}; lower train.lr.{phase} and {'resume' if kept else 'train again'}"
            )
