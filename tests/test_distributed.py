"""Multi-process training under torchrun (gloo on the CPU): shared minibatches, one set of weights."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import aae.training.distributed as distributed

WORKER = textwrap.dedent("""
    import os, sys
    import numpy as np, torch
    from aae.config.load import load_config
    from aae.data.sets import load
    from aae.model.autoencoder import AdversarialAutoencoder
    from aae.training.trainer import Trainer
    from aae.training import distributed

    torch.set_num_threads(1)
    cfg = load_config(None, ["model.regime=semi_supervised", "model.z_dim=3", "model.hidden=[32]",
                             "model.disc_hidden=[16]", "train.epochs=2",
                             "train.batch_size=50", "train.ema=0.9", "train.shift=1"])
    splits = load("digits", progress=False)
    y = splits.train.y.copy()
    y[100:] = -1
    rank = int(os.environ["RANK"])
    torch.manual_seed(rank)  # each process starts from other weights: process 0's must win
    trainer = Trainer(AdversarialAutoencoder(cfg.model, 64), cfg, run_dir=sys.argv[1])
    trainer.fit(splits.train.x, y)
    weights = torch.cat([p.detach().flatten() for p in trainer.result.parameters()])
    np.save(os.path.join(sys.argv[1], f"weights{rank}.npy"), weights.numpy())
    distributed.finish()
""")


@pytest.mark.slow
def test_two_processes_train_one_model(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1 = np.load(out / "weights0.npy"), np.load(out / "weights1.npy")
    # different starting weights and different minibatches, yet one model: broadcast + averaged gradients
    np.testing.assert_array_equal(w0, w1)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # written once, by process 0
    assert (out / "checkpoint.safetensors").exists()


def test_each_process_takes_its_own_minibatches(monkeypatch):
    perm = torch.randperm(1000)
    shares = []
    for r in range(3):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        monkeypatch.setattr(distributed, "world_size", lambda: 3)
        shares.append(distributed.shard(perm, steps=10, batch_size=100))
    assert [s.shape for s in shares] == [(3, 100)] * 3  # 10 minibatches: 9 shared out, one left over
    seen = torch.cat([s.flatten() for s in shares])
    assert len(set(seen.tolist())) == 900 and set(seen.tolist()) <= set(perm[:1000].tolist())
    np.testing.assert_array_equal(shares[1][0], perm[100:200])  # minibatch i goes to process i % 3


def test_one_process_changes_nothing():
    assert distributed.world_size() == 1 and distributed.is_main()
    t = torch.arange(4.0)
    assert distributed.mean_over_processes(t) is t
