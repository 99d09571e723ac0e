"""Training-step throughput: the project's minibatch step against a plain PyTorch loop with the
same networks, the same optimizer and the same batch, measured in the same run.

    python benchmarks/step.py [--steps 30] [--batches 100 500] [--precisions fp32 bf16] [--regime unsupervised]
    python benchmarks/step.py --net conv [--image 28 28 1]
    python benchmarks/step.py --profile [--batches 100] [--precisions fp32]

The plain loop is the textbook AAE step (Section 2): a reconstruction step, a discriminator step
on a fresh no-grad encoding, a generator step on another encoding, each with its own
``torch.optim.Adam`` (PyTorch's default for-loop implementation on the CPU). The project's step is
``aae.model.phases.train_step`` with the optimizers the Trainer builds, under the precision's autocast.
Both use the paper's MNIST sizes (784-1000-1000-z, discriminators 1000-1000); with ``--net conv``,
the convolutional networks of ``model.net = "conv"`` (aae.model.conv, 32 channels, one dense layer
of 1000) on images of ``--image`` height, width, channels, the same modules in both. Prints images/s
and the ratio, with the machine's CPU model, its bf16 flags and a float32 matmul rate. With
``--profile``, where the project's step spends its time instead (torch.profiler's self CPU time):
matrix products, optimizer steps and the rest, as shares of the step.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from aae.config.schema import ModelConfig, TrainConfig
from aae.model.autoencoder import AdversarialAutoencoder
from aae.model.conv import ConvDecoder, ConvFeatures
from aae.model.phases import Batch, train_step
from aae.training import devices
from aae.training.devices import cpu_flags, pick_device
from aae.training.optimizers import make_optimizer


def cpu_model() -> tuple[str, str]:
    """The CPU's model name and which bf16-relevant flags it has (Linux), else what platform says."""
    flags = cpu_flags()
    wanted = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2", "fma") if f in flags]
    return devices.cpu_model(), " ".join(wanted) or "none of avx2/avx512/amx"


def matmul_rate(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def _timed(step, steps: int, device: torch.device) -> float:
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        out = step()
    float(out.detach())  # wait for the device
    return (time.perf_counter() - start) / steps


def model_config(regime: str, net: str) -> ModelConfig:
    z_dim = 10 if regime != "unsupervised" else 2
    if net == "conv":
        return ModelConfig(regime=regime, z_dim=z_dim, net="conv", channels=32, hidden=[1000])
    return ModelConfig(regime=regime, z_dim=z_dim)


def project_step(regime: str, batch: int, precision: str, device: torch.device, net: str = "mlp", image=(28, 28, 1)):
    torch.manual_seed(0)
    d = image[0] * image[1] * image[2]
    model = AdversarialAutoencoder(model_config(regime, net), d, image_shape=tuple(image))
    model = model.to(device)
    groups = model.parameter_groups()
    needed = {"reconstruction", "discriminator", "generator", "classification"}
    opts = {k: make_optimizer(v, k, TrainConfig()) for k, v in groups.items() if k in needed}
    x = torch.rand(batch, d, device=device)
    y = torch.randint(10, (batch,), device=device)
    b = Batch(x, y if model.regime.label_to else None, x, y)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step():
        with devices.step_autocast(device, dtype):
            losses = train_step(model, b, opts, model.phases)
        return losses["reconstruction"]

    return step


def plain_step(batch: int, precision: str, device: torch.device, net: str = "mlp", image=(28, 28, 1)):
    """The textbook unsupervised AAE step in plain PyTorch."""
    torch.manual_seed(0)
    d = image[0] * image[1] * image[2]

    def mlp(*sizes):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
        return nn.Sequential(*layers).to(device)

    if net == "conv":
        feats = ConvFeatures(tuple(image), 32)
        enc = nn.Sequential(feats, nn.Linear(feats.out_dim, 1000), nn.ReLU(), nn.Linear(1000, 2)).to(device)
        dec = nn.Sequential(nn.Linear(2, 1000), nn.ReLU(), ConvDecoder(1000, tuple(image), 32)).to(device)
    else:
        enc, dec = mlp(d, 1000, 1000, 2), mlp(2, 1000, 1000, d)
    disc = mlp(2, 1000, 1000, 1)
    adam = lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.5, 0.999))  # noqa: E731
    opt_ae, opt_d, opt_g = adam([*enc.parameters(), *dec.parameters()]), adam(disc.parameters()), adam(enc.parameters())
    bce = nn.functional.binary_cross_entropy_with_logits
    x = torch.rand(batch, d, device=device)
    ones, zeros = torch.ones(batch, 1, device=device), torch.zeros(batch, 1, device=device)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step():
        with devices.step_autocast(device, dtype):
            opt_ae.zero_grad()
            recon = bce(dec(enc(x)), x, reduction="none").sum(1).mean()
            recon.backward()
            opt_ae.step()
            opt_d.zero_grad()
            with torch.no_grad():
                z = enc(x)
            d_loss = bce(disc(torch.randn(batch, 2, device=device)), ones) + bce(disc(z), zeros)
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = bce(disc(enc(x)), ones)
            g_loss.backward()
            opt_g.step()
        return recon

    return step


