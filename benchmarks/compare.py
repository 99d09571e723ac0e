"""Epoch wall time of each bundled MNIST config at this checkout against a git ref, on this machine.

    python benchmarks/compare.py REF [--configs mnist_semi_1000 ...] [--steps 100] [--repeats 2]

REF is checked out into a temporary git worktree; each config then runs alternately at REF and at
this checkout (``--repeats`` times each, in separate processes, so that the machine's drift hits
both alike). A run times ``--steps`` training steps of the config (its minibatch, its phases, its
precision) and one of its per-epoch evaluations, and the epoch is estimated as

    epoch = (training images / batch size) x seconds per step + evaluation / eval_every

which is what a full epoch costs, training plus its share of evaluation, without training one.
Prints a row per config with both times and their ratio (the median over repeats), the share of
this checkout's epoch that its evaluation takes, and the CPU model and flags. Needs MNIST
(``$AAE_DATA_DIR`` or ``--data-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from step import cpu_model  # noqa: E402

DRIVER = r"""
import json, sys, time
import torch
from aae.config.load import load_config
from aae.config.schema import TrainConfig
from aae import experiment
name, steps, threads, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
torch.set_num_threads(threads)
old = hasattr(TrainConfig, "progress")  # before runtime options left the config
cfg = load_config(name, ["train.progress=false"] if old else extra)
cfg.train.select_by = ""  # early stopping needs the evaluation inside fit; it is timed apart
splits = experiment.prepare_data(cfg) if old else experiment.prepare_data(cfg, False)
batch = cfg.train.batch_size
n_train = len(splits.train)
splits.train = splits.train.subset(slice(0, min(n_train, steps * batch)))
torch.manual_seed(0)
from aae.model import autoencoder as models
build = getattr(models, "build_model", None) or models.AdversarialAutoencoder
model = build(cfg.model, splits.train.x.shape[1])
from aae.training.trainer import Trainer
from aae.evaluation.evaluate import epoch_metrics
trainer = Trainer(model, cfg, None) if old else Trainer(model, cfg, None, progress=False)
cfg.train.epochs = 1
history = trainer.fit(splits.train.x, experiment.train_labels(cfg, splits))
per_step = history[-1]["seconds"] / (len(splits.train) // batch)
measure = epoch_metrics(splits, cfg)
start = time.perf_counter()
with torch.no_grad():
    measure(trainer.current.eval())
evaluation = time.perf_counter() - start
print(json.dumps({"per_step": per_step, "evaluation": evaluation, "n_train": n_train, "batch": batch,
                  "eval_every": cfg.train.eval_every}))
"""

MNIST_CONFIGS = (
    "mnist_gaussian_aae",
    "mnist_mixture_aae",
    "mnist_swiss_roll_aae",
    "mnist_gaussian_vae",
    "mnist_mixture_labels",
    "mnist_swiss_roll_labels",
    "mnist_supervised",
    "mnist_likelihood",
    "mnist_semi_100",
    "mnist_semi_1000",
    "mnist_semi_all",
    "mnist_semi_sgd",
    "mnist_cluster_16",
    "mnist_cluster_30",
    "mnist_dimred_1000",
    "mnist_dimred_100",
    "mnist_dimred_unsup20",
    "mnist_dimred_10d",
)


class RunFailed(Exception):
    """A timed run ended in an error (its last line is the message): the row says so and the
    other configs go on."""


def measure(tree: Path, config: str, steps: int, threads: int, extra: list[str] = ()) -> tuple[float, float]:
    """The estimated epoch in seconds, training plus its share of evaluation, and that share."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, config, str(steps), str(threads), *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
    )
    if proc.returncode:
        lines = proc.stderr.strip().splitlines() or ["no error output"]
        raise RunFailed(lines[-1])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    evaluation = r["evaluation"] / r["eval_every"]
    epoch = r["n_train"] // r["batch"] * r["per_step"] + evaluation
    return epoch, evaluation / epoch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ref", help="the git ref to compare against, e.g. a commit of main")
    p.add_argument("--configs", nargs="+", default=list(MNIST_CONFIGS))
    p.add_argument("--steps", type=int, default=100, help="training steps timed per run (default 100)")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs per side (default 2)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for this checkout's runs only, e.g. train.precision=auto",
    )
    args = p.parse_args()
    name, flags = cpu_model()
    print(
        f"CPU: {name}; flags: {flags}; {args.threads} threads; {args.steps} steps + one evaluation per run, "
        f"{args.repeats} alternating runs per side; this checkout with {args.set or 'the configs as shipped'}"
    )
    print(f"| config | {args.ref} s/epoch | this checkout s/epoch | speed-up | evaluation's share here |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        ref_tree = Path(tmp) / "ref"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(ref_tree), args.ref],
            check=True,
            capture_output=True,
        )
        try:
            for config in args.configs:
                old, new = [], []
                try:
                    for _ in range(args.repeats):
                        side = args.ref
                        old.append(measure(ref_tree, config, args.steps, args.threads)[0])
                        side = "this checkout"
                        new.append(measure(ROOT, config, args.steps, args.threads, args.set))
                except RunFailed as e:
                    print(f"| {config} | | | failed at {side}: {e} | |", flush=True)
                    continue
                o, n = statistics.median(old), statistics.median(e for e, _ in new)
                share = statistics.median(s for _, s in new)
                print(f"| {config} | {o:.1f} | {n:.1f} | {o / n:.2f}x | {100 * share:.0f} % |", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_tree)], check=False)


if __name__ == "__main__":
    main()
