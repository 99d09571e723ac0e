"""The one training loop: epochs x minibatches x the model's phases.

The :class:`Trainer` owns the per-phase optimizers, the learning-rate schedule, the weight
average, early stopping and the guard against diverging losses; checkpoints and resume are
:mod:`aae.checkpoint`'s. It never asks which regime it trains: it runs ``model.phases``. Under
``torchrun`` it trains on every process, sharing the minibatches (:mod:`aae.distributed`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from . import distributed
from .augment import neighbour_distance, shifter
from .checkpoint import CHECKPOINT, RunLock, atomic_write, resume_training, save_training
from .config import ExperimentConfig, TrainConfig
from .data import labels_for_regime
from .devices import pick_device, pick_precision
from .errors import CheckpointError, ConfigError, DataError, TrainingError
from .phases import Batch, train_step
from .runlog import RunLog, check_tensorboard

log = logging.getLogger("aae")

OPTIMIZERS_OF = {
    "reconstruction": ("reconstruction",),
    "elbo": ("reconstruction",),
    "regularization": ("discriminator", "generator"),
    "classification": ("classification",),
    "smoothing": ("generator",),
}
"""the optimizers each phase steps; the VAE's ELBO steps the reconstruction optimizer"""
EXPLODED = 1e6
"""a loss this many times its first epoch's value stops the run, as a NaN does"""


def make_optimizer(params, phase: str, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The paper's optimizers: SGD with momentum 0.9, or Adam with beta1 0.5 (as GANs train), as
    one fused kernel per step where the device has one (the CPU and CUDA do): the same update as
    PyTorch's per-tensor loop, in one pass over the parameters."""
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr[phase], momentum=0.9, fused=fused or None)
    return torch.optim.Adam(params, lr=cfg.lr[phase], betas=(0.5, 0.999), fused=fused or None)


