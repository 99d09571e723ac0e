"""Multi-process training against one process: images per second of a semi-supervised AAE epoch
at the paper's MNIST sizes, one process with P threads against P processes (torchrun, gloo) with
one thread each.

    python benchmarks/distributed.py [--processes 2] [--images 12000] [--epochs 2]

Random images stand in for MNIST (the speed does not depend on what the pixels show), so it
needs no data. Each setting trains ``--epochs`` epochs with no per-epoch evaluation; the figure
is the median epoch's images per second as the run's metrics log records it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def run(cmd: list[str], out: Path, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return float(np.median([r["seconds"] for r in rows]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--images", type=int, default=12000)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        total = round((args.images + 500) / 0.9)  # aae keeps 10 % of a user array for testing, 500 to validate
        np.savez(tmp / "data.npz", x=rng.random((total, 784), dtype=np.float32), y=rng.integers(0, 10, total))
        sets = [
            f"data.name='{tmp / 'data.npz'}'",
            "data.valid_size=500",
            "train.select_by=''",
            f"train.eval_every={args.epochs + 1}",
            "train.ema=0",
        ]

        def train(threads: int, out: str) -> list[str]:
            over = [a for s in [*sets, f"train.threads={threads}"] for a in ("--set", s)]
            return [
                "-m",
                "aae.cli",
                "--quiet",
                "train",
                "--config",
                "mnist_semi_1000",
                "--no-progress",
                "--no-figures",
                "--epochs",
                str(args.epochs),
                "--out",
                str(tmp / out),
                *over,
            ]

        one = run([sys.executable, *train(args.processes, "one")], tmp / "one", args.processes)
        many = run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc-per-node",
                str(args.processes),
                *train(1, "many"),
            ],
            tmp / "many",
            1,
        )
    n = total - round(0.1 * total) - 500  # the training images of one epoch
    print(
        f"semi-supervised AAE, 784-1000-1000-10, minibatch 100 per process, {n} images per epoch, {os.cpu_count()} CPUs"
    )
    print(f"{'setting':<34}{'s/epoch':>9}{'images/s':>10}")
    print(f"{f'1 process x {args.processes} threads':<34}{one:>9.1f}{n / one:>10.0f}")
    print(f"{f'{args.processes} processes x 1 thread (torchrun)':<34}{many:>9.1f}{n / many:>10.0f}")
    print(f"speed-up: {one / many:.2f}x")


if __name__ == "__main__":
    main()
