"""A training's run directory: made ready for the run (created, locked by :class:`RunLock`, checked
against ``--resume``), and the trainer's state (:meth:`~aae.training.trainer.Trainer.state_dict`) saved
in it as the run's checkpoint after every epoch and loaded back to resume. The files themselves
are :mod:`aae.training.checkpoint`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..config.schema import ExperimentConfig
from ..errors import AAEError, CheckpointError, PathError
from ..files import open_own, os_error_line, refuse_links
from .checkpoint import (
    CHECKPOINT,
    FIT,
    LOCK,
    columns_meta,
    read_checkpoint,
    save_state,
    training_state,
    what_must_match,
)
from .runlog import CSV, JSONL, MACHINE

log = logging.getLogger("aae")

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


class RunLock:
    """An exclusive lock on a run directory for the life of a training (``fcntl.flock`` on its
    ``.lock`` file, released by the system if the process dies): a second trainer on the same
    directory stops with one line naming the holder's pid. The lock file is opened never through a
    link (:func:`aae.files.open_own`). A no-op where ``fcntl`` is missing."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path, self.file = Path(run_dir) / LOCK, None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.file = os.fdopen(open_own(self.path, os.O_RDWR | os.O_CREAT), "r+")  # never through a link
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "?"
            self.file.close()
            self.file = None
            raise CheckpointError(
                f"{self.path.parent} is in use by another training (pid {holder}); wait for it to "
                f"finish, or choose another --out"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()  # closing releases the lock
            self.file = None


@contextlib.contextmanager
def training_run_dir(
    run_dir: Path, *, lock: bool, resume: bool, require_checkpoint: bool, trainer=None
) -> Iterator[bool]:
    """Hold ``run_dir`` for a training (locked with :class:`RunLock` where ``lock``:
    process 0 of a multi-process run); yields whether to resume from its checkpoint. A checkpoint
    there without ``resume`` is an error, and so is none with ``require_checkpoint``; so is a
    directory :func:`check_run_dir` refuses for the ``trainer``'s config."""
    stamp = (trainer.stamp if trainer is not None else None) or {}  # an estimator's fit: its fingerprint
    fit, same_fit = stamp.get("meta", {}).get(FIT), True
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
    """A trainer's state (:meth:`~aae.training.trainer.Trainer.state_dict`) as its run's checkpoint,
    with what an estimator keeps beside its model (:attr:`~aae.training.trainer.Trainer.stamp`)."""
    stamp = trainer.stamp or {}
    save_state(
        trainer.checkpoint_path,
        trainer.state_dict(),
        config=trainer.config,
        x_dim=trainer.model.x_dim,
        image_shape=getattr(trainer.model, "image_shape", None),
        extra=stamp.get("tensors"),
        metadata={**columns_meta(trainer.model), **stamp.get("meta", {})},
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
    state = training_state(tensors, meta)
    try:
        trainer.load_state_dict(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path} {exc}") from None
    log.info("resumed %s at epoch %d", path, state["epoch"])
