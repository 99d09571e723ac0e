"""A training's run directory: made ready for the run (created, locked, checked against
``--resume``), and the trainer's state saved in it as the run's checkpoint after every epoch and
loaded back to resume. The files themselves are :mod:`aae.training.checkpoint`'s.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from ..config.schema import ExperimentConfig
from ..errors import AAEError, CheckpointError, PathError
from ..files import os_error_line, refuse_links
from .checkpoint import (
    CHECKPOINT,
    FIT,
    LOCK,
    RunLock,
    read_checkpoint,
    restore,
    restore_training,
    save_checkpoint,
    what_must_match,
)
from .runlog import CSV, JSONL, MACHINE

RUN_FILES = frozenset({CHECKPOINT, "config.json", JSONL, CSV, MACHINE, "final.json", "figures", LOCK})
"""what a training writes in its run directory (final.json and figures/ at its end, by aae.experiment)"""


def _temporary(name: str) -> bool:
    """A temporary file of :func:`aae.files.atomic_write`'s that a kill -9 left."""
    return name.startswith(".") and name.endswith(".tmp") and name[1:].split(".tmp")[0].rsplit(".", 1)[0] in RUN_FILES


def check_run_dir(
    run_dir: str | Path, config: ExperimentConfig, *, resume: bool, require_checkpoint: bool, fit: str | None = None
) -> bool:
    """Refuse, before anything is read or written, a run directory a training may not use: one
    with nothing to resume where ``require_checkpoint``; one whose files of a run are symbolic
    links; and, for a fresh start, one that holds anything but a run's own files, or a
    ``config.json`` of another config, since the training would overwrite them.

    An estimator's fit (``fit``: its fingerprint, :data:`~aae.training.checkpoint.FIT`) continues
    the checkpoint there only where it is of the same fit and at most ``train.epochs`` in; any
    other fit of an estimator's trains afresh in its place (an unfinished run of any config may
    be replaced), and a checkpoint that is no estimator's (an ``aae train`` run) is refused.
    Returns whether the checkpoint there is to be continued."""
    run_dir = Path(run_dir)
    if run_dir.is_symlink() and not run_dir.exists():
        raise PathError(f"{run_dir} is a symbolic link to nowhere (or to itself); remove it, or choose another --out")
    if not run_dir.exists():
        if resume and require_checkpoint:
            raise CheckpointError(
                f"{run_dir} does not exist, so there is nothing to resume; check the path, or train without --resume"
            )
        return
    if not run_dir.is_dir():
        raise CheckpointError(f"the run directory {run_dir} is a file; give a directory")
    names = {p.name for p in run_dir.iterdir()}
    for name in sorted(names & RUN_FILES):
        refuse_links(run_dir / name)
    if fit is not None and CHECKPOINT in names:
        _, meta = read_checkpoint(run_dir / CHECKPOINT)
        if FIT not in meta:
            raise PathError(
                f"{run_dir} holds a checkpoint that is no estimator's fit (an aae train run, or a fit of an "
                f"older aae without a fingerprint); move it away, or give checkpoint_dir a folder of its own"
            )
        return meta[FIT] == fit and int(meta.get("epoch", "0")) <= config.train.epochs
    if (CHECKPOINT in names and resume) or not names - {LOCK}:
        return CHECKPOINT in names
    if CHECKPOINT in names:
        raise CheckpointError(
            f"{run_dir} already holds a checkpoint; pass --resume to continue it, or choose another --out"
        )
    if require_checkpoint:
        raise CheckpointError(f"{run_dir} holds no checkpoint to resume; train without --resume to start")
    other = sorted(n for n in names if n not in RUN_FILES and not _temporary(n))
    if other:
        shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
        raise PathError(f"{run_dir} holds files a training did not write ({shown}); give an empty or new --out")
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        if not isinstance(saved, dict) or not {"model", "train", "data"} <= saved.keys():
            raise ValueError("not a run's config")
        same = what_must_match(saved) == what_must_match(config.to_dict())
    except (OSError, ValueError, TypeError, AttributeError, KeyError, RecursionError, AAEError):
        raise PathError(
            f"{run_dir} holds {', '.join(sorted(names - {LOCK}))} but no config.json of an aae run; give an "
            f"empty or new --out"
        ) from None
    if fit is None and not same:
        raise PathError(
            f"{run_dir} holds an unfinished run of another config (its config.json); give an empty or new "
            f"--out, or move it away"
        )
    return False


