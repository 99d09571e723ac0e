"""The convolutional networks' memory layout and precision: a forward and backward pass of the
encoder trunk, a linear head and the decoder at batch 100, with the images read as the package reads
them (a flattened HWC row viewed as channels-last NCHW, no copy) against copied into contiguous NCHW,
in float32 and under bf16 autocast, measured in the same run.

    python benchmarks/conv_layout.py [--steps 40] [--images 28 28 1 32 32 3]

Prints images/s per layout and precision, with the CPU model and flags.
"""

from __future__ import annotations

import argparse
import time

import torch

from aae.model.conv import ConvDecoder, ConvFeatures
from aae.training.devices import cpu_flags, cpu_model


def images_per_second(shape: tuple[int, int, int], layout: str, precision: str, steps: int) -> float:
    torch.manual_seed(0)
    h, w, c = shape
    enc, dec = ConvFeatures(shape, 32), ConvDecoder(10, shape, 32)
    head = torch.nn.Linear(enc.out_dim, 10)
    x = torch.rand(100, h * w * c)

    def features(rows):
        images = rows.reshape(len(rows), h, w, c).permute(0, 3, 1, 2)
        return enc.net(images if layout == "channels-last" else images.contiguous()).flatten(1)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False):
            out = dec(head(features(x)))
        out.float().pow(2).mean().backward()

    for _ in range(10):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 100 * steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--images", type=int, nargs="+", default=[28, 28, 1, 32, 32, 3], help="H W C, repeated")
    args = p.parse_args()
    flags = " ".join(f for f in ("avx512_bf16", "amx_bf16", "avx2") if f in cpu_flags())
    print(f"CPU: {cpu_model()}; flags: {flags}; {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'image':>10s} {'layout':>14s} {'fp32 img/s':>11s} {'bf16 img/s':>11s}")
    shapes = [tuple(args.images[i : i + 3]) for i in range(0, len(args.images), 3)]
    for shape in shapes:
        for layout in ("channels-last", "NCHW copy"):
            rates = [images_per_second(shape, layout, p, args.steps) for p in ("fp32", "bf16")]
            print(f"{'x'.join(map(str, shape)):>10s} {layout:>14s} {rates[0]:11.0f} {rates[1]:11.0f}", flush=True)


if __name__ == "__main__":
    main()
