"""Training throughput: minibatch steps per second for each regime at the paper's MNIST sizes,
and the share of the machine's matrix-product rate that a step achieves (both measured here).

    python benchmarks/throughput.py [--steps 30] [--device auto] [--regimes unsupervised semi_supervised]

Prints one row per regime: steps/s, images/s, GFLOP per step (counted by torch's FlopCounterMode),
achieved GFLOP/s, and that as a share of a plain float32 matmul's GFLOP/s on the same device.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from aae.config import ModelConfig, TrainConfig
from aae.model import AdversarialAutoencoder
from aae.phases import Batch, train_step
from aae.train import make_optimizer, pick_device


def matmul_rate(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def bench(regime: str, device: torch.device, steps: int, batch: int = 100) -> dict:
    torch.manual_seed(0)
    model = AdversarialAutoencoder(
        ModelConfig(regime=regime, z_dim=10 if regime != "unsupervised" else 2, prior={"name": "gaussian"}), 784
    ).to(device)
    phases = model.regime.phases("aae")
    groups = model.parameter_groups()
    opts = {k: make_optimizer(v, k, TrainConfig()) for k, v in groups.items()}
    x = torch.rand(batch, 784, device=device)
    y = torch.randint(10, (batch,), device=device)
    b = Batch(x, y if model.regime.label_to else None, x, y)
    with FlopCounterMode(display=False) as counter:
        train_step(model, b, opts, phases)
    flops = counter.get_total_flops()
    for _ in range(3):
        train_step(model, b, opts, phases)
    start = time.perf_counter()
    for _ in range(steps):
        losses = train_step(model, b, opts, phases)
    float(sum(losses.values()))  # wait for the device
    seconds = (time.perf_counter() - start) / steps
    return {
        "steps/s": 1 / seconds,
        "images/s": batch / seconds,
        "GFLOP/step": flops / 1e9,
        "GFLOP/s": flops / seconds / 1e9,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="auto")
    p.add_argument("--regimes", nargs="+", default=["unsupervised", "supervised", "semi_supervised"])
    args = p.parse_args()
    device = pick_device(args.device)
    peak = matmul_rate(device)
    print(
        f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"2048x2048 float32 matmul: {peak:.1f} GFLOP/s"
    )
    print(f"{'regime':18s} {'steps/s':>8s} {'images/s':>9s} {'GFLOP/step':>11s} {'GFLOP/s':>8s} {'of matmul':>9s}")
    for regime in args.regimes:
        r = bench(regime, device, args.steps)
        print(
            f"{regime:18s} {r['steps/s']:8.1f} {r['images/s']:9.0f} {r['GFLOP/step']:11.2f} {r['GFLOP/s']:8.1f} "
            f"{100 * r['GFLOP/s'] / peak:8.0f}%"
        )


if __name__ == "__main__":
    main()
