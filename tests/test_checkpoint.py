"""Tests for aae.training.checkpoint: checkpoints (safetensors + JSON metadata, no pickle), loading, atomic writes."""

from __future__ import annotations

import json
import pickle
import random

import pytest
import torch
from safetensors.torch import save as st_save

from aae.errors import CheckpointError
from aae.model.autoencoder import AdversarialAutoencoder
from aae.model.phases import Batch, train_step
from aae.training import checkpoint as io
from aae.training.devices import load_rng_state
from aae.training.optimizers import Optimizers
from conftest import build

HISTORY = [{"epoch": 1, "reconstruction": 40.5, "seconds": 0.1}, {"epoch": 2, "reconstruction": 33.25, "seconds": 0.1}]


def trained_parts(cfg, steps: int = 3):
    """A model with optimizers that have taken a few steps (so they have state)."""
    model = build(cfg).train()
    optimizers = Optimizers(model, cfg.train)
    assert set(optimizers) == {"reconstruction", "discriminator", "generator"}
    x = torch.rand(100, 64)
    for _ in range(steps):
        train_step(model, Batch(x), optimizers, model.phases)
    return model.eval(), optimizers


@pytest.fixture
def saved(tmp_path, tiny_config):
    cfg = tiny_config("model.regime=label_conditioned", "model.prior={name = 'mixture', n_modes = 10}", "model.z_dim=2")
    model, optimizers = trained_parts(cfg)
    path = tmp_path / "run" / io.CHECKPOINT
    io.save_checkpoint(path, model=model, config=cfg, x_dim=64, epoch=2, history=HISTORY, optimizers=optimizers)
    return path, cfg, model, optimizers


# ----------------------------------------------------------------------------- round trip


def test_checkpoint_round_trip_keeps_weights_config_epoch_and_history(saved):
    path, cfg, model, optimizers = saved
    tensors, meta = io.read_checkpoint(path)
    assert meta["format"] == "aae-checkpoint/1"
    assert meta["x_dim"] == "64" and meta["epoch"] == "2"
    assert json.loads(meta["history"]) == HISTORY
    assert io.config_of(meta) == cfg
    weights = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    # Adam keeps step, exp_avg, exp_avg_sq for every parameter that had a gradient
    n_recon = len(model.parameter_groups()["reconstruction"])
    assert sum(1 for k in tensors if k.startswith("optim/reconstruction/") and k.endswith("/exp_avg")) == n_recon
    assert "rng/torch" in tensors


def test_read_checkpoint_accepts_the_run_directory(saved):
    path, cfg, *_ = saved
    t_file, m_file = io.read_checkpoint(path)
    t_dir, m_dir = io.read_checkpoint(path.parent)
    assert m_file == m_dir and t_file.keys() == t_dir.keys()


def test_training_state_restores_optimizers_and_rng(saved, tiny_config):
    path, cfg, model, optimizers = saved
    tensors, meta = io.read_checkpoint(path)
    state = io.training_state(tensors, meta)
    assert (state["epoch"], state["history"]) == (2, HISTORY)
    assert state["raw"] is state["average"] is state["selected"] is state["ema_steps"] is None
    fresh = build(cfg, seed=5)
    opts = Optimizers(fresh, cfg.train)
    torch.manual_seed(123)
    io.load_weights(fresh, state["model"])
    opts.load_state_dict(state["optimizers"], state["epoch"])
    load_rng_state(state["rng"])
    assert torch.equal(torch.get_rng_state(), tensors["rng/torch"])
    for k in optimizers:
        a, b = optimizers[k].state_dict(), opts[k].state_dict()
        assert a["state"].keys() == b["state"].keys()
        for i in a["state"]:
            for name in a["state"][i]:
                assert torch.equal(torch.as_tensor(a["state"][i][name]), torch.as_tensor(b["state"][i][name]))
        assert [g["lr"] for g in b["param_groups"]] == [g["lr"] for g in a["param_groups"]]


def test_load_rebuilds_a_model_with_identical_outputs(saved):
    path, cfg, model, *_ = saved
    loaded = io.load(path.parent)
    assert isinstance(loaded, AdversarialAutoencoder)
    assert not loaded.training
    assert loaded.config == cfg.model and loaded.x_dim == 64
    x = torch.rand(20, 64)
    assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    assert torch.equal(loaded.encode(x).z, model.encode(x).z)
    z = torch.randn(7, 2)
    assert torch.equal(loaded.generate(7, z=z), model.generate(7, z=z))
    labels = torch.tensor([0, 3, -1])
    code = torch.randn(3, 2)
    assert torch.equal(loaded.discriminate("z", code, labels), model.discriminate("z", code, labels))
    # the file path works as well as the directory
    assert torch.equal(io.load(path).reconstruct(x), model.reconstruct(x))


