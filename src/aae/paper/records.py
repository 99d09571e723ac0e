"""Run records: a finished run read back from the small text files it wrote (``config.json``,
``final.json``, ``metrics.jsonl``) without its weights. The tables of :mod:`aae.paper.reproduce`
gather their runs from records, the committed ones under ``docs/results`` included, and train
only the runs that no record holds."""

from __future__ import annotations

import json
from pathlib import Path

from ..config.load import from_dict
from ..config.schema import ExperimentConfig
from ..errors import CheckpointError, ConfigError
from ..experiment import FINAL, Result
from ..files import atomic_write
from ..model.autoencoder import Classifier
from ..model.capabilities import Capabilities
from ..training.checkpoint import what_must_match

RUNTIME = ("eval_every",)
"""train keys that change how a run is watched, not what it learns"""


def recipe(config: dict) -> dict:
    """What makes two finished runs the same experiment: model, data, training and how q(y|x) is
    measured, not how it was watched, nor the keys that do not act: a decay factor without
    milestones, or the autoencoder's keys and learning rates under the classifier objective."""
    cfg = from_dict(config, strict=False)
    full = cfg.to_dict()
    train = {k: v for k, v in full["train"].items() if k not in RUNTIME}
    if not train["lr_milestones"]:
        del train["lr_gamma"]
    same = what_must_match(config)
    if not Capabilities.of(cfg.model).has_decoder:  # the classifier baselines read none of them
        same["model"] = {k: v for k, v in same["model"].items() if k not in Classifier.ignores}
        train["lr"] = {k: v for k, v in train["lr"].items() if k in Classifier.rate_groups}
    return {**same, "train": train, "eval": full["eval"]}


def recorded(run_dir: str | Path, cfg: ExperimentConfig, strict: bool = True) -> Result | None:
    """The finished run recorded in ``run_dir``, or None if it holds no record. A record of another
    experiment is an error (``strict``), or None (a committed record of an older recipe)."""
    run_dir = Path(run_dir)
    if not (run_dir / FINAL).exists():
        return None
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((run_dir / FINAL).read_text())
        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError, RecursionError) as e:
        raise CheckpointError(
            f"{run_dir} holds a broken run record ({e}); move it away to train the run again"
        ) from None
    if recipe(saved) != recipe(cfg.to_dict()):
        if not strict:
            return None
        raise ConfigError(f"{run_dir} holds a finished run of another config; move it away or choose another --out")
    return Result(None, None, history, metrics)


MEASURED = "measured.json"
"""what a table measured on a run's trained model (which records do not keep), beside its record"""


def save_measured(run_dir: str | Path, how: dict | None, values: dict) -> dict:
    """Write what a table measured on the model of ``run_dir``, and how (``how``: what the figures
    depend on beyond the run, e.g. the number of samples); return ``values``."""
    atomic_write(Path(run_dir) / MEASURED, json.dumps({"how": how or {}, "values": values}, indent=1) + "\n")
    return values


def with_measured(res: Result, run_dir: str | Path, how: dict | None) -> Result | None:
    """The record ``res`` with the figures measured on its model the same ``how``, or None where
    the record has none (the model must be trained again to measure it)."""
    path = Path(run_dir) / MEASURED
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        how_saved, values = saved["how"], saved["values"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise CheckpointError(f"{path} is broken ({e}); delete it to measure the run again") from None
    if how_saved != json.loads(json.dumps(how or {})):
        return None
    res.metrics.update(values)
    return res
