"""Independent runs side by side against one run with every thread, on this machine.

    python benchmarks/jobs.py [--configs mnist_semi_100 ...] [--steps 100] [--repeats 2]

What ``aae reproduce --jobs`` rests on. For each config, the same training steps are timed two
ways: one process with all the machine's threads, and N processes (N = the number of cores) with
one thread each, training at the same time. Each process prepares its data and model, waits for
the others, then trains ``--steps`` steps of the config (its minibatch, its phases, its
precision; no evaluation) and reports its seconds. Prints each setting's images per second over
all processes and their ratio (above 1: side-by-side runs finish a set of runs sooner), the
median over ``--repeats`` alternating measurements, and the CPU model and flags. Needs MNIST
(``$AAE_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from step import cpu_model  # noqa: E402

DRIVER = r"""
import json, sys, time
from pathlib import Path
import torch
from aae import experiment
from aae.config.load import from_dict, load_config
from aae.evaluation.evaluate import epoch_metrics
from aae.model.autoencoder import build_model
from aae.training.trainer import Trainer
spec, steps, threads, ready, go, evaluate = sys.argv[1:7]
steps, threads = int(steps), int(threads)
torch.set_num_threads(threads)
torch.set_flush_denormal(True)
cfg = from_dict(json.loads(Path(spec).read_text())) if spec.endswith(".json") else load_config(spec, [])
cfg.train.select_by = ""
cfg.train.epochs = 1
splits = experiment.prepare_data(cfg, False)
n_train, batch = len(splits.train), cfg.train.batch_size
splits.train = splits.train.subset(slice(0, min(n_train, steps * batch)))
torch.manual_seed(cfg.train.seed)
trainer = Trainer(build_model(cfg.model, splits.train.x.shape[1]), cfg, None, progress=False)
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.01)
history = trainer.fit(splits.train.x, experiment.train_labels(cfg, splits))
out = {"seconds": history[-1]["seconds"], "steps": len(splits.train) // batch, "batch": batch, "n_train": n_train}
if evaluate == "1":
    start = time.perf_counter()
    epoch_metrics(splits, cfg)(trainer.current.eval())
    out["evaluation"] = time.perf_counter() - start
print(json.dumps(out))
"""

CONFIGS = ("mnist_likelihood", "mnist_semi_100", "mnist_semi_1000", "mnist_cluster_30", "mnist_dimred_1000")


def together(spec: str, steps: int, processes: int, threads: int, evaluate: bool = False) -> list[dict]:
    """``processes`` runs of ``spec`` (a bundled config's name or a config's JSON file) trained at the
    same time, ``threads`` each, all starting their ``steps`` steps together; each one's seconds,
    steps, minibatch and training images (and with ``evaluate``, one per-epoch evaluation after)."""
    with tempfile.TemporaryDirectory() as tmp:
        go = Path(tmp) / "go"
        ready = [Path(tmp) / f"ready{i}" for i in range(processes)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", DRIVER, spec, str(steps), str(threads), str(r), str(go), str(int(evaluate))],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)},
            )
            for r in ready
        ]
        while not all(r.exists() for r in ready):
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.05)
        go.touch()
        out = []
        for p in procs:
            stdout, stderr = p.communicate()
            if p.returncode:
                sys.exit(f"{spec}: {(stderr.strip().splitlines() or ['no error output'])[-1]}")
            out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def images_per_second(runs: list[dict]) -> float:
    """Images per second over runs trained together: the set is done when its slowest run is."""
    return sum(r["steps"] * r["batch"] for r in runs) / max(r["seconds"] for r in runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS))
    p.add_argument("--steps", type=int, default=100, help="training steps timed per process (default 100)")
    p.add_argument("--repeats", type=int, default=2, help="alternating measurements per setting (default 2)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    name, flags = cpu_model()
    n = args.cores
    print(f"CPU: {name}; flags: {flags}; {n} cores; {args.steps} steps per process; median of {args.repeats}")
    print(f"| config | 1 process x {n} threads img/s | {n} processes x 1 thread img/s | ratio |")
    print("|---|---|---|---|")
    for config in args.configs:
        one, many = [], []
        for _ in range(args.repeats):
            one.append(images_per_second(together(config, args.steps, 1, n)))
            many.append(images_per_second(together(config, args.steps, n, 1)))
        a, b = statistics.median(one), statistics.median(many)
        print(f"| {config} | {a:.0f} | {b:.0f} | {b / a:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