def test_checkpoint_without_optimizers_or_rng_is_loadable(tmp_path, tiny_config):
    cfg = tiny_config()
    model = build(cfg).eval()
    io.save_checkpoint(tmp_path / "c.safetensors", model=model, config=cfg, x_dim=64, epoch=0, history=[], rng=False)
    tensors, meta = io.read_checkpoint(tmp_path / "c.safetensors")
    assert all(k.startswith("model/") for k in tensors)
    assert json.loads(meta["optimizers"]) == {} and json.loads(meta["history"]) == []
    x = torch.rand(4, 64)
    assert torch.equal(io.load(tmp_path / "c.safetensors").reconstruct(x), model.reconstruct(x))


# ----------------------------------------------------------------------------- bad files


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match=f"no checkpoint at {tmp_path / io.CHECKPOINT}"):
        io.read_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        io.load(tmp_path / "nothing.safetensors")


@pytest.mark.parametrize("keep", [0, 4, 8, 100, "half", "all_but_one"])
def test_truncated_checkpoint_is_a_checkpoint_error_naming_the_file(saved, keep):
    path = saved[0]
    data = path.read_bytes()
    n = {"half": len(data) // 2, "all_but_one": len(data) - 1}.get(keep, keep)
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError) as err:
        io.load(path.parent)
    msg = str(err.value)
    assert msg.startswith(f"{path} is corrupt or truncated (")
    assert "\n" not in msg


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage garbage garbage",
        b"\xff" * 64,
        random.Random(0).randbytes(4096),
        b"\x02\x00\x00\x00\x00\x00\x00\x00[]",
        b"\x04\x00\x00\x00\x00\x00\x00\x00\xff\xfe{}",
    ],
)
def test_garbage_bytes_are_a_checkpoint_error_naming_the_file(tmp_path, garbage):
    path = tmp_path / io.CHECKPOINT
    path.write_bytes(garbage)
    with pytest.raises(CheckpointError, match=f"^{path} is corrupt or truncated"):
        io.read_checkpoint(tmp_path)


def test_safetensors_file_that_is_not_an_aae_checkpoint(tmp_path):
    path = tmp_path / "other.safetensors"
    path.write_bytes(st_save({"weight": torch.zeros(3, 3)}))
    with pytest.raises(
        CheckpointError, match=f"^{path} is not an aae checkpoint \\(format None, expected 'aae-checkpoint/1'\\)"
    ):
        io.load(path)
    path.write_bytes(st_save({"weight": torch.zeros(3)}, metadata={"format": "pt"}))
    with pytest.raises(CheckpointError, match="is not an aae checkpoint \\(format 'pt'"):
        io.read_checkpoint(path)


def test_weights_of_another_shape_are_a_checkpoint_error(tmp_path, tiny_config):
    small, big = tiny_config("model.hidden=[16]"), tiny_config("model.hidden=[32]")
    # weights of a hidden=[16] model under a config that says hidden=[32]
    io.save_checkpoint(tmp_path / io.CHECKPOINT, model=build(small), config=big, x_dim=64, epoch=1, history=[])
    with pytest.raises(CheckpointError) as err:
        io.load(tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path} does not fit this model's shapes: ")
    assert "size mismatch" in msg and "\n" not in msg


def test_restore_into_a_model_of_another_shape(saved, tiny_config):
    path, *_ = saved
    tensors, _ = io.read_checkpoint(path)
    other = build(tiny_config("model.regime=label_conditioned", "model.z_dim=3"))
    with pytest.raises(CheckpointError, match="does not fit this model's shapes"):
        io.restore(other, tensors, path=path)
    missing = {k: v for k, v in tensors.items() if not k.startswith("model/decoder")}
    with pytest.raises(CheckpointError, match="does not fit this model's shapes"):
        io.restore(build(tiny_config("model.regime=label_conditioned")), missing, path=path)


