"""Tests for aae.training.resume and the trainer's state: resume equals training straight
through, weight averaging and early stopping across a resume, what a resume must match."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from aae.errors import CheckpointError, ConfigError
from aae.evaluation.evaluate import epoch_metrics
from aae.training import checkpoint as io
from aae.training.devices import cpu_model
from aae.training.resume import resume_training
from aae.training.trainer import Trainer
from conftest import MIXTURE, assert_same_weights, build, losses_of, rows, state

# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize("ema", [0.0, 0.9], ids=["raw", "ema"])
def test_resume_equals_training_straight_through(digits, tiny_config, tmp_path, ema):
    ov = ("model.regime=label_conditioned", MIXTURE, f"train.ema={ema}")
    straight = build(tiny_config(*ov, "train.epochs=4"))
    h_straight = Trainer(straight, tiny_config(*ov, "train.epochs=4"), tmp_path / "straight").fit(
        digits.train.x, digits.train.y
    )

    run_dir = tmp_path / "interrupted"
    first = build(tiny_config(*ov, "train.epochs=2"))
    h_first = Trainer(first, tiny_config(*ov, "train.epochs=2"), run_dir).fit(digits.train.x, digits.train.y)
    assert len(h_first) == 2
    assert io.read_checkpoint(run_dir)[1]["epoch"] == "2"

    # a fresh process would build the model from another RNG state: resume must not depend on it
    resumed = build(tiny_config(*ov, "train.epochs=4"), seed=99)
    trainer = Trainer(resumed, tiny_config(*ov, "train.epochs=4"), run_dir)
    h_resumed = trainer.fit(digits.train.x, digits.train.y, resume=True)

    assert trainer.epoch == 4
    assert_same_weights(state(straight), state(resumed))
    assert losses_of(h_resumed) == losses_of(h_straight)
    assert [r["epoch"] for r in rows(run_dir)] == [1, 2, 3, 4]
    assert losses_of(rows(run_dir)) == losses_of(h_straight)
    # the checkpoint of the resumed run equals that of the straight one
    t_a, m_a = io.read_checkpoint(tmp_path / "straight")
    t_b, m_b = io.read_checkpoint(run_dir)
    assert m_a["epoch"] == m_b["epoch"] == "4"
    assert t_a.keys() == t_b.keys()
    assert all(torch.equal(t_a[k], t_b[k]) for k in t_a)
    # where the run trained: one entry for its start, one for its resume
    stints = json.loads((run_dir / "machine.json").read_text())
    assert [s["from_epoch"] for s in stints] == [0, 2]
    assert stints[0]["cpu"] == cpu_model() and stints[0]["precision"].startswith("fp32")
    assert stints[0]["threads"] >= 1 and stints[0]["device"] == "cpu"


def test_weight_average_is_the_plain_mean_until_its_window_then_moves_at_its_decay():
    from aae.training.optimizers import ema_with_warmup

    avg = [torch.zeros(3)]  # the first update copied 0
    update = ema_with_warmup(0.5)
    update(avg, [torch.full((3,), 2.0)], torch.tensor(1))  # mean of 0 and 2
    assert torch.allclose(avg[0], torch.full((3,), 1.0))
    update(avg, [torch.full((3,), 5.0)], torch.tensor(2))  # decay capped at 0.5: 1 + (5 - 1) / 2
    assert torch.allclose(avg[0], torch.full((3,), 3.0))


def test_weight_averaging_measures_and_saves_the_average_and_trains_on(digits, tiny_config, tmp_path):
    cfg = tiny_config("model.regime=semi_supervised", "train.epochs=2", "train.ema=0.9")
    model = build(cfg)
    trainer = Trainer(model, cfg, tmp_path)
    trainer.fit(digits.train.x, np.where(np.arange(len(digits.train.y)) % 5 == 0, digits.train.y, -1))
    averaged, raw = state(trainer.result), state(model)
    assert trainer.result is not model and averaged.keys() == raw.keys()
    assert not all(torch.equal(averaged[k], raw[k]) for k in raw)
    # what a user loads is the average; the raw weights stay in the checkpoint for resuming
    assert_same_weights(state(io.load(tmp_path)), averaged)
    tensors, _ = io.read_checkpoint(tmp_path)
    assert all(torch.equal(tensors[f"raw/{k}"], raw[k]) for k in raw)
    # and training goes on from them, also when the average is switched off
    more = tiny_config("model.regime=semi_supervised", "train.epochs=3")
    resumed = Trainer(build(more, seed=5), more, tmp_path)
    resume_training(resumed)
    assert resumed.epoch == 2 and resumed.averaged is None
    assert_same_weights(state(resumed.model), raw)


def test_batch_norm_encoder_averages_its_statistics_and_copies_its_counter(digits, tiny_config, tmp_path):
    cfg = tiny_config(
        "model.regime=semi_supervised", "train.epochs=1", "train.ema=0.9", "model.encoder_batch_norm=true"
    )
    model = build(cfg)
    trainer = Trainer(model, cfg, tmp_path)
    trainer.fit(digits.train.x, some_labels(digits.train.y))
    averaged, raw = state(trainer.result), state(model)
    counters = [k for k in raw if k.endswith("num_batches_tracked")]
    assert counters and all(torch.equal(averaged[k], raw[k]) and raw[k] > 0 for k in counters)
    means = [k for k in raw if k.endswith("running_mean")]
    assert means and not any(torch.equal(averaged[k], raw[k]) for k in means)
    assert_same_weights(state(io.load(tmp_path)), averaged)


# ----------------------------------------------------------------------------- early stopping

SEMI = ("model.regime=semi_supervised", "train.ema=0.9")


def some_labels(y: np.ndarray) -> np.ndarray:
    return np.where(np.arange(len(y)) % 5 == 0, y, -1)


def test_select_by_keeps_the_model_of_the_lowest_evaluation_and_trains_on(digits, tiny_config, tmp_path):
    cfg = tiny_config(*SEMI, "train.epochs=4", "train.select_by=valid_error")
    scores, seen = iter([0.3, 0.1, 0.2, 0.15]), []

    def evaluate(measured):
        seen.append(state(measured))
        return {"valid_error": next(scores)}

    model = build(cfg)
    trainer = Trainer(model, cfg, tmp_path, evaluate=evaluate)
    trainer.fit(digits.train.x, some_labels(digits.train.y))
    assert (trainer.selection.epoch, trainer.selection.value) == (2, 0.1)
    assert_same_weights(state(trainer.result), seen[1])
    # what a user loads is the selected model; training state (raw weights, average) stays beside it
    assert_same_weights(state(io.load(tmp_path)), seen[1])
    tensors, _ = io.read_checkpoint(tmp_path)
    assert all(torch.equal(tensors[f"raw/{k}"], v) for k, v in state(model).items())
    assert all(torch.equal(tensors[f"average/{k}"], v) for k, v in seen[3].items())


def test_resume_with_select_by_equals_training_straight_through(digits, tiny_config, tmp_path):
    ov = (*SEMI, "train.select_by=valid_error")
    y = some_labels(digits.train.y)
    straight = Trainer(
        build(tiny_config(*ov, "train.epochs=4")),
        tiny_config(*ov, "train.epochs=4"),
        tmp_path / "a",
        evaluate=epoch_metrics(digits, tiny_config(*ov)),
    )
    h_straight = straight.fit(digits.train.x, y)
    first = tiny_config(*ov, "train.epochs=2")
    Trainer(build(first), first, tmp_path / "b", evaluate=epoch_metrics(digits, first)).fit(digits.train.x, y)
    resumed = Trainer(
        build(tiny_config(*ov, "train.epochs=4"), seed=3),
        tiny_config(*ov, "train.epochs=4"),
        tmp_path / "b",
        evaluate=epoch_metrics(digits, tiny_config(*ov)),
    )
    h_resumed = resumed.fit(digits.train.x, y, resume=True)
    assert losses_of(h_resumed) == losses_of(h_straight)
    assert resumed.selection.epoch == straight.selection.epoch
    assert resumed.selection.value == min(r["valid_error"] for r in h_straight)
    t_a, _ = io.read_checkpoint(tmp_path / "a")
    t_b, _ = io.read_checkpoint(tmp_path / "b")
    assert t_a.keys() == t_b.keys() and all(torch.equal(t_a[k], t_b[k]) for k in t_a)


def test_select_by_valid_mmd_keeps_the_epoch_whose_codes_best_match_the_prior(digits, tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=3", "train.select_by=valid_mmd")
    trainer = Trainer(build(cfg), cfg, tmp_path, evaluate=epoch_metrics(digits, cfg), progress=False)
    history = trainer.fit(digits.train.x)
    mmds = [r["valid_mmd"] for r in history]
    assert len(mmds) == 3 and trainer.selection.value == min(mmds)
    assert trainer.selection.epoch == 1 + mmds.index(min(mmds))


def test_select_by_a_metric_the_run_does_not_measure_names_those_it_does(digits, tiny_config):
    allowed = "'', 'valid_error', 'valid_mmd'"
    with pytest.raises(ConfigError, match=f"^train.select_by = 'valid_eror' is not allowed; choose one of: {allowed}$"):
        tiny_config(*SEMI, "train.select_by=valid_eror")
    # an unsupervised run has no labeled validation split: it measures no valid_error
    cfg = tiny_config("train.epochs=1", "train.select_by=valid_error")
    with pytest.raises(
        ConfigError,
        match="^train.select_by = 'valid_error' is not measured in this run; it measures "
        "discriminator, generator, reconstruction, test_mmd, test_reconstruction$",
    ):
        Trainer(build(cfg), cfg, evaluate=lambda m: {"test_reconstruction": 1.0, "test_mmd": 0.5}, progress=False).fit(
            digits.train.x
        )
    with pytest.raises(ConfigError, match="needs a per-epoch evaluation"):
        Trainer(build(cfg), cfg)


def test_resume_with_per_epoch_evaluation_equals_straight_through(digits, tiny_config, tmp_path):
    cfg4 = tiny_config("train.epochs=4", "train.eval_every=1")
    cfg2 = tiny_config("train.epochs=2", "train.eval_every=1")
    straight = build(cfg4)
    h_straight = Trainer(straight, cfg4, tmp_path / "a", evaluate=epoch_metrics(digits, cfg4)).fit(digits.train.x)
    Trainer(build(cfg2), cfg2, tmp_path / "b", evaluate=epoch_metrics(digits, cfg2)).fit(digits.train.x)
    resumed = build(cfg4, seed=7)
    h_resumed = Trainer(resumed, cfg4, tmp_path / "b", evaluate=epoch_metrics(digits, cfg4)).fit(
        digits.train.x, resume=True
    )
    assert_same_weights(state(straight), state(resumed))
    assert losses_of(h_resumed) == losses_of(h_straight)
    assert all("test_mmd" in r for r in h_resumed)


def test_resume_drops_log_rows_past_the_checkpoint(digits, tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    Trainer(build(tiny_config("train.epochs=2")), tiny_config("train.epochs=2"), run_dir).fit(digits.train.x)
    assert [r["epoch"] for r in rows(run_dir)] == [1, 2]
    # a run killed after logging epoch 99 but before its checkpoint: the log is ahead of the checkpoint
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 99, "reconstruction": -1.0}) + "\n")
    trainer = Trainer(build(tiny_config("train.epochs=3")), tiny_config("train.epochs=3"), run_dir)
    history = trainer.fit(digits.train.x, resume=True)
    logged = rows(run_dir)
    assert [r["epoch"] for r in logged] == [1, 2, 3]
    assert all(r["reconstruction"] > 0 for r in logged)
    assert losses_of(logged) == losses_of(history)


def test_resume_past_the_last_epoch_trains_nothing(digits, tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=2")
    first = build(cfg)
    Trainer(first, cfg, tmp_path).fit(digits.train.x)
    again = build(cfg, seed=3)
    history = Trainer(again, cfg, tmp_path).fit(digits.train.x, resume=True)
    assert [r["epoch"] for r in history] == [1, 2]
    assert_same_weights(state(first), state(again))


def test_resume_without_a_checkpoint_starts_afresh(digits, tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=1")
    a, b = build(cfg), build(cfg)
    Trainer(a, cfg).fit(digits.train.x)
    Trainer(b, cfg, tmp_path / "new").fit(digits.train.x, resume=True)
    assert_same_weights(state(a), state(b))
    assert json.loads((tmp_path / "new" / "config.json").read_text()) == cfg.to_dict()


def test_fit_into_a_run_dir_with_a_checkpoint_needs_resume(digits, tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=1")
    Trainer(build(cfg), cfg, tmp_path).fit(digits.train.x)
    before = (tmp_path / "checkpoint.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a checkpoint; pass --resume"):
        Trainer(build(cfg), cfg, tmp_path).fit(digits.train.x)
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == before
    assert len(rows(tmp_path)) == 1


@pytest.mark.parametrize(
    "change, was",
    [
        ("model.z_dim=3", "model.z_dim = 2, not 3"),
        ("model.hidden=[16]", "model.hidden = [32], not [16]"),
        ("data.subset=500", "data.subset = None, not 500"),
        ("train.optimizer=sgd", "train.optimizer = 'adam', not 'sgd'"),
        ("train.seed=4", "train.seed = 0, not 4"),
    ],
)
def test_resume_with_another_config_is_refused(digits, tiny_config, tmp_path, change, was):
    Trainer(build(tiny_config("train.epochs=1")), tiny_config("train.epochs=1"), tmp_path).fit(digits.train.x)
    other = tiny_config("train.epochs=2", change)
    path = tmp_path / io.CHECKPOINT
    with pytest.raises(
        CheckpointError,
        match=rf"^{path} was trained with {re.escape(was)}; a resume cannot change "
        rf"it: use the run's config, or another --out$",
    ):
        Trainer(build(other), other, tmp_path).fit(digits.train.x, resume=True)
    assert io.read_checkpoint(tmp_path)[1]["epoch"] == "1"


def test_what_a_resume_must_match_is_the_model_the_data_and_the_optimizers_kind(tiny_config):
    same = io.what_must_match(tiny_config().to_dict())
    assert set(same) == {"model", "data", "train"}
    assert set(same["train"]) == {"optimizer", "seed", "select_by"}
    assert "data_dir" not in same["data"] and "download" not in same["data"]
    # the learning rates, epochs, schedule and evaluation may change on a resume
    changed = tiny_config(
        "train.epochs=9",
        "train.lr.generator=0.01",
        "train.eval_every=3",
        "eval.tta_shift=1",
        "data.data_dir=/elsewhere",
    )
    assert io.what_must_match(changed.to_dict()) == same


def test_a_checkpoint_from_before_a_config_key_existed_still_resumes(digits, tiny_config, tmp_path):
    from safetensors.torch import save

    cfg = tiny_config("train.epochs=1")
    Trainer(build(cfg), cfg, tmp_path).fit(digits.train.x)
    path = tmp_path / "checkpoint.safetensors"
    tensors, meta = io.read_checkpoint(path)
    old = json.loads(meta["config"])
    # as written by an earlier version: without a key of today (at its default), with the y head's old flags
    # instead of y_regularizer, and with keys since removed
    del old["model"]["vat_knn"], old["model"]["y_regularizer"]
    old["model"].update(y_adversary=True, reconstruction_trains_y=True, input_dropout=0.0)
    old["train"].update(checkpoint_every=1, progress=False, device="cpu")
    meta = {**meta, "config": json.dumps(old)}
    meta["sha256"] = io._digest(save(tensors, metadata=meta), meta)  # as that version's save would have
    io.atomic_write(path, save(tensors, metadata=meta))
    more = tiny_config("train.epochs=2")
    assert [r["epoch"] for r in Trainer(build(more), more, tmp_path).fit(digits.train.x, resume=True)] == [1, 2]


def test_resume_may_change_where_data_lives(digits, tiny_config, tmp_path):
    Trainer(build(tiny_config("train.epochs=1")), tiny_config("train.epochs=1"), tmp_path).fit(digits.train.x)
    other = tiny_config("train.epochs=2", "data.data_dir=/elsewhere", "data.download=false")
    assert len(Trainer(build(other), other, tmp_path).fit(digits.train.x, resume=True)) == 2


def test_resume_keeps_the_learning_rate_milestones(digits, tiny_config, tmp_path):
    ov = ("train.lr_milestones=[3]", "train.lr_gamma=0.1")
    straight = build(tiny_config(*ov, "train.epochs=4"))
    t_straight = Trainer(straight, tiny_config(*ov, "train.epochs=4"))
    t_straight.fit(digits.train.x)
    Trainer(build(tiny_config(*ov, "train.epochs=2")), tiny_config(*ov, "train.epochs=2"), tmp_path).fit(digits.train.x)
    t_resumed = Trainer(build(tiny_config(*ov, "train.epochs=4")), tiny_config(*ov, "train.epochs=4"), tmp_path)
    t_resumed.fit(digits.train.x, resume=True)
    assert t_straight.optimizers["reconstruction"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert t_resumed.optimizers["reconstruction"].param_groups[0]["lr"] == pytest.approx(1e-4)


def test_resume_uses_the_learning_rate_of_the_new_config(digits, tiny_config, tmp_path):
    Trainer(build(tiny_config("train.epochs=1")), tiny_config("train.epochs=1"), tmp_path).fit(digits.train.x)
    lowered = tiny_config("train.epochs=2", "train.lr.reconstruction=1e-5")
    trainer = Trainer(build(lowered), lowered, tmp_path)
    trainer.fit(digits.train.x, resume=True)
    assert trainer.optimizers["reconstruction"].param_groups[0]["lr"] == pytest.approx(1e-5)
