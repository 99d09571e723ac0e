"""How long ``aae reproduce all --retrain`` would train on this machine, from short timings.

    python benchmarks/paper_time.py [--seeds 0 1 2] [--jobs 2] [--steps 40]

Lists every run that ``aae reproduce all --retrain --jobs N`` (with ``--seeds``, else each
table's own seeds) would train, by the same quiet first pass that ``--jobs`` makes; groups the
runs of one recipe (they differ only in their seeds); and times each recipe the way the pool
trains it: N processes side by side with cores // N threads each, ``--steps`` training steps and
one per-epoch evaluation each. A run then takes

    epochs x (steps per epoch x seconds per step + evaluation / eval_every)

and the whole takes the sum over the runs divided by N. Left out: reading the data and each run's
final measurements and figures (under a minute a run), a table's own measuring (the Parzen window,
the CNN judge, UMAP), and the end of the pool, where fewer than N runs are left. Prints each
table's runs and estimated hours, the total, and the CPU model and flags. Needs MNIST
(``$AAE_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from aae.cli import build_parser  # noqa: E402
from aae.paper import pool, reproduce  # noqa: E402
from jobs import together  # noqa: E402
from step import cpu_model  # noqa: E402


def planned_runs(seeds: list[int] | None, out: Path) -> dict[str, dict]:
    """Every run ``aae reproduce all --retrain`` would train into the empty ``out``: directory -> config."""
    argv = ["reproduce", "all", "--retrain", "--no-progress", "--out", str(out)]
    args = build_parser().parse_args(argv + (["--seeds", *map(str, seeds)] if seeds else []))
    args.plan = pool.Plan()
    with contextlib.redirect_stdout(io.StringIO()):
        reproduce.reproduce_all(args)
    return args.plan.runs


def recipe_key(cfg: dict) -> str:
    """A run's config without its seeds: what its speed depends on."""
    cfg = json.loads(json.dumps(cfg))
    cfg["train"].pop("seed", None)
    cfg["data"].pop("label_seed", None)
    return json.dumps(cfg, sort_keys=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", help="as aae reproduce all --seeds (default: each table's own)")
    p.add_argument("--jobs", type=int, default=2, help="as aae reproduce --jobs (default 2)")
    p.add_argument("--steps", type=int, default=40, help="training steps timed per process (default 40)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "paper"
        runs = planned_runs(args.seeds, out)
        recipes: dict[str, list[tuple[Path, dict]]] = defaultdict(list)  # run directories under out, configs
        for run_dir, cfg in runs.items():
            recipes[recipe_key(cfg)].append((Path(run_dir).relative_to(out), cfg))
        threads = max(1, pool.cores() // args.jobs)
        name, flags = cpu_model()
        print(
            f"CPU: {name}; flags: {flags}; {len(runs)} runs of {len(recipes)} recipes, {args.jobs} at a time, "
            f"{threads} thread(s) each; {args.steps} steps and one evaluation per timing"
        )
        print("| recipe (first run) | runs | epochs | s/step | evaluation s | minutes/run |")
        print("|---|---|---|---|---|---|")
        minutes: dict[str, float] = defaultdict(float)
        count: dict[str, int] = defaultdict(int)
        for i, members in enumerate(recipes.values()):
            first, cfg = members[0]
            spec = Path(tmp) / f"recipe{i}.json"
            spec.write_text(json.dumps(cfg))
            timed = together(str(spec), args.steps, args.jobs, threads, evaluate=True)
            per_step = max(r["seconds"] / r["steps"] for r in timed)
            evaluation = max(r["evaluation"] for r in timed)
            t = cfg["train"]
            epoch = timed[0]["n_train"] // t["batch_size"] * per_step + evaluation / t["eval_every"]
            run_minutes = t["epochs"] * epoch / 60
            for run_dir, _ in members:
                minutes[run_dir.parts[0]] += run_minutes  # by table
                count[run_dir.parts[0]] += 1
            print(
                f"| {first} | {len(members)} | {t['epochs']} | {per_step:.3f} | {evaluation:.1f} | {run_minutes:.1f} |",
                flush=True,
            )
    print("\n| table | runs | estimated hours, run side by side |")
    print("|---|---|---|")
    for table in minutes:
        print(f"| {table} | {count[table]} | {minutes[table] / args.jobs / 60:.1f} |")
    total = sum(minutes.values()) / args.jobs / 60
    print(f"| all | {len(runs)} | {total:.1f} |")
    print(f"\nEstimated training of aae reproduce all --retrain --jobs {args.jobs}: {total:.1f} hours on {name}.")


if __name__ == "__main__":
    main()