def ema_with_warmup(decay: float):
    """The update of an exponential moving average of weights whose decay grows as n / (n + 1) until it
    reaches ``decay``: the plain mean of the first 1 / (1 - decay) steps, then the moving average, so
    a run shorter than the averaging window is not stuck near its initial weights."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():  # a counter such as batch norm's num_batches_tracked
            torch._foreach_copy_(averaged, current)
            return
        # 1 - min(decay, n / (n + 1)), kept on the device: no host sync per step on a GPU
        weight = (n.to(averaged[0].dtype) + 1).reciprocal().clamp_min(1 - decay)
        torch._foreach_lerp_(averaged, current, weight)

    return update


class Trainer:
    """Trains a model (:class:`~aae.model.AdversarialAutoencoder` or a baseline) by its phases.

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
        groups, needed = model.parameter_groups(), {o for p in self.phases for o in OPTIMIZERS_OF[p]}
        self.optimizers = {k: make_optimizer(groups[k], k, self.cfg) for k in groups if k in needed}
        if self.world > 1:
            distributed.broadcast_from_main(self.model)
            for opt in self.optimizers.values():
                distributed.average_gradients_before_step(opt)
        self.averaged = None
        if self.cfg.ema > 0:
            self.averaged = AveragedModel(self.model, multi_avg_fn=ema_with_warmup(self.cfg.ema), use_buffers=True)
        if self.cfg.select_by and evaluate is None:
            raise ConfigError(
                f"train.select_by = {self.cfg.select_by!r} needs a per-epoch evaluation; train with "
                f"aae train (which measures the validation split), or leave train.select_by empty"
            )
        self.selected = None
        """with ``train.select_by``: a copy of the measured model at its best evaluation so far"""
        self.selected_epoch, self.selected_value = 0, math.inf
        self.epoch, self.history, self._first = 0, [], {}
        self._augment = shifter(self.cfg.shift, model.x_dim)
        self.autocast, self.precision = pick_precision(self.cfg.precision, self.device)

    @property
    def current(self):
        """The model each evaluation measures: the weight average if ``train.ema`` is set, else the trained weights."""
        return self.model if self.averaged is None else self.averaged.module

    @property
    def result(self):
        """The model to use: with ``train.select_by`` the one at the best evaluation, else :attr:`current`."""
        return self.current if self.selected is None else self.selected

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / CHECKPOINT

    def fit(self, x, labels=None, *, resume: bool = False, require_checkpoint: bool = False) -> list[dict]:
        """Train on ``x`` (n, d) with optional ``labels`` (-1 unlabeled) up to ``train.epochs``; with
        ``resume``, from the run directory's checkpoint where there is one (``require_checkpoint``: an
        error where there is none)."""
        model, cfg = self.model, self.cfg
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != model.x_dim:
            raise DataError(f"x has shape {tuple(x.shape)}, expected (n, {model.x_dim})")
        if not torch.isfinite(x).all():
            raise DataError("x contains NaN or infinite values")
        n = x.shape[0]
        if n < cfg.batch_size:
            raise DataError(f"{n} training points is fewer than train.batch_size = {cfg.batch_size}")
        y = labels_for_regime(labels, n, model.config.n_classes, model.regime.labels)
        if self.run_dir is None:
            return self._train(x, y, resume=False)
        if not self.run_dir.is_dir() and resume and require_checkpoint:
            raise CheckpointError(
                f"{self.run_dir} does not exist, so there is nothing to resume; check the path, or "
                f"train without --resume"
            )
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot create the run directory {self.run_dir} ({exc.strerror})") from None
        with RunLock(self.run_dir) if self.main else contextlib.nullcontext():
            exists = self.checkpoint_path.exists()
            if exists and not resume:
                raise CheckpointError(
                    f"{self.run_dir} already holds a checkpoint; pass --resume to continue it, or choose another --out"
                )
            if resume and require_checkpoint and not exists:
                raise CheckpointError(f"{self.run_dir} holds no checkpoint to resume; train without --resume to start")
            return self._train(x, y, resume=resume and exists)

    def _train(self, x, y, resume: bool) -> list[dict]:
        model, cfg = self.model, self.cfg
        if resume:
            resume_training(self)
            log.info("resumed %s at epoch %d", self.checkpoint_path, self.epoch)
        else:
            torch.manual_seed(cfg.seed)
        if self.writes:  # the config the run now follows
            atomic_write(self.run_dir / "config.json", self.config.to_json())
        # metrics.jsonl and .csv from the checkpoint's history: a kill between log and checkpoint left more
        runlog = RunLog(self.run_dir if self.writes else None, self.log_dir if self.main else None)
        runlog.reset(self.history)
        x = x.to(self.device)
        y = y.to(self.device) if y is not None else None
        c = model.config
        # per-image VAT radii (model.vat_knn), from the unshifted images, once per fit
        self._vat_radii = (
            (c.vat_eps * neighbour_distance(x, c.vat_knn))[:, None] if c.vat_knn and c.vat_weight else None
        )
        labeled = torch.nonzero(y >= 0).squeeze(1) if y is not None and "classification" in self.phases else None
        labeled = labeled if labeled is not None and labeled.numel() else None  # no labels: no classification
        steps = x.shape[0] // cfg.batch_size
        if steps < self.world:
            raise DataError(
                f"{x.shape[0]} training points make {steps} minibatches of {cfg.batch_size}, fewer than "
                f"the {self.world} processes; lower train.batch_size or the number of processes"
            )
        local = steps // self.world
        log.info("precision: %s", self.precision)
        self._bar = tqdm(
            total=cfg.epochs * local,
            initial=self.epoch * local,
            disable=not (self.progress and self.main),
            dynamic_ncols=True,
            desc="training",
            unit="step",
        )
        try:
            while self.epoch < cfg.epochs:
                row = self._epoch(x, y, labeled, steps)
                self.history.append(row)
                runlog.append(row)
                runlog.scalars(self.epoch, {k: v for k, v in row.items() if k != "epoch"})
                if self.writes:
                    save_training(self)
        finally:
            self._bar.close()
            runlog.close()
        return self.history

    def _epoch(self, x, y, labeled, steps: int) -> dict:
        model, cfg = self.model.train(), self.cfg
        self._set_learning_rates()
        start = time.perf_counter()
        if self.world == 1:
            perm = torch.randperm(x.shape[0])
        else:  # one permutation on every process, each its own share of it and its own noise
            epoch_seed = cfg.seed * 100_003 + self.epoch
            perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(epoch_seed))
            torch.manual_seed(epoch_seed * 1_009 + distributed.rank())
        batches = distributed.shard(perm, steps, cfg.batch_size).to(self.device)
        sums: dict[str, torch.Tensor] = {}
        bar, steps = self._bar, len(batches)
        for i, idx in enumerate(batches):
            batch = Batch(
                self._augment(x[idx]),
                y[idx] if y is not None else None,
                vat_eps=self._vat_radii[idx] if self._vat_radii is not None else None,
            )
            if labeled is not None:
                pick = labeled[torch.randint(labeled.numel(), (cfg.batch_size,)).to(self.device)]
                batch.x_labeled, batch.y_labeled = self._augment(x[pick]), y[pick]
            with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                losses = train_step(model, batch, self.optimizers, self.phases)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0) + v
            if self.averaged is not None:
                self.averaged.update_parameters(model)
            if i % 50 == 49 or i == steps - 1:
                total = distributed.mean_over_processes(torch.stack(list(sums.values())).double()) / (i + 1)
                means = dict(zip(sums, total.tolist()))
                self._guard(means, i + 1)
                bar.set_postfix({"epoch": self.epoch + 1, **{k: f"{v:.3g}" for k, v in means.items()}}, refresh=False)
            bar.update()
        self.epoch += 1
        row = {"epoch": self.epoch, **means, "seconds": round(time.perf_counter() - start, 3)}
        if self.evaluate is not None and self.main and (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs):
            # Measuring must not change training: it draws from a forked random stream.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                row.update(self.evaluate(self.current.eval()))
            if cfg.select_by:
                self._select(row)
        # with a progress bar the epoch lines go to debug, so they do not tear the bar
        log.log(
            logging.DEBUG if self.progress or not self.main else logging.INFO,
            "epoch %d/%d %s",
            self.epoch,
            cfg.epochs,
            " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float)),
        )
        return row

    def _select(self, row: dict) -> None:
        """Early stopping: keep a copy of the measured model when ``train.select_by`` reaches a new low."""
        key = self.cfg.select_by
        if key not in row:
            measured = sorted(k for k in row if k not in ("epoch", "seconds") and "/" not in k)
            raise ConfigError(
                f"train.select_by = {key!r} is not measured in this run; it measures {', '.join(measured)}"
            )
        if row[key] < self.selected_value:
            if self.selected is None:
                self.selected = copy.deepcopy(self.current)
            self.selected.load_state_dict(self.current.state_dict())
            self.selected_epoch, self.selected_value = self.epoch, float(row[key])

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