def test_config_that_cannot_build_a_model_is_a_checkpoint_error(tmp_path, tiny_config):
    cfg = tiny_config()
    cfg.model.objective = "vae"  # needs a gaussian encoder: the saved config no longer validates
    io.save_checkpoint(tmp_path / io.CHECKPOINT, model=build(tiny_config()), config=cfg, x_dim=64, epoch=1, history=[])
    with pytest.raises(CheckpointError, match="its config is unreadable \\(model.objective = 'vae' needs") as err:
        io.load(tmp_path)
    assert str(err.value).startswith(str(tmp_path)) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_writes_bytes_and_text_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "dir" / "file.json"
    io.atomic_write(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    io.atomic_write(target, b"\x00\x01binary")
    assert target.read_bytes() == b"\x00\x01binary"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.jsonl"
    target.write_text("old contents\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        io.atomic_write(target, "new contents\n")
    assert target.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_failed_checkpoint_save_keeps_the_previous_checkpoint(saved, monkeypatch):
    path, cfg, model, *_ = saved
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", broken_replace)
    with pytest.raises(OSError):
        io.save_checkpoint(path, model=model, config=cfg, x_dim=64, epoch=3, history=HISTORY)
    assert path.read_bytes() == before
    assert io.read_checkpoint(path)[1]["epoch"] == "2"
    assert [p.name for p in path.parent.iterdir()] == [io.CHECKPOINT]


# ----------------------------------------------------------------------------- no pickle


def test_loading_and_resuming_never_unpickle(saved, monkeypatch, digits, tiny_config, tmp_path):
    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling is not allowed")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)

    path, cfg, model, *_ = saved
    x = torch.rand(5, 64)
    assert torch.equal(io.load(path.parent).reconstruct(x), model.reconstruct(x))

    # and a trainer resumes from its run directory the same way
    from aae.training.trainer import Trainer

    run_cfg = tiny_config("train.epochs=1")
    Trainer(build(run_cfg), run_cfg, tmp_path / "r").fit(digits.train.x)
    more = tiny_config("train.epochs=2")
    assert len(Trainer(build(more), more, tmp_path / "r").fit(digits.train.x, resume=True)) == 2


def test_checkpoint_file_is_plain_safetensors_with_json_metadata(saved):
    path = saved[0]
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    meta = header["__metadata__"]
    assert set(meta) == {
        "format",
        "aae_version",
        "config",
        "x_dim",
        "image_shape",
        "epoch",
        "history",
        "optimizers",
        "sha256",
    }
    for key in ("config", "history", "optimizers"):
        json.loads(meta[key])
    assert len(meta["sha256"]) == 64 and int(meta["sha256"], 16) >= 0


def _rewrite(path, tensors, meta, *, rehash: bool = True) -> None:
    """Write a checkpoint's tensors and metadata back, with a SHA-256 that fits them (as a save would)."""
    meta = dict(meta)
    if rehash:
        meta["sha256"] = io._digest(st_save(tensors, metadata=meta), meta)
    io.atomic_write(path, st_save(tensors, metadata=meta))


@pytest.mark.parametrize("change", ["metadata", "tensor"])
def test_a_checkpoint_altered_after_saving_fails_its_sha256(saved, change):
    path = saved[0]
    tensors, meta = io.read_checkpoint(path)
    if change == "metadata":
        meta = {**meta, "epoch": "7"}
    else:
        name = next(k for k in tensors if k.startswith("model/"))
        tensors = {**tensors, name: tensors[name] + 1}
    _rewrite(path, tensors, meta, rehash=False)
    with pytest.raises(CheckpointError, match=f"^{path} does not match its own SHA-256") as err:
        io.load(path)
    assert "\n" not in str(err.value)


def test_a_checkpoint_holding_nan_weights_is_refused(saved):
    path = saved[0]
    tensors, meta = io.read_checkpoint(path)
    name = next(k for k in tensors if k.startswith("model/") and tensors[k].is_floating_point())
    tensors = {**tensors, name: torch.full_like(tensors[name], float("nan"))}
    _rewrite(path, tensors, meta)
    with pytest.raises(CheckpointError, match=f"^{path} holds NaN or infinite values in '{name}'; it cannot be used$"):
        io.load(path)


def test_a_checkpoint_from_another_version_loads_without_its_unknown_keys(saved, caplog):
    path, cfg, model, *_ = saved
    tensors, meta = io.read_checkpoint(path)
    table = json.loads(meta["config"])
    table["eval"]["retired_key"] = 1
    meta["config"] = json.dumps(table)
    _rewrite(path, tensors, meta)
    with caplog.at_level("WARNING", logger="aae"):
        loaded = io.load(path)
    assert "eval.retired_key" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
