"""Gathering a table's runs and writing it: each run is read from its record (under ``--out``, else
the committed ``--records``) or, where asked, trained; the table is printed and written to
``<out>/results.md`` with the command, the seeds and the machine."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config.schema import ExperimentConfig
from ..errors import ConfigError
from ..experiment import FINAL, Result, prepare_data, run
from ..files import check_own, replace_own
from ..training.checkpoint import CHECKPOINT
from ..training.devices import cpu_model
from ..training.runlog import MACHINE
from .records import recorded, save_measured, with_measured


@dataclass
class Headline:
    """One line of the paper's summary (``aae reproduce all``): a result, ours beside the paper's, and the
    runs it rests on."""

    what: str
    ours: str
    paper: str
    runs: list[Result] = field(default_factory=list)
    table: Path | None = None
    """the table's results.md"""


def overrides(args) -> list[str]:
    out = list(args.set)
    if args.epochs is not None:
        out.append(f"train.epochs={args.epochs}")
    if args.data_dir:
        out.append(f"data.data_dir='{args.data_dir}'")
    return out


def planning(args) -> bool:
    """Whether this is the quiet first pass of ``--jobs``, which only notes the runs to train
    (``args.plan``, an `aae.paper.pool.Plan`)."""
    return getattr(args, "plan", None) is not None


def table_dir(args, name: str) -> Path:
    """Where an experiment's runs and table go: --out, else ``<root>/<name>`` (``aae reproduce all``'s
    --out, else runs/reproduce)."""
    return Path(args.out) if args.out else Path(getattr(args, "root", None) or "runs/reproduce") / name


class Runs:
    """The runs of one table, gathered: ``get`` returns every (variant, seed) that can be had, and
    ``missing`` names the runs that neither a run directory nor a record holds and that were not trained
    (the table's notes list them)."""

    def __init__(self, args, name: str):
        self.args, self.name = args, name
        check_own(table_dir(args, name) / "results.md", f"# {name}")  # refused before training, not after
        self.missing: list[str] = []
        self.trained_on: Counter[str] = Counter()
        """how many of the gathered runs trained on each machine, as their ``machine.json`` says"""

    def label_seeds(self, draws: bool) -> list[int | None]:
        """Each seed's label draw: ``--label-seeds``, else the seed itself where the table ``draws``
        (a new labeled subset and validation split per seed), else the config's own (None)."""
        given = getattr(self.args, "label_seeds", None)
        if given is not None:
            if len(given) != len(self.args.seeds):
                raise ConfigError(
                    f"--label-seeds: {len(given)} given for {len(self.args.seeds)} seeds; give one per seed"
                )
            return list(given)
        return list(self.args.seeds) if draws else [None] * len(self.args.seeds)

    def get(
        self,
        configs: dict[str, ExperimentConfig],
        sub: str = "",
        draws: bool = False,
        measure: Callable[[Result], dict] | None = None,
        how: dict | None = None,
    ) -> dict[str, list[Result]]:
        """Every (variant, seed): the run under ``<out>/<sub>`` (resumed where it has a checkpoint),
        else the committed record of the same recipe under ``<records>/<name>/<sub>``, else, with
        ``--train`` (or ``--retrain``), a new run trained under ``<out>/<sub>``. A run is
        ``<variant>-seed<seed>``, with ``-draw<n>`` where its label draw is given and is not its seed.

        A table that measures the trained model passes ``measure`` (the model's result to a dict of
        figures) and ``how`` (what the figures depend on beyond the run): a record then counts only
        with a ``measured.json`` of the same ``how``, which measuring a model writes beside its record."""
        args = self.args
        root = table_dir(args, self.name) / sub
        committed = None if args.retrain or not args.records else Path(args.records) / self.name / sub
        train = getattr(args, "train", False) or args.retrain
        results: dict[str, list[Result]] = {}
        splits: dict[int | None, object] = {}
        for variant, cfg in configs.items():
            for seed, draw in zip(args.seeds, self.label_seeds(draws), strict=True):
                cfg.train.seed = seed
                if draw is not None:
                    cfg.data.label_seed = draw
                run_dir = root / (f"{variant}-seed{seed}" + ("" if draw in (None, seed) else f"-draw{draw}"))
                res, where = _record(run_dir, committed, cfg, how, measured=measure is not None)
                if planning(args):  # the quiet first pass of --jobs: note what to train, read nothing
                    needed = res is None and (train or (run_dir / CHECKPOINT).exists())
                    if needed and _finished_record(run_dir, cfg) is None:
                        args.plan.add(cfg.to_dict(), run_dir)
                    continue
                if res is None and (train or (run_dir / CHECKPOINT).exists()):
                    key = cfg.data.label_seed
                    splits[key] = splits.get(key) or prepare_data(cfg, not args.no_progress)
                    res = run(
                        cfg, run_dir, resume=True, splits=splits[key], device=args.device, progress=not args.no_progress
                    )
                    if measure is not None:
                        res.metrics.update(save_measured(run_dir, how, measure(res)))
                    where = run_dir
                if res is None:
                    self.missing.append(f"{sub + '/' if sub else ''}{run_dir.name}")
                    continue
                self.trained_on[trained_on(where)] += 1
                results.setdefault(variant, []).append(res)
        return results


