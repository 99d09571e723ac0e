"""``aae reproduce NAME``: one command per paper result, printing ours beside the paper's, and
``aae reproduce all``: every table and figure of the paper, with a one-page summary.

Each experiment gathers the runs it needs: a run under ``--out`` (resumed if a killed earlier
call left it unfinished), else the committed record of the same recipe under ``--records``
(``docs/results``), else, with ``--train``, it trains the run under ``--out``; ``--retrain``
ignores the committed records (a run under ``--out`` is still kept or resumed). Then it prints a
table: mean ± std over ``--seeds``, wall time, and the paper's figure, also written to
``<out>/results.md`` with the command that made it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..config.schema import MAX_EPOCHS, MAX_SEED
from ..errors import ConfigError
from ..files import check_own, replace_own
from ..training.devices import cpu_model
from . import pool
from .beyond import semi_supervised_conv
from .classification import MAPS, MODELS, clustering, dim_reduction, semi_supervised
from .generative import label_modes, likelihood, prior_match, supervised
from .pool import Plan, check_jobs
from .runs import Headline, planning


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        "-o",
        help="directory for the runs and the table (default runs/reproduce/<experiment>; all: the root of the "
        "tables and of the summary README.md, default runs/reproduce)",
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", help="seeds to average over (default 0; all: each table's own seeds)"
    )
    p.add_argument("--epochs", type=int, help="override every run's epochs")
    p.add_argument(
        "--label-seeds",
        type=int,
        nargs="+",
        metavar="N",
        help="semi-supervised: the labeled subset and validation split each seed draws, one per seed "
        "(default: each seed draws its own, label seed = seed)",
    )
    p.add_argument("--data-dir", help="directory holding data sets")
    p.add_argument(
        "--set", "-s", action="append", default=[], metavar="KEY=VALUE", help="override a config key in every run"
    )
    p.add_argument(
        "--prior",
        default="mixture",
        choices=["gaussian", "mixture", "swiss_roll"],
        help="prior-match, label-modes: which prior (default mixture)",
    )
    p.add_argument(
        "--labels",
        nargs="+",
        default=["100", "1000", "all"],
        choices=["100", "1000", "all"],
        help="semi-supervised: label budgets (default 100 1000 all)",
    )
    p.add_argument(
        "--clusters",
        type=int,
        nargs="+",
        default=[16, 30],
        choices=[16, 30],
        help="clustering: numbers of clusters (default 16 30)",
    )
    p.add_argument(
        "--maps",
        nargs="+",
        default=list(MAPS),
        choices=list(MAPS),
        help="dim-reduction: which maps (default all): 1000 and 100 labels and unsupervised with 20 clusters in "
        "2-D, 1000 labels in 10-D",
    )
    p.add_argument(
        "--models",
        nargs="+",
        choices=[*MODELS, "VAE", "AE", "AAE-conv"],
        help="semi-supervised, clustering, likelihood (AAE, AAE-paper, VAE, AAE-conv), prior-match (AAE, VAE, AE): "
        "which rows to train and print (default: all the experiment has): AAE (the bundled config), AAE-paper (the "
        "same without what goes beyond the paper: VAT, the invariance term, weight averaging, the marginal KL, "
        "shifted images and test-time shifts; for the likelihood, dropout and weight averaging), NN (the "
        "encoder alone as a classifier), NN+VAT (that classifier with the bundled config's VAT and "
        "invariance term on the unlabeled images: the recipe without the autoencoder), IMSAT (clustering: Hu et al.'s "
        "recipe, VAT and mutual information without the autoencoder), AE (prior-match: the autoencoder alone), "
        "AAE-conv (likelihood: mnist_likelihood_conv, the recipe on convolutional networks)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=10000,
        help="likelihood: generated images in the Parzen window, "
        "and validation and test images it is measured on (default 10000, the paper's)",
    )
    p.add_argument(
        "--records",
        default="docs/results",
        help="committed run records to read before training (default docs/results, where it exists)",
    )
    p.add_argument(
        "--train",
        action="store_true",
        help="train the runs that neither --out nor --records holds "
        "(default: leave them out of the table and list them)",
    )
    p.add_argument(
        "--retrain",
        action="store_true",
        help="train every run --out does not hold, ignoring --records (a run under --out is kept, "
        "or resumed if unfinished)",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=1,
        help="runs to train at a time, each in its own process with an equal share of the cores (default 1; "
        "on a CPU, 2 runs on 2 cores move 1.1-1.35x the images per second of one run on both)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


TABLES: dict[str, Callable[[argparse.Namespace], list[Headline]]] = {
    "likelihood": likelihood,
    "clustering": clustering,
    "dim-reduction": dim_reduction,
    "semi-supervised": semi_supervised,
    "semi-supervised-conv": semi_supervised_conv,
    "prior-match": prior_match,
    "label-modes": label_modes,
    "supervised": supervised,
}
"""each ``aae reproduce NAME``: its table, printed and written, and its lines of the paper's summary"""

