"""A run's training log in the tools people watch: ``metrics.jsonl`` (one JSON object per epoch, what
the library reads back), ``metrics.csv`` beside it (for a spreadsheet or pandas) and, with ``log_dir``,
TensorBoard event files (scalars and images); and ``machine.json``, where it trained.

>>> log = RunLog(Path("runs/demo"), log_dir="runs/tb")        # doctest: +SKIP
>>> log.append({"epoch": 1, "reconstruction": 71.2})          # doctest: +SKIP
>>> log.scalars(1, {"reconstruction": 71.2})                  # doctest: +SKIP
>>> log.close()                                               # doctest: +SKIP

TensorBoard is optional (``pip install tensorboard``); asking for ``log_dir`` without it is a
:class:`~aae.errors.ConfigError` when the log is made, before any training.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..files import append_text, atomic_write, check_writable

JSONL, CSV, MACHINE = "metrics.jsonl", "metrics.csv", "machine.json"


def record_machine(run_dir: str | Path, epoch: int, where: dict) -> None:
    """Add to the run's ``machine.json`` (a list, one entry per start or resume) where it trains
    from ``epoch`` on: the CPU model and flags, threads, device, torch and precision
    (:func:`aae.training.devices.machine`), so a record's minutes can be read against its machine."""
    path = Path(run_dir) / MACHINE
    try:
        stints = json.loads(path.read_text()) if path.exists() else []
    except (ValueError, RecursionError):
        stints = []  # a broken file of the run's own is replaced, not fatal
    stints = stints if isinstance(stints, list) else []
    stints = [s for s in stints if isinstance(s, dict) and s.get("from_epoch", 0) < epoch]
    atomic_write(path, json.dumps([*stints, {"from_epoch": epoch, **where}], indent=1) + "\n")


def read_history(run_dir: str | Path) -> list[dict] | None:
    """The epoch rows of a run's ``metrics.jsonl``, or None where it has none; a line that is not
    an epoch's row (a kill mid-line, an edit) is skipped."""
    path = Path(run_dir) / JSONL
    if not path.exists():
        return None
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
    return rows


def check_tensorboard(log_dir: str) -> None:
    """Refuse a ``log_dir`` where the tensorboard package is missing, or that cannot be written,
    before any training."""
    check_writable(log_dir, "the log directory")
    try:
        import tensorboard  # noqa: F401  (SummaryWriter needs it, and says so less plainly)
    except ImportError:
        raise ConfigError(
            f"log_dir = {log_dir!r} writes TensorBoard event files, which needs the tensorboard "
            "package: pip install tensorboard (or pip install 'adversarial-autoencoders[tensorboard]')"
        ) from None


def _writer(log_dir: str):
    check_tensorboard(log_dir)
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))


class RunLog:
    """Where a run's epoch rows go: ``run_dir/metrics.jsonl`` and ``run_dir/metrics.csv`` (none with
    ``run_dir`` None) and, with ``log_dir``, TensorBoard event files there."""

    def __init__(self, run_dir: Path | None, log_dir: str | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.log_dir = log_dir
        self._writer = _writer(log_dir) if log_dir is not None else None
        self._rows: list[dict] = []
        self._columns: list[str] = []
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def jsonl_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / JSONL

    @property
    def csv_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / CSV

    def reset(self, rows: list[dict]) -> None:
        """Rewrite both files from ``rows`` (a fresh run: none; a resumed one: the checkpoint's history)."""
        self._rows = [dict(r) for r in rows]
        self._columns = []
        for row in self._rows:
            self._columns += [k for k in row if k not in self._columns]
        if self.run_dir is not None:
            atomic_write(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in self._rows))
            atomic_write(self.csv_path, self._csv(self._rows, header=True))

    def append(self, row: dict) -> None:
        """One epoch's row, to the end of both files; the CSV is rewritten when the row brings a new column."""
        row = dict(row)
        self._rows.append(row)
        new = [k for k in row if k not in self._columns]
        self._columns += new
        if self.run_dir is None:
            return
        append_text(self.jsonl_path, json.dumps(row) + "\n")
        if new or not self.csv_path.exists():
            atomic_write(self.csv_path, self._csv(self._rows, header=True))
        else:
            append_text(self.csv_path, self._csv([row], header=False))

    def _csv(self, rows: list[dict], header: bool) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self._columns, restval="", lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def scalars(self, step: int, values: dict[str, Any]) -> None:
        """Each finite number in ``values`` as a TensorBoard scalar at ``step`` (nothing without log_dir)."""
        if self._writer is None:
            return
        for tag, value in values.items():
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value):
                self._writer.add_scalar(tag, float(value), int(step))

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """A (h, w) grey or (h, w, c) colour image with values in [0, 1] (or uint8) as a TensorBoard image."""
        if self._writer is None:
            return
        image = np.asarray(image)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise ValueError(f"image {tag!r} has shape {image.shape}; expected (h, w) or (h, w, c) with c in 1, 3, 4")
        self._writer.add_image(tag, image, int(step), dataformats="HW" if image.ndim == 2 else "HWC")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