def _finished_record(run_dir: Path, cfg: ExperimentConfig) -> Result | None:
    """The record of ``cfg``'s run in ``run_dir`` where it trained to its end: a record of the same
    recipe written after its last checkpoint (a run resumed for more epochs has a newer checkpoint)
    whose log reaches the config's last epoch (``aae eval --write`` cannot make an unfinished run
    look finished); else None."""
    final, checkpoint = run_dir / FINAL, run_dir / CHECKPOINT
    if not final.exists() or (checkpoint.exists() and final.stat().st_mtime < checkpoint.stat().st_mtime):
        return None
    res = recorded(run_dir, cfg, strict=False)
    return res if res is not None and res.epochs >= cfg.train.epochs else None


def _record(run_dir: Path, committed: Path | None, cfg: ExperimentConfig, how: dict | None, *, measured: bool):
    """The finished run's record and its directory: the one under --out, else, where --out holds nothing
    of the run, the committed one of the same recipe; with ``measured``, only with its figures measured
    the same ``how``. None where the run is unfinished (it is resumed instead), where its model is yet
    to be measured, or where there is no such record."""
    where = run_dir
    if (run_dir / CHECKPOINT).exists():
        res = _finished_record(run_dir, cfg)
        if res is None:
            return None, run_dir
    else:
        res = recorded(run_dir, cfg)
    if res is None and committed is not None and not run_dir.exists():
        where = committed / run_dir.name
        res = recorded(where, cfg, strict=False)
    return (with_measured(res, where, how) if res is not None and measured else res), where


def _count(n, word: str) -> str:
    """``n word``, with the plural where n is not 1."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def trained_on(run_dir: Path) -> str:
    """Where a run trained, from its ``machine.json`` (each start or resume): CPU or GPU, threads
    and precision (or that the record predates the file)."""
    try:
        stints = json.loads((Path(run_dir) / MACHINE).read_text())
    except (OSError, ValueError):
        return "not in the record (it predates machine.json)"
    parts = []
    for s in stints:
        where = s.get("cpu", "?") if s.get("device") == "cpu" else s.get("device", "?")
        precision = str(s.get("precision", "?")).split(" ")[0]
        parts.append(f"{where}, {_count(s.get('threads', '?'), 'thread')}, {precision}")
    return " then ".join(dict.fromkeys(parts))


def all_runs(results: dict[str, list[Result]]) -> list[Result]:
    """Every run of every variant of a table."""
    return [r for rs in results.values() for r in rs]


def chosen(args, variants: dict) -> dict:
    """The rows of ``variants`` that ``--models`` picks (every one where it is not given); a one-line
    error where it picks none of them."""
    wanted = getattr(args, "models", None) or list(variants)
    picked = {k: v for k, v in variants.items() if k in wanted}
    if not picked:
        raise ConfigError(f"--models {' '.join(wanted)}: this experiment has only {', '.join(variants)}")
    return picked


def stat(values: list[float], scale: float = 1.0, digits: int = 4, unit: str = "") -> str:
    v = np.asarray(values) * scale
    return (
        f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}{unit}"
        if len(v) > 1
        else f"{v[0]:.{digits}f}{unit} (1 seed)"
    )


def epochs_kept(rs: list[Result]) -> str:
    """Epochs trained and, for runs that stopped early on the validation set, the epoch each one kept."""
    chosen = [str(r.metrics["selected_epoch"]) for r in rs if "selected_epoch" in r.metrics]
    return f"{rs[0].epochs} ({', '.join(chosen)})" if chosen else str(rs[0].epochs)


def write_table(
    args, name: str, header: list[str], rows: list[list[str]], notes: str = "", runs: Runs | None = None
) -> Path:
    """Print the table and write it, with the command, the seeds, the machines its runs trained on
    and the machine that wrote it, to ``<out>/results.md``."""
    if planning(args):  # the first pass of --jobs writes nothing
        return table_dir(args, name) / "results.md"
    missing = runs.missing if runs is not None else []
    if missing:
        left = _count(len(missing), "run")
        notes += f"\n\nNot recorded, so left out ({left}; --train trains them): {', '.join(missing)}."
        print(f"not recorded, so left out (pass --train to train them): {', '.join(missing)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    machine = (
        f"{_count(torch.get_num_threads(), 'thread')}, {cpu_model()}, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}, "
        f"torch {torch.__version__}"
    )
    text = "\n".join(lines)
    if runs is not None and runs.trained_on:
        machines = (f"{m} ({_count(k, 'run')})" for m, k in runs.trained_on.items())
        text += "\n\ntrained on: " + "; ".join(machines)
    print(text)
    print(f"machine: {machine}")
    root = table_dir(args, name)
    command = (
        "aae " + " ".join(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name == "aae" else f"aae reproduce {name}"
    )
    replace_own(
        root / "results.md",
        f"# {name}\n\ncommand: `{command}`\n\nseeds: {args.seeds}\n\n{text}\n\n"
        f"table written on: {machine}\n\n{notes}\n",
        f"# {name}",
    )
    return root / "results.md"