@contextlib.contextmanager
def training_run_dir(
    run_dir: Path, *, lock: bool, resume: bool, require_checkpoint: bool, trainer=None
) -> Iterator[bool]:
    """Hold ``run_dir`` for a training (locked with :class:`~aae.training.checkpoint.RunLock` where ``lock``:
    process 0 of a multi-process run); yields whether to resume from its checkpoint. A checkpoint
    there without ``resume`` is an error, and so is none with ``require_checkpoint``; so is a
    directory :func:`check_run_dir` refuses for the ``trainer``'s config."""
    fit, same_fit = (getattr(trainer, "stamp", None) or {}).get("meta", {}).get(FIT), True
    if trainer is not None:
        same_fit = check_run_dir(run_dir, trainer.config, resume=resume, require_checkpoint=require_checkpoint, fit=fit)
    elif not run_dir.is_dir() and resume and require_checkpoint:
        raise CheckpointError(
            f"{run_dir} does not exist, so there is nothing to resume; check the path, or train without --resume"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the run directory: {os_error_line(exc)}") from None
    with RunLock(run_dir) if lock else contextlib.nullcontext():
        exists = (run_dir / CHECKPOINT).exists()
        if exists and not resume:
            raise CheckpointError(
                f"{run_dir} already holds a checkpoint; pass --resume to continue it, or choose another --out"
            )
        if resume and require_checkpoint and not exists:
            raise CheckpointError(f"{run_dir} holds no checkpoint to resume; train without --resume to start")
        yield resume and exists and (fit is None or same_fit)


def save_training(trainer) -> None:
    """A trainer's state as its run's checkpoint: the result as the model; beside it, where they
    differ from it, the weights training continues from (``raw/``), the moving average
    (``average/``) and its step count, and the early-stopping choice."""
    stamp = getattr(trainer, "stamp", None) or {}  # what an estimator keeps beside its model
    extra, selection = dict(stamp.get("tensors", {})), trainer.selection
    if trainer.averaged is not None:
        extra["ema/steps"] = trainer.averaged.n_averaged
        if selection.model is not None:
            extra.update({f"average/{k}": v for k, v in trainer.averaged.module.state_dict().items()})
    if selection.model is not None:
        extra["selected/epoch"] = torch.tensor(selection.epoch)
        extra["selected/value"] = torch.tensor(selection.value, dtype=torch.float64)
    save_checkpoint(
        trainer.checkpoint_path,
        model=trainer.result,
        config=trainer.config,
        x_dim=trainer.model.x_dim,
        epoch=trainer.epoch,
        history=trainer.history,
        optimizers=trainer.optimizers,
        raw=None if trainer.result is trainer.model else trainer.model,
        extra=extra,
        metadata=stamp.get("meta"),
    )


def resume_training(trainer) -> None:
    """Load a trainer's state from its run's checkpoint, refusing one of another experiment."""
    path = trainer.checkpoint_path
    tensors, meta = read_checkpoint(path)
    saved, mine = what_must_match(json.loads(meta["config"])), what_must_match(trainer.config.to_dict())
    for part in saved:
        diff = [k for k in saved[part] if saved[part][k] != mine[part].get(k)]
        if diff:
            raise CheckpointError(
                f"{path} was trained with {part}.{diff[0]} = {saved[part][diff[0]]!r}, not "
                f"{mine[part].get(diff[0])!r}; a resume cannot change it: use the run's config, "
                f"or another --out"
            )

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix + "/") for k in tensors)

    # training continues from the raw weights where the run kept another model beside them
    restore(trainer.model, tensors, path=path, prefix="raw" if has("raw") else "model")
    if trainer.averaged is not None:  # the average so far (from a run without one: its weights)
        restore(trainer.averaged.module, tensors, path=path, prefix="average" if has("average") else "model")
        trainer.averaged.n_averaged.copy_(tensors.get("ema/steps", torch.ones((), dtype=torch.long)))
    if "selected/epoch" in tensors and trainer.cfg.select_by:
        selection = trainer.selection
        selection.model = copy.deepcopy(trainer.current)
        restore(selection.model, tensors, path=path)
        selection.epoch, selection.value = int(tensors["selected/epoch"]), float(tensors["selected/value"])
    trainer.epoch, trainer.history = restore_training(tensors, meta, trainer.optimizers)