PAPER: list[tuple[str, dict]] = [
    ("likelihood", {"models": ["AAE", "AAE-paper", "VAE", "AAE-conv"], "seeds": [0]}),
    ("prior-match", {"prior": "mixture", "seeds": [0]}),
    ("prior-match", {"prior": "swiss_roll", "seeds": [0]}),
    ("label-modes", {"prior": "mixture", "seeds": [0, 1, 2]}),
    ("label-modes", {"prior": "swiss_roll", "seeds": [0]}),
    ("supervised", {"seeds": [0, 1, 2]}),
    ("semi-supervised", {"labels": ["100", "1000", "all"], "models": ["AAE", "NN"], "seeds": [0, 1, 2, 3, 4]}),
    ("clustering", {"clusters": [16, 30], "models": ["AAE", "IMSAT"], "seeds": [0, 1, 2, 3, 4]}),
    ("dim-reduction", {"maps": list(MAPS), "seeds": [0, 1, 2]}),
    ("semi-supervised-conv", {"labels": ["100", "1000"], "models": ["AAE", "NN", "NN+VAT"], "seeds": [0]}),
]
"""``aae reproduce all``: every table and figure of the paper, with its seeds and baselines, and
Table 2 on convolutional networks (beyond the paper) as far as it is recorded"""


def check_numbers(args: argparse.Namespace) -> None:
    """The command's own numbers in their ranges (the config's keys are checked as configs are)."""
    for option in ("seeds", "label_seeds"):
        bad = [s for s in getattr(args, option, None) or [] if not 0 <= s <= MAX_SEED]
        if bad:
            raise ConfigError(f"--{option.replace('_', '-')} {bad[0]} is not allowed; give seeds in 0..{MAX_SEED}")
    for option, most in (("samples", MAX_SAMPLES), ("epochs", MAX_EPOCHS)):
        value = getattr(args, option, None)
        if value is not None and not 1 <= value <= most:
            raise ConfigError(f"--{option} {value} is not allowed; give 1 to {most}")


MAX_SAMPLES = 100_000
"""the most images --samples puts in the Parzen window (the paper's 10000)"""


def reproduce_all(args: argparse.Namespace) -> None:
    """Every table and figure of the paper (``PAPER``), each from its records or, with --train, trained;
    then a one-page summary, ``<out>/README.md``: ours beside the paper's, the runs, their minutes."""
    if getattr(args, "label_seeds", None) is not None and args.seeds is None:
        raise ConfigError("--label-seeds: each table of all has its own seeds; give --seeds too, one per label seed")
    wall, cpu = getattr(args, "started", None) or (time.perf_counter(), cpu_seconds())
    root = Path(args.out or "runs/reproduce")
    check_own(root / "README.md", SUMMARY)  # before hours of training, not after
    heads: list[Headline] = []
    for experiment, settings in PAPER:
        given = {**settings, **({"seeds": args.seeds} if args.seeds is not None else {})}
        print(f"\n== aae reproduce {experiment} " + " ".join(f"--{k} {_shown(v)}" for k, v in given.items()))
        heads += TABLES[experiment](argparse.Namespace(**{**vars(args), **given, "out": None, "root": str(root)}))
    if planning(args):
        return
    wall, cpu = (time.perf_counter() - wall) / 60, (cpu_seconds() - cpu) / 60
    trained = sum(r.seconds for h in heads for r in h.runs) / 3600
    lines = [
        "| result | ours | paper | runs | training minutes | table |",
        "|---|---|---|---|---|---|",
        *(
            f"| {h.what} | {h.ours} | {h.paper} | {len(h.runs)} | {sum(r.seconds for r in h.runs) / 60:.0f} | "
            f"[{h.table.parent.name}]({h.table.relative_to(root).as_posix()}) |"
            for h in heads
        ),
    ]
    total = (
        f"Training of the {sum(len(h.runs) for h in heads)} runs, as their records give it: {trained:.1f} hours "
        f"of wall time. This command: {wall:.1f} minutes of wall time, {cpu:.1f} minutes of CPU time, on "
        f"{cpu_model()}."
    )
    text = "\n".join(lines)
    print(f"\n{text}\n\n{total}")
    replace_own(
        root / "README.md",
        f"{SUMMARY}\n\ncommand: `aae reproduce all"
        + (f" --out {args.out}" if args.out else "")
        + "`\n\nEach line is one result of Makhzani et al. (2015) beside the paper's; each table says how it "
        "was measured, which seeds and which config, and lists the runs its records lack. A run counts "
        "once per line it serves; the training minutes are its recorded wall time (one thread per run on "
        f"2 cores unless the table says otherwise).\n\n{text}\n\n{total}\n",
        SUMMARY,
    )


SUMMARY = "# Adversarial Autoencoders: the paper, reproduced"
"""the first line of ``aae reproduce all``'s summary, by which it knows a README.md of its own"""


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (the runs of ``--jobs``)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _with_default_seeds(table: Callable) -> Callable[[argparse.Namespace], None]:
    def one(args: argparse.Namespace) -> None:
        table(argparse.Namespace(**{**vars(args), "seeds": args.seeds if args.seeds is not None else [0]}))

    return one


def _in_parallel(experiment: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """``experiment`` with ``--jobs N``: a quiet first pass notes every run it would train (nothing
    printed, read or written), `pool.train` trains them N at a time, then the experiment runs as
    usual and finds them trained."""

    def gathered(args: argparse.Namespace) -> None:
        jobs = getattr(args, "jobs", 1)
        check_jobs(jobs)
        check_numbers(args)
        args.started = time.perf_counter(), cpu_seconds()  # what all's summary counts, the pool's training too
        if jobs > 1:
            plan = Plan()
            with contextlib.redirect_stdout(io.StringIO()):
                experiment(argparse.Namespace(**{**vars(args), "plan": plan}))
            pool.train(plan, jobs, args.device, progress=not args.no_progress)
        experiment(args)

    return gathered


EXPERIMENTS: dict[str, Callable[[argparse.Namespace], None]] = {
    **{name: _in_parallel(_with_default_seeds(table)) for name, table in TABLES.items()},
    "all": _in_parallel(reproduce_all),
}
