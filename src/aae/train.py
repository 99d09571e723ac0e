"""The one training loop: epochs x minibatches x the regime's phases.

The :class:`Trainer` owns the per-phase optimizers and the learning-rate schedule, the seed,
checkpoints (every ``checkpoint_every`` epochs, atomic), resume, the metrics log, the progress
bar and the NaN guard. It never asks which regime it trains: it runs ``regime.phases``.
Under ``torchrun`` it trains on every process, sharing the minibatches (:mod:`aae.distributed`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from . import distributed
from .config import ExperimentConfig, TrainConfig, from_dict
from .errors import CheckpointError, ConfigError, DataError, TrainingError
from .io import CHECKPOINT, append_jsonl, atomic_write, read_checkpoint, restore, restore_training, save_checkpoint
from .losses import neighbour_distance
from .model import AdversarialAutoencoder
from .phases import Batch, train_step

log = logging.getLogger("aae")

# the optimizer each phase steps; the VAE's ELBO steps the reconstruction optimizer
OPTIMIZERS_OF = {"reconstruction": ("reconstruction",), "elbo": ("reconstruction",),
                 "regularization": ("discriminator", "generator"), "classification": ("classification",),
                 "smoothing": ("generator",)}


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if there is a GPU, else Apple's MPS, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device = {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} but this machine has no CUDA GPU; use auto or cpu")
    return device


def make_optimizer(params, phase: str, cfg: TrainConfig) -> torch.optim.Optimizer:
    lr = cfg.lr[phase]
    kind = cfg.classification_optimizer if phase == "classification" and cfg.classification_optimizer else cfg.optimizer
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum)
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas))


def prepare_labels(labels, n: int, n_classes: int, need: str) -> torch.Tensor | None:
    """Check training labels against what the regime needs (none, optional, some, all)."""
    from .data import check_labels

    if labels is None:
        if need in ("all", "some"):
            raise DataError(f"this regime needs labels ({need}); pass y (with -1 for unlabeled points)")
        return None
    y = torch.from_numpy(check_labels(np.asarray(labels), n_classes, n))
    if need == "all" and (y < 0).any():
        raise DataError(f"the supervised regime needs every label; {(y < 0).sum().item()} of {n} are -1")
    if need == "some" and not (y >= 0).any():
        raise DataError("the semi-supervised regime needs at least one labeled point; for none use the clustering regime")
    return y


class Trainer:
    """Trains an :class:`AdversarialAutoencoder` by its regime's phases.

    >>> trainer = Trainer(model, config)                 # doctest: +SKIP
    >>> history = trainer.fit(x_train, y_train)          # doctest: +SKIP
    """

    def __init__(self, model: AdversarialAutoencoder, config: ExperimentConfig, run_dir: str | Path | None = None,
                 evaluate: Callable[[AdversarialAutoencoder], dict] | None = None):
        self.config, self.cfg = config, config.train
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.evaluate = evaluate
        self.device = distributed.setup(pick_device(self.cfg.device))
        self.main, self.world = distributed.is_main(), distributed.world_size()
        self.writes = self.run_dir is not None and self.main
        """whether this process writes the run directory (process 0 of a multi-process run)"""
        if self.cfg.threads > 0:
            torch.set_num_threads(self.cfg.threads)
        self.model = model.to(self.device)
        self.phases = model.regime.phases(model.config.objective)
        groups = model.parameter_groups()
        needed = {o for p in self.phases for o in OPTIMIZERS_OF[p]}
        self.optimizers = {k: make_optimizer(groups[k], k, self.cfg) for k in groups if k in needed}
        if self.world > 1:
            distributed.broadcast_from_main(self.model)
            for opt in self.optimizers.values():
                distributed.average_gradients_before_step(opt)
        self.averaged = None
        if self.cfg.ema > 0:
            self.averaged = AveragedModel(self.model, multi_avg_fn=ema_with_warmup(self.cfg.ema), use_buffers=True)
        if self.cfg.select_by and evaluate is None:
            raise ConfigError(f"train.select_by = {self.cfg.select_by!r} needs a per-epoch evaluation; train with "
                              f"aae train (which measures the validation split), or leave train.select_by empty")
        self.selected: AdversarialAutoencoder | None = None
        """with ``train.select_by``: a copy of the measured model at its best evaluation so far"""
        self.selected_epoch, self.selected_value = 0, math.inf
        self.epoch, self.history = 0, []
        if self.cfg.shift < 0:
            raise ConfigError(f"train.shift = {self.cfg.shift} must be 0 or more pixels")
        self._augment = ((lambda x, s=image_shape_of(model.x_dim): random_shift(x, self.cfg.shift, s))
                         if self.cfg.shift else (lambda x: x))

    @property
    def current(self) -> AdversarialAutoencoder:
        """The model each evaluation measures: the weight average if ``train.ema`` is set, else the trained weights."""
        return self.model if self.averaged is None else self.averaged.module

    @property
    def result(self) -> AdversarialAutoencoder:
        """The model to use: with ``train.select_by`` the one at the best evaluation, else :attr:`current`."""
        return self.current if self.selected is None else self.selected

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / CHECKPOINT

    def save(self) -> None:
        """The result as the checkpoint's model; beside it, where they differ from it, the weights
        training continues from (``raw/``), the moving average (``average/``) and its step count."""
        if not self.writes:
            return
        extra = {}
        if self.averaged is not None:
            extra["ema/steps"] = self.averaged.n_averaged
            if self.selected is not None:
                extra.update({f"average/{k}": v for k, v in self.averaged.module.state_dict().items()})
        if self.selected is not None:
            extra["selected/epoch"] = torch.tensor(self.selected_epoch)
            extra["selected/value"] = torch.tensor(self.selected_value, dtype=torch.float64)
        save_checkpoint(self.checkpoint_path, model=self.result, config=self.config, x_dim=self.model.x_dim,
                        epoch=self.epoch, history=self.history, optimizers=self.optimizers,
                        raw=None if self.result is self.model else self.model, extra=extra)

    def resume(self) -> bool:
        """Load the run directory's checkpoint, if there is one; return whether it did."""
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return False
        tensors, meta = read_checkpoint(self.checkpoint_path)
        saved = what_must_match(json.loads(meta["config"]))
        mine = what_must_match(self.config.to_dict())
        diff = [k for k in saved if saved[k] != mine[k]]
        if diff:
            raise CheckpointError(f"{self.checkpoint_path} was trained with another [{diff[0]}] config; "
                                  f"use the same config to resume, or another --out")
        has = lambda prefix: any(k.startswith(prefix + "/") for k in tensors)  # noqa: E731
        # training continues from the raw weights where the run kept another model beside them
        restore(self.model, tensors, path=self.checkpoint_path, prefix="raw" if has("raw") else "model")
        if self.averaged is not None:  # the average so far (from a run without one: its weights)
            restore(self.averaged.module, tensors, path=self.checkpoint_path, prefix="average" if has("average") else "model")
            self.averaged.n_averaged.copy_(tensors.get("ema/steps", torch.ones((), dtype=torch.long)))
        if "selected/epoch" in tensors and self.cfg.select_by:
            self.selected = copy.deepcopy(self.current)
            restore(self.selected, tensors, path=self.checkpoint_path)
            self.selected_epoch, self.selected_value = int(tensors["selected/epoch"]), float(tensors["selected/value"])
        self.epoch, self.history = restore_training(tensors, meta, self.optimizers)
        # The log may hold epochs past the checkpoint (a kill between log and checkpoint): rewrite it.
        if self.writes:
            atomic_write(self.run_dir / "metrics.jsonl", "".join(json_line(r) for r in self.history))
        log.info("resumed %s at epoch %d", self.checkpoint_path, self.epoch)
        return True

    def fit(self, x, labels=None, *, resume: bool = False) -> list[dict]:
        """Train on ``x`` (n, d) in [0, 1] with optional ``labels`` (-1 unlabeled) up to ``train.epochs``."""
        model, cfg = self.model, self.cfg
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != model.x_dim:
            raise DataError(f"x has shape {tuple(x.shape)}, expected (n, {model.x_dim})")
        if not torch.isfinite(x).all():
            raise DataError("x contains NaN or infinite values")
        n = x.shape[0]
        if n < cfg.batch_size:
            raise DataError(f"{n} training points is fewer than train.batch_size = {cfg.batch_size}")
        y = prepare_labels(labels, n, model.config.n_classes, model.regime.labels)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.checkpoint_path.exists() and not resume:
                raise CheckpointError(f"{self.run_dir} already holds a checkpoint; pass --resume to continue it, or choose another --out")
        if not (resume and self.resume()):
            torch.manual_seed(cfg.seed)
            if self.writes:
                atomic_write(self.run_dir / "config.json", self.config.to_json())
                atomic_write(self.run_dir / "metrics.jsonl", "")
        x = x.to(self.device)
        y = y.to(self.device) if y is not None else None
        c = model.config
        # per-image VAT radii (model.vat_knn), from the unshifted images, once per fit
        self._vat_radii = (c.vat_eps * neighbour_distance(x, c.vat_knn))[:, None] if c.vat_knn and c.vat_weight else None
        labeled = torch.nonzero(y >= 0).squeeze(1) if y is not None and "classification" in self.phases else None
        labeled = labeled if labeled is not None and labeled.numel() else None  # no labels: no classification
        steps = n // cfg.batch_size
        if steps < self.world:
            raise DataError(f"{n} training points make {steps} minibatches of {cfg.batch_size}, fewer than the "
                            f"{self.world} processes; lower train.batch_size or the number of processes")
        local = steps // self.world
        self._bar = tqdm(total=cfg.epochs * local, initial=self.epoch * local, disable=not (cfg.progress and self.main),
                         dynamic_ncols=True, desc="training", unit="step")
        try:
            while self.epoch < cfg.epochs:
                row = self._epoch(x, y, labeled, steps)
                self.history.append(row)
                if self.writes:
                    append_jsonl(self.run_dir / "metrics.jsonl", row)
                if self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs:
                    self.save()
        finally:
            self._bar.close()
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
            batch = Batch(self._augment(x[idx]), y[idx] if y is not None else None,
                          vat_eps=self._vat_radii[idx] if self._vat_radii is not None else None)
            if labeled is not None:
                pick = labeled[torch.randint(labeled.numel(), (cfg.labeled_batch_size,)).to(self.device)]
                batch.x_labeled, batch.y_labeled = self._augment(x[pick]), y[pick]
            for k, v in train_step(model, batch, self.optimizers, self.phases).items():
                sums[k] = sums.get(k, 0) + v
            if self.averaged is not None:
                self.averaged.update_parameters(model)
            if i % 50 == 49 or i == steps - 1:
                means = dict(zip(sums, (distributed.mean_over_processes(torch.stack(list(sums.values())).double()) / (i + 1)).tolist()))
                self._check_finite(means, i + 1)
                bar.set_postfix({"epoch": self.epoch + 1, **{k: f"{v:.3g}" for k, v in means.items()}}, refresh=False)
            bar.update()
        self.epoch += 1
        row = {"epoch": self.epoch, **means,
               "seconds": round(time.perf_counter() - start, 3)}
        if self.evaluate is not None and self.main and (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs):
            measured = self.current.eval()
            # Measuring must not change training: it draws from a forked random stream.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                row.update(self.evaluate(measured))
            if self.cfg.select_by:
                self._select(row)
        # with a progress bar the epoch lines go to debug, so they do not tear the bar
        log.log(logging.DEBUG if cfg.progress or not self.main else logging.INFO, "epoch %d/%d %s", self.epoch, cfg.epochs,
                 " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float)))
        return row

    def _select(self, row: dict) -> None:
        """Early stopping: keep a copy of the measured model when ``train.select_by`` reaches a new low."""
        key = self.cfg.select_by
        if key not in row:
            measured = sorted(k for k in row if k not in ("epoch", "seconds") and "/" not in k)
            raise ConfigError(f"train.select_by = {key!r} is not measured in this run; it measures {', '.join(measured)}")
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

    def _check_finite(self, means: dict[str, float], step: int) -> None:
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            where = f"; the last good checkpoint is {self.checkpoint_path}" if self.checkpoint_path and self.checkpoint_path.exists() else ""
            raise TrainingError(f"the {bad[0]} loss became {means[bad[0]]} in epoch {self.epoch + 1} by step {step}{where}; "
                                f"lower train.lr.{bad[0] if bad[0] in self.cfg.lr else 'reconstruction'} and resume")


def image_shape_of(d: int, setting: str = "train.shift") -> tuple[int, int, int]:
    """(height, width, channels) of a flattened square image of ``d`` values: grey (s * s) or colour
    (s * s * 3, HWC as the loaders store it)."""
    for channels in (1, 3):
        side = math.isqrt(d // channels)
        if d % channels == 0 and side * side * channels == d:
            return side, side, channels
    raise DataError(f"{d} features are not a square image (s*s grey or s*s*3 colour), so they cannot be shifted; "
                    f"set {setting} = 0")


def random_shift(x, shift: int, image_shape: tuple[int, int, int]):
    """Translate each flattened image of ``x`` (a torch tensor (n, h*w*c)) by its own random offsets
    in [-shift, shift] pixels along each axis, filling with zeros."""
    dy, dx = torch.randint(-shift, shift + 1, (2, x.shape[0], 1), device=x.device)
    return translate(x, dy, dx, shift, image_shape)


def translate(x, dy, dx, shift: int, image_shape: tuple[int, int, int]):
    """The flattened images ``x`` (n, h*w*c) moved so that pixel (i, j) of the result is pixel
    (i + dy, j + dx) of the input, zero where that falls outside; ``dy``, ``dx`` are ints, or (n, 1)
    tensors for one offset per image, each in [-shift, shift]."""
    h, w, c = image_shape
    n = x.shape[0]
    padded = torch.nn.functional.pad(x.reshape(n, h, w, c), (0, 0, shift, shift, shift, shift))
    rows = (torch.arange(h, device=x.device) + shift + torch.as_tensor(dy, device=x.device).reshape(-1, 1))[:, :, None]
    cols = (torch.arange(w, device=x.device) + shift + torch.as_tensor(dx, device=x.device).reshape(-1, 1))[:, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None], rows, cols].reshape(n, -1)


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


def what_must_match(config: dict) -> dict:
    """The parts of a config a resumed run must share with its checkpoint (not where data lives).
    A key that a later version added takes its default, so older checkpoints still resume."""
    config = from_dict(config, strict=False).to_dict()
    data = {k: v for k, v in config["data"].items() if k not in ("data_dir", "download")}
    return {"model": config["model"], "data": data}


def json_line(row: dict) -> str:
    return json.dumps(row) + "\n"
