"""Small shared fixtures: the digits splits and a tiny-config factory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The tests use tiny MLPs; on a busy machine torch's intra-op thread pool makes them ~10x
# slower than one thread does, so every test runs single-threaded.
torch.set_num_threads(1)

# Tiny networks on sklearn's digits (64 features): a training epoch takes a few milliseconds.
TINY = ("model.hidden=[32]", "model.disc_hidden=[16]", "data.name=digits")


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
