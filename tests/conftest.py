"""What the tests share: tiny networks (as config overrides and as command-line arguments), the
digits splits, a tiny-config factory, a seeded model, IDX files, ``aae`` run in-process with its
output captured, and one tiny trained run of the demo config."""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

# The tests use tiny MLPs; on a busy machine torch's intra-op thread pool makes them ~10x
# slower than one thread does, so every test runs single-threaded.
torch.set_num_threads(1)

NETS = ("model.hidden=[32]", "model.disc_hidden=[16]")
# Tiny networks on sklearn's digits (64 features): a training epoch takes a few milliseconds.
TINY = (*NETS, "data.name=digits")


def set_args(*items: str) -> list[str]:
    """Config overrides as arguments of ``aae train``: ``--set item`` for each."""
    return [arg for item in items for arg in ("--set", item)]


TINY_ARGS = ["--no-progress", *set_args(*NETS)]
"""the tiny networks as arguments of ``aae train`` (the config or --data names the data)"""
DEMO = ["train", "--config", "demo", "--epochs", "1"]
"""one epoch of the demo config (with TINY_ARGS: tiny networks)"""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def build(cfg, x_dim: int = 64, seed: int = 0):
    """A model of ``cfg`` (a config or its [model] section) for ``x_dim`` features, its weights
    drawn after ``torch.manual_seed(seed)``."""
    from aae.model.autoencoder import AdversarialAutoencoder

    torch.manual_seed(seed)
    return AdversarialAutoencoder(getattr(cfg, "model", cfg), x_dim)


@contextlib.contextmanager
def restored_logger():
    """main() adds a handler to the 'aae' logger on each call; take it off again after."""
    logger = logging.getLogger("aae")
    handlers, level = list(logger.handlers), logger.level
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``aae.cli.main(argv)`` with its stdout and stderr captured (also where capsys is not
    available, as in module-scoped fixtures): (exit status, stdout, stderr)."""
    from aae.cli import main

    out, err = io.StringIO(), io.StringIO()
    with restored_logger(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def idx_bytes(arr: np.ndarray) -> bytes:
    """``arr`` (uint8, int32 or float32) as an IDX file's bytes, MNIST's format."""
    code = {"uint8": 0x08, "int32": 0x0C, "float32": 0x0D}[arr.dtype.name]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    """``arr`` written as an IDX file, gzipped where ``path`` ends in .gz."""
    raw = idx_bytes(arr)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


class Trained(NamedTuple):
    run: Path
    out: str
    err: str


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    """One ``aae train`` of the demo config with tiny nets for 2 epochs, with figures: its run
    directory (shared, so copy it before changing it) and what the command printed."""
    run = tmp_path_factory.mktemp("trained") / "run"
    rc, out, err = run_main(["train", "--config", "demo", "--epochs", "2", "--out", str(run), *TINY_ARGS])
    assert rc == 0, err
    return Trained(run, out, err)


@pytest.fixture(scope="module")
def digits():
    """sklearn's digits as train (1077) / valid (120) / test (600) splits. Do not mutate."""
    from aae.data.sets import load

    return load("digits", progress=False)


@pytest.fixture
def tiny_config():
    """``tiny_config(*overrides, path=None)``: a validated config with tiny nets on digits."""
    from aae.config.load import load_config

    def make(*overrides: str, path=None):
        return load_config(path, [*TINY, *overrides])

    return make


@pytest.fixture
def mnist_dir() -> str:
    """The data root holding MNIST ($AAE_DATA_DIR, else ../shared/data beside the repository); the
    test is skipped where there is none."""
    for root in (os.environ.get("AAE_DATA_DIR"), Path(__file__).resolve().parents[2] / "shared" / "data"):
        if root and (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return str(root)
    pytest.skip("MNIST not found (set AAE_DATA_DIR, or put it in ../shared/data/mnist)")


# -- the training tests' helpers -------------------------------------------------------------
MIXTURE = "model.prior={name = 'mixture', n_modes = 10}"


def with_phase(trainer, name: str, fn) -> None:
    """Run ``fn`` in place of the function of the trainer's phase ``name`` (same groups, same labeled batch)."""
    from dataclasses import replace

    trainer.phases = tuple(replace(p, fn=fn) if p.name == name else p for p in trainer.phases)


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []


def rows(run_dir: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def losses_of(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]
