"""From a config to a trained model: data, model, trainer, metrics and figures, in one place
that the command line, the estimators and the reproduction scripts all use."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ExperimentConfig, from_dict
from .data import Splits, check_labels, label_budget, load
from .evaluate import epoch_metrics, final_metrics, write_figures
from .errors import CheckpointError, ConfigError
from .io import CHECKPOINT, atomic_write, config_of, load as load_model, read_checkpoint
from .model import AdversarialAutoencoder
from .regimes import get_regime
from .train import Trainer, what_must_match

log = logging.getLogger("aae")


FINAL = "final.json"


@dataclass
class Result:
    model: AdversarialAutoencoder | None
    """None for a run read back from its record (final.json and metrics.jsonl) without weights"""
    splits: Splits | None
    history: list[dict]
    metrics: dict

    @property
    def epochs(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    @property
    def seconds(self) -> float:
        """Training wall time summed over epochs, so a resumed run counts every session's share."""
        return float(sum(r.get("seconds", 0.0) for r in self.history))


def prepare_data(cfg: ExperimentConfig) -> Splits:
    """The data a config names, with its subset and label budget applied to the training split."""
    d = cfg.data
    splits = load(d.name, d.data_dir, download=d.download, valid_size=d.valid_size, seed=d.label_seed,
                  progress=cfg.train.progress)
    if d.subset is not None:
        splits.train = splits.train.subset(slice(0, d.subset))
    if d.n_labeled is not None and splits.train.y is not None:
        splits.train.y = label_budget(splits.train.y, d.n_labeled, seed=d.label_seed, n_classes=splits.train.n_classes)
    return splits


def train_labels(cfg: ExperimentConfig, splits: Splits) -> np.ndarray | None:
    """The labels the regime may see: none for regimes that use no labels."""
    return None if get_regime(cfg.model.regime).label_to is None else splits.train.y


def run(cfg: ExperimentConfig, out: str | Path | None = None, *, resume: bool = False,
        figures: bool = True, splits: Splits | None = None, prior=None) -> Result:
    """Train the experiment ``cfg`` (resuming from ``out`` if asked), then measure and draw it."""
    splits = splits or prepare_data(cfg)
    if get_regime(cfg.model.regime).label_to is not None:
        # every split, not only the one training reads: a bad test label would skew the metrics
        for part in ("train", "valid", "test"):
            data = getattr(splits, part)
            if data.y is not None:
                check_labels(data.y, cfg.model.n_classes, len(data), where=f"{part} labels")
    torch.manual_seed(cfg.train.seed)  # the initial weights too follow train.seed
    model = AdversarialAutoencoder(cfg.model, splits.train.x.shape[1], prior=prior)
    trainer = Trainer(model, cfg, out, evaluate=epoch_metrics(splits, cfg))
    history = trainer.fit(splits.train.x, train_labels(cfg, splits), resume=resume)
    model = trainer.result.eval()
    if not trainer.main:  # under torchrun, process 0 measures and writes
        return Result(model, splits, history, {})
    metrics = final_metrics(model, splits, cfg)
    if trainer.selected is not None:
        metrics.update(selected_epoch=trainer.selected_epoch, **{f"selected_{cfg.train.select_by}": trainer.selected_value})
    if out is not None:
        write_final(out, metrics)
        if figures:
            write_figures(model, splits, Path(out), history)
    return Result(model, splits, history, metrics)


def write_final(run_dir: str | Path, metrics: dict) -> Path:
    """A run's final metrics as its record (``final.json``), which `recorded` reads back."""
    path = Path(run_dir) / FINAL
    atomic_write(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


AUTOENCODER_ONLY = ("output", "prior", "z_dim", "disc_hidden", "label_to_discriminator", "z_disc_reads_y",
                    "y_adversary", "reconstruction_trains_y", "y_batch_mean", "eta", "head_penalty")
"""model keys that only the decoder and the discriminators read: a classifier objective never trains them"""


def _recipe(config: dict) -> dict:
    """What makes two finished runs the same experiment: model, data, training and how q(y|x) is
    measured, not where or how fast it ran, nor the keys that do not act: a decay factor without
    milestones, or the autoencoder's keys under a classifier objective (classifier, vat)."""
    runtime = ("progress", "threads", "device", "checkpoint_every", "eval_every")
    full = from_dict(config, strict=False).to_dict()
    train = {k: v for k, v in full["train"].items() if k not in runtime}
    if not train["lr_milestones"]:
        del train["lr_gamma"]
    same = what_must_match(config)
    if same["model"]["objective"] in ("classifier", "vat"):
        same["model"] = {k: v for k, v in same["model"].items() if k not in AUTOENCODER_ONLY}
    return {**same, "train": train, "eval": full["eval"]}


def recorded(run_dir: str | Path, cfg: ExperimentConfig) -> Result | None:
    """A finished run read back from its record (``final.json``, ``metrics.jsonl``, ``config.json``),
    without weights: how a reproduction table gathers runs that earlier sessions finished. None if
    ``run_dir`` holds no record; an error if it holds one of a different experiment."""
    run_dir = Path(run_dir)
    if not (run_dir / FINAL).exists():
        return None
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((run_dir / FINAL).read_text())
        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{run_dir} holds a broken run record ({e}); remove it to train the run again") from e
    if _recipe(saved) != _recipe(cfg.to_dict()):
        raise ConfigError(f"{run_dir} holds a finished run of another config; remove it or choose another --out")
    return Result(None, None, history, metrics)


def open_run(run_dir: str | Path, data_dir: str | None = None) -> tuple[AdversarialAutoencoder, ExperimentConfig, Splits]:
    """A trained run directory's model, config and data (from ``data_dir`` if given)."""
    _, meta = read_checkpoint(Path(run_dir) / CHECKPOINT if Path(run_dir).is_dir() else run_dir)
    cfg = config_of(meta, run_dir)
    if data_dir is not None:
        cfg.data.data_dir = data_dir
    return load_model(run_dir), cfg, prepare_data(cfg)
