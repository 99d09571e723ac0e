"""The one training loop: epochs x minibatches x the model's phases.

The :class:`Trainer` runs the epochs and keeps the training's state (:meth:`Trainer.state_dict`,
what the run's checkpoint holds); :class:`~aae.training.batches.Minibatches` makes what the phases
read, :mod:`aae.training.watch` keeps the best epoch, guards against diverging losses and shows
the run. The optimizers and their rates, and the weight average, are
:mod:`aae.training.optimizers`', the run directory and its checkpoint :mod:`aae.training.resume`'s.
It never asks which regime it trains: it runs ``model.phases``. Under ``torchrun`` it trains on
every process, sharing the minibatches (:mod:`aae.training.distributed`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..config.schema import ExperimentConfig
from ..data.augment import image_shape_of, shifter
from ..files import atomic_write
from ..model.phases import train_step
from . import distributed
from .batches import Minibatches, training_tensors
from .checkpoint import CHECKPOINT, load_weights
from .devices import flush_denormals, load_rng_state, machine, pick_device, pick_precision, rng_state, step_autocast
from .optimizers import Optimizers, weight_average
from .resume import resume_training, save_training, training_run_dir
from .runlog import RunLog, check_tensorboard, record_machine
from .watch import BestEpoch, Guard, Progress, RunningMeans

log = logging.getLogger("aae")


class Trainer:
    """Trains a model (:class:`~aae.model.autoencoder.AdversarialAutoencoder` or a baseline) by its phases.

    >>> history = Trainer(model, config, "runs/x").fit(x_train, y_train)   # doctest: +SKIP
    """

    stamp: dict | None = None  # an estimator's tensors and meta each checkpoint keeps: aae.estimators.store.fit_stamp

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
        self.checkpoint_path = None if self.run_dir is None else self.run_dir / CHECKPOINT
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
        self.optimizers = Optimizers(self.model, self.cfg)
        distributed.share(self.model, self.optimizers)
        self.averaged = weight_average(self.model, self.cfg.ema)
        self.selection = BestEpoch(self.cfg.select_by, measured=evaluate is not None)
        self.epoch, self.history, self._guard = 0, [], Guard(self.checkpoint_path)
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
        model, cfg, start = self.model.train(), self.cfg, time.perf_counter()
        self.optimizers.schedule(self.epoch)  # the rates change only where the schedule says
        batches, losses, sources = data.epoch(cfg.seed, self.epoch), RunningMeans(), self._guard.sources
        for i, idx in enumerate(batches):
            with step_autocast(self.device, self.autocast):
                losses.add(train_step(model, data.batch(idx), self.optimizers, self.phases, sources=sources))
            if self.averaged is not None:
                self.averaged.update_parameters(model)
            if i % 50 == 49 or i == len(batches) - 1:
                means = losses.means(i + 1)
                self._guard.check(means, self.epoch + 1, i + 1)
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

    # -- the training's state: what the run's checkpoint holds -------------------------------
    def state_dict(self) -> dict:
        """What resumes this training exactly: ``epoch``, ``history``; the result's weights (``model``,
        what :func:`aae.load` gives) and where they differ from it those training continues from
        (``raw``) and the average (``average``; ``ema_steps``); the early-stopping choice
        (``selected``); the optimizers' state by group (``optimizers``); the random streams (``rng``)."""
        averaged, kept = self.averaged, self.selection.model is not None
        return {
            "epoch": self.epoch,
            "history": self.history,
            "model": self.result.state_dict(),
            "raw": None if self.result is self.model else self.model.state_dict(),
            "average": averaged.module.state_dict() if averaged is not None and kept else None,
            "ema_steps": None if averaged is None else averaged.n_averaged,
            "selected": self.selection.state_dict(),
            "optimizers": self.optimizers.state_dict(),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (as :meth:`state_dict` gives it): from the raw weights where it kept
        them, the average from its own (else those weights), the rates from this trainer's config."""
        load_weights(self.model, state["model"] if state.get("raw") is None else state["raw"])
        if self.averaged is not None:  # the average so far (from a run without one: its weights)
            load_weights(self.averaged.module, state.get("average") or state["model"])
            steps = state.get("ema_steps")
            self.averaged.n_averaged.copy_(torch.ones((), dtype=torch.long) if steps is None else steps)
        self.selection.load_state_dict(state.get("selected"), state["model"], self.current)
        self.optimizers.load_state_dict(state["optimizers"], state["epoch"])
        load_rng_state(state.get("rng"))
        self.epoch, self.history = state["epoch"], list(state["history"])
