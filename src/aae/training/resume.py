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

from ..errors import CheckpointError
from .checkpoint import (
    CHECKPOINT,
    RunLock,
    read_checkpoint,
    restore,
    restore_training,
    save_checkpoint,
    what_must_match,
)


@contextlib.contextmanager
def training_run_dir(run_dir: Path, *, lock: bool, resume: bool, require_checkpoint: bool) -> Iterator[bool]:
    """Hold ``run_dir`` for a training (locked with :class:`~aae.training.checkpoint.RunLock` where ``lock``:
    process 0 of a multi-process run); yields whether to resume from its checkpoint. A checkpoint
    there without ``resume`` is an error, and so is none with ``require_checkpoint``."""
    if not run_dir.is_dir() and resume and require_checkpoint:
        raise CheckpointError(
            f"{run_dir} does not exist, so there is nothing to resume; check the path, or train without --resume"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the run directory {run_dir} ({exc.strerror})") from None
    with RunLock(run_dir) if lock else contextlib.nullcontext():
        exists = (run_dir / CHECKPOINT).exists()
        if exists and not resume:
            raise CheckpointError(
                f"{run_dir} already holds a checkpoint; pass --resume to continue it, or choose another --out"
            )
        if resume and require_checkpoint and not exists:
            raise CheckpointError(f"{run_dir} holds no checkpoint to resume; train without --resume to start")
        yield resume and exists


def save_training(trainer) -> None:
    """A trainer's state as its run's checkpoint: the result as the model; beside it, where they
    differ from it, the weights training continues from (``raw/``), the moving average
    (``average/``) and its step count, and the early-stopping choice."""
    extra, selection = {}, trainer.selection
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