SHARES = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
    "convolutions": ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution", "aten::_slow"),
    "optimizer steps": ("aten::_fused",),
    "copies": ("aten::copy_", "aten::_to_copy"),
}
"""torch.profiler op names (prefixes) of each share of ``--profile``; every other op counts as the
rest. Under bf16 the copies are mostly autocast's casts of the float32 weights to bf16 (one per
forward pass of a layer) and of their gradients back."""


def profile_shares(step, steps: int) -> dict[str, float]:
    """The share of the self CPU time of ``steps`` calls of ``step`` in each of SHARES, and the rest."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    times = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(times.values())
    shares = {name: sum(t for k, t in times.items() if k.startswith(ops)) / total for name, ops in SHARES.items()}
    return {**shares, "the rest": 1 - sum(shares.values())}


def _cases(args):
    """(precision, batch, steps) of each row: ``--steps`` steps at batch 100, as many images at another batch."""
    for precision in args.precisions:
        for batch in args.batches:
            yield precision, batch, max(3, args.steps * 100 // batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="auto")
    p.add_argument("--batches", type=int, nargs="+", default=[100, 500])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--regime", default="unsupervised")
    p.add_argument("--net", default="mlp", choices=["mlp", "conv"], help="the paper's MLPs, or model.net = 'conv'")
    p.add_argument(
        "--image", type=int, nargs=3, default=[28, 28, 1], metavar=("H", "W", "C"), help="--net conv: image shape"
    )
    p.add_argument("--profile", action="store_true", help="where the project's step spends its time, not the ratio")
    args = p.parse_args()
    device = pick_device(args.device)
    name, flags = cpu_model()
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, net {args.net} {args.image}")
    print(f"CPU: {name}; flags: {flags}; 2048x2048 float32 matmul {matmul_rate(device):.1f} GFLOP/s")
    if args.profile:
        print(f"{'precision':9s} {'batch':>5s} " + " ".join(f"{k:>15s}" for k in [*SHARES, "the rest"]))
        for precision, batch, steps in _cases(args):
            shares = profile_shares(project_step(args.regime, batch, precision, device, args.net, args.image), steps)
            print(f"{precision:9s} {batch:5d} " + " ".join(f"{v:15.1%}" for v in shares.values()), flush=True)
        return
    print(f"{'precision':9s} {'batch':>5s} {'plain loop img/s':>16s} {'aae step img/s':>14s} {'ratio':>6s}")
    for precision, batch, steps in _cases(args):
        plain = _timed(plain_step(batch, precision, device, args.net, args.image), steps, device)
        ours = _timed(project_step(args.regime, batch, precision, device, args.net, args.image), steps, device)
        print(f"{precision:9s} {batch:5d} {batch / plain:16.0f} {batch / ours:14.0f} {plain / ours:6.2f}", flush=True)


if __name__ == "__main__":
    main()
