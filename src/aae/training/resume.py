"""A training's run directory: made ready for the run (created, locked, checked against
``--resume``), and the trainer's state (:meth:`~aae.training.trainer.Trainer.state_dict`) saved
in it as the run's checkpoint after every epoch and loaded back to resume. The files themselves
are :mod:`aae.training.checkpoint`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from ..errors import CheckpointError
from .checkpoint import CHECKPOINT, RunLock, read_checkpoint, save_state, training_state, what_must_match

log = logging.getLogger("aae")


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
    """A trainer's state as its run's checkpoint."""
    save_state(trainer.checkpoint_path, trainer.state_dict(), config=trainer.config, x_dim=trainer.model.x_dim)


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
    state = training_state(tensors, meta)
    try:
        trainer.load_state_dict(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path} {exc}") from None
    log.info("resumed %s at epoch %d", path, state["epoch"])
