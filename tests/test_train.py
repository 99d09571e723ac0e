"""Tests for aae.training.trainer and aae.model.phases: learning, repeatability, resume, NaN guard, phase isolation,
and the data checks of Trainer.fit. Tiny nets on sklearn's digits; every fit takes well under a second."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import aae.model.phases
from aae.data.augment import image_shape_of, random_affine, random_shift, translate
from aae.errors import CheckpointError, ConfigError, DataError, TrainingError
from aae.evaluation import metrics
from aae.evaluation.evaluate import encode, epoch_metrics, final_metrics
from aae.model.autoencoder import AdversarialAutoencoder
from aae.model.phases import CLASSIFICATION, RECONSTRUCTION, REGULARIZATION, Batch
from aae.training import checkpoint as io
from aae.training.devices import cpu_model, flushing_denormals, step_autocast
from aae.training.optimizers import Optimizers
from aae.training.resume import resume_training
from aae.training.trainer import Trainer

MIXTURE = "model.prior={name = 'mixture', n_modes = 10}"


def build(cfg, seed: int = 0, x_dim: int = 64) -> AdversarialAutoencoder:
    torch.manual_seed(seed)
    return AdversarialAutoencoder(cfg.model, x_dim)


def with_phase(trainer: Trainer, name: str, fn) -> None:
    """Run ``fn`` in place of the function of the trainer's phase ``name`` (same groups, same labeled batch)."""
    trainer.phases = tuple(replace(p, fn=fn) if p.name == name else p for p in trainer.phases)


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def losses_of(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


# ----------------------------------------------------------------------------- learning


def test_short_training_lowers_reconstruction_and_mmd_to_the_prior(digits, tiny_config):
    cfg = tiny_config(MIXTURE, "train.epochs=40")
    model = build(cfg)
    torch.manual_seed(1)
    before = final_metrics(model.eval(), digits, cfg)
    history = Trainer(model, cfg).fit(digits.train.x)
    torch.manual_seed(1)
    after = final_metrics(model.eval(), digits, cfg)

    assert [r["epoch"] for r in history] == list(range(1, 41))
    # untrained: ~44 nats per 8x8 image; 40 epochs bring it below 30 (measured ~25)
    assert before["test_reconstruction"] > 40
    assert after["test_reconstruction"] < 0.7 * before["test_reconstruction"]
    # the untrained codes sit near 0, far from the mixture's ring of radius 4: MMD ~4.2 -> ~0.4
    assert before["test_mmd"] > 3
    assert after["test_mmd"] < 0.25 * before["test_mmd"]
    # the logged training loss went down as well
    assert history[-1]["reconstruction"] < 0.7 * history[0]["reconstruction"]

    # the same MMD measured directly on the codes agrees with the improvement
    z, _ = encode(model, digits.test.x, sample=False)
    assert z.shape == (600, 2)
    prior = model.prior.sample(600, generator=torch.Generator().manual_seed(0)).numpy()
    assert metrics.mmd(z, prior) < 0.25 * before["test_mmd"]


def test_history_rows_hold_the_phase_losses(digits, tiny_config):
    cfg = tiny_config("train.epochs=2", "model.regime=semi_supervised", "train.batch_size=50")
    y = np.full(len(digits.train), -1)
    y[:30] = digits.train.y[:30]
    labeled = []

    def classification(model, batch, optimizer):
        labeled.append((batch.x_labeled.shape[0], batch.y_labeled))
        return CLASSIFICATION.fn(model, batch, optimizer)

    trainer = Trainer(build(cfg), cfg, progress=False)
    with_phase(trainer, "classification", classification)
    history = trainer.fit(digits.train.x, y)
    assert [r["epoch"] for r in history] == [1, 2]
    # each step's labeled minibatch is train.batch_size points drawn from the 30 labeled ones
    assert len(labeled) == 2 * (len(digits.train) // 50) and all(n == 50 for n, _ in labeled)
    assert all(set(ys.tolist()) <= set(digits.train.y[:30].tolist()) for _, ys in labeled)
    assert set(history[0]) == {"epoch", "reconstruction", "discriminator", "generator", "classification", "seconds"}
    # two heads (z, y), each a two-term BCE: near 2 * 2 log 2 = 2.77 while the codes are easy to tell apart
    assert 2.0 < history[0]["discriminator"] < 3.5
    assert all(np.isfinite(v) for r in history for v in r.values())


def test_training_flushes_subnormal_floats_and_restores_the_setting_after(digits, tiny_config, monkeypatch):
    cfg = tiny_config("train.epochs=1")
    trainer, seen = Trainer(build(cfg), cfg, progress=False), []
    real = trainer._epoch

    def epoch(data):
        seen.append(flushing_denormals())
        return real(data)

    monkeypatch.setattr(trainer, "_epoch", epoch)
    assert not flushing_denormals()
    trainer.fit(digits.train.x)
    assert seen == [True]
    assert not flushing_denormals()


# ----------------------------------------------------------------------------- repeatability


def test_same_seed_gives_bit_identical_weights(digits, tiny_config):
    cfg = tiny_config("train.epochs=3", "model.regime=label_conditioned", MIXTURE)
    a, b = build(cfg), build(cfg)
    ha = Trainer(a, cfg).fit(digits.train.x, digits.train.y)
    torch.manual_seed(12345)  # the global RNG state before fit must not matter: fit seeds it
    hb = Trainer(b, cfg).fit(digits.train.x, digits.train.y)
    assert_same_weights(state(a), state(b))
    assert losses_of(ha) == losses_of(hb)


def test_another_seed_gives_other_weights(digits, tiny_config):
    a, b = build(tiny_config("train.epochs=1")), build(tiny_config("train.epochs=1"))
    Trainer(a, tiny_config("train.epochs=1", "train.seed=0")).fit(digits.train.x)
    Trainer(b, tiny_config("train.epochs=1", "train.seed=1")).fit(digits.train.x)
    assert not torch.equal(a.decoder[0].weight, b.decoder[0].weight)


def test_run_with_the_same_seed_twice_in_one_process_is_repeatable(digits, tiny_config):
    from aae.experiment import run

    cfg = tiny_config("train.epochs=1")
    first = run(cfg, splits=digits, figures=False)
    second = run(cfg, splits=digits, figures=False)
    assert_same_weights(state(first.model), state(second.model))


def test_eval_every_does_not_change_the_trained_weights(digits, tiny_config):
    weights = []
    for every in (1, 100):
        cfg = tiny_config("train.epochs=3", f"train.eval_every={every}")
        model = build(cfg)
        Trainer(model, cfg, evaluate=epoch_metrics(digits, cfg)).fit(digits.train.x)
        weights.append(state(model))
    assert_same_weights(*weights)


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


def test_select_by_a_metric_the_run_does_not_measure_names_those_it_does(digits, tiny_config):
    with pytest.raises(
        ConfigError, match="^train.select_by = 'valid_eror' is not allowed; choose one of: '', 'valid_error'$"
    ):
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


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_every_phase_has_the_papers_optimizer_at_its_own_rate(tiny_config, optimizer):
    cfg = tiny_config("model.regime=semi_supervised", f"train.optimizer={optimizer}", "train.lr.classification=0.01")
    optimizers = Trainer(build(cfg), cfg).optimizers
    assert set(optimizers) == {"reconstruction", "discriminator", "generator", "classification"}
    for phase, opt in optimizers.items():
        group = opt.param_groups[0]
        assert group["lr"] == (0.01 if phase == "classification" else 1e-3)
        if optimizer == "sgd":  # SGD with momentum 0.9 (the paper), Adam with beta1 0.5 (as GANs train)
            assert isinstance(opt, torch.optim.SGD) and group["momentum"] == 0.9
        else:
            assert isinstance(opt, torch.optim.Adam) and group["betas"] == (0.5, 0.999)


@pytest.mark.parametrize("shape", [(8, 8, 1), (5, 5, 3)])
def test_random_shift_translates_each_image_by_its_own_offset_within_range(shape):
    h, w, c = shape
    images = torch.rand(40, h, w, c) + 1  # no zeros, so the zero fill shows where the image moved out
    shifted = random_shift(images.reshape(40, -1), 2, shape).reshape(40, h, w, c)
    offsets = set()
    for original, moved in zip(images, shifted):
        fits = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(
                moved,
                torch.roll(torch.nn.functional.pad(original, (0, 0, 2, 2, 2, 2)), (dy, dx), (0, 1))[
                    2 : 2 + h, 2 : 2 + w
                ],
            )
        ]
        assert len(fits) == 1
        offsets.add(fits[0])
    assert len(offsets) > 5  # each image draws its own offset


def test_translate_takes_pixel_i_plus_dy_j_plus_dx_and_fills_with_zeros():
    image = torch.arange(1, 17, dtype=torch.float32).reshape(1, 4, 4)
    moved = translate(image.reshape(1, -1), 1, -1, 2, (4, 4, 1)).reshape(4, 4)
    assert moved[0, 1] == image[0, 1, 0] and moved[2, 3] == image[0, 3, 2]
    assert moved[3].eq(0).all() and moved[:, 0].eq(0).all()
    # one offset per image, as tensors (n, 1)
    both = translate(
        torch.cat([image, image]).reshape(2, -1), torch.tensor([[0], [1]]), torch.tensor([[0], [-1]]), 1, (4, 4, 1)
    )
    assert torch.equal(both[0], image.reshape(-1)) and torch.equal(both[1], moved.reshape(-1))


def test_image_shape_of_flattened_grey_and_colour_squares():
    assert image_shape_of(64) == (8, 8, 1) and image_shape_of(3072) == (32, 32, 3)
    with pytest.raises(DataError, match="70 features are not a square image"):
        image_shape_of(70)


def _centre_of_mass(images: torch.Tensor, side: int) -> torch.Tensor:
    grid = torch.arange(side, dtype=torch.float32)
    mass = images.reshape(-1, side, side)
    total = mass.sum((1, 2))
    return torch.stack([(mass.sum(2) * grid).sum(1) / total, (mass.sum(1) * grid).sum(1) / total], 1)


def test_random_affine_is_the_identity_at_zero_and_moves_each_image_its_own_way():
    torch.manual_seed(0)
    images = torch.zeros(200, 12, 12)
    images[:, 4:8, 4:8] = 1  # a centred square, far from the border
    x = images.reshape(200, -1)
    assert torch.allclose(random_affine(x, 0.0, 0.0, (12, 12, 1)), x, atol=1e-6)
    moved = _centre_of_mass(random_affine(x, 0.0, 1.5, (12, 12, 1)), 12) - 5.5
    assert moved.abs().max() <= 1.5 + 1e-4 and moved.abs().max() > 1.2  # within range, and reaching it
    assert len({tuple(m) for m in moved.round(decimals=2).tolist()}) > 150  # each image its own offset
    # rotation about the centre: a dot keeps its distance to the centre, at its own angle per image
    dot = torch.zeros(200, 21, 21)
    dot[:, 10, 16] = 1
    turned = _centre_of_mass(random_affine(dot.reshape(200, -1), 30.0, 0.0, (21, 21, 1)), 21) - 10
    radius, angle = turned.norm(dim=1), torch.atan2(turned[:, 0], turned[:, 1]).rad2deg()
    assert torch.allclose(radius, torch.full_like(radius, 6.0), atol=0.3)
    assert angle.abs().max() <= 30.5 and angle.abs().max() > 25 and angle.std() > 10


def test_shift_trains_on_shifted_images_and_is_refused_where_it_cannot_apply(digits, tiny_config):
    originals = torch.as_tensor(digits.train.x)
    labels = np.where(np.arange(len(digits.train)) < 100, digits.train.y, -1)

    def unseen_images(shift: int) -> int:
        """how many images the encoder read in one epoch that are not training images"""
        cfg = tiny_config("model.regime=semi_supervised", f"train.shift={shift}", "train.epochs=1")
        trainer, seen = Trainer(build(cfg), cfg), []
        trainer.model.encode = (lambda encode: lambda x, **k: seen.append(x) or encode(x, **k))(trainer.model.encode)
        trainer.fit(digits.train.x, labels)
        return sum(int((~(x[:, None, :] == originals[None]).all(-1).any(-1)).sum()) for x in seen)

    assert unseen_images(0) == 0
    assert unseen_images(1) > 0
    cfg = tiny_config("model.regime=semi_supervised", "train.shift=1")
    with pytest.raises(DataError, match="not a square image"):
        Trainer(build(cfg, x_dim=70), cfg)
    with pytest.raises(ConfigError, match="train.shift = -1"):
        Trainer(build(cfg), tiny_config("train.shift=-1"))


# ----------------------------------------------------------------------------- NaN guard


def test_huge_learning_rate_stops_with_a_training_error_naming_the_loss(digits, tiny_config):
    cfg = tiny_config("train.epochs=3", "train.optimizer=sgd", "train.lr.reconstruction=10")  # the highest allowed
    with pytest.raises(
        TrainingError,
        match=r"^the reconstruction loss became nan \(first nan\) in epoch 1 by step "
        r"10; lower train\.lr\.reconstruction and train again$",
    ):
        Trainer(build(cfg), cfg, progress=False).fit(digits.train.x)


@pytest.mark.parametrize("loss, stops", [("reconstruction", True), ("generator", False)])
def test_a_reconstruction_loss_a_million_times_its_first_stops_the_run(
    digits, tiny_config, tmp_path, monkeypatch, loss, stops
):
    import aae.training.trainer

    calls = {"n": 0}

    def step(model, batch, optimizers, phases, **_):  # one sane epoch (10 steps), then a loss 2e7 times larger
        calls["n"] += 1
        return {loss: torch.tensor(1e9 if calls["n"] > 10 else 50.0)}

    monkeypatch.setattr(aae.training.trainer, "train_step", step)
    cfg = tiny_config("train.epochs=3")
    trainer = Trainer(build(cfg), cfg, tmp_path, progress=False)
    if not stops:  # only the reconstruction (and the VAE's kl) are held to their first value
        assert [r[loss] for r in trainer.fit(digits.train.x)] == pytest.approx([50.0, 1e9, 1e9])
        return
    with pytest.raises(
        TrainingError,
        match=rf"^the reconstruction loss became 1e\+09 \(first 50\) in epoch 2 by step "
        rf"10; the last good checkpoint is {tmp_path / io.CHECKPOINT}; lower "
        rf"train\.lr\.reconstruction and resume$",
    ):
        trainer.fit(digits.train.x)
    assert io.read_checkpoint(tmp_path)[1]["epoch"] == "1"


def test_nan_guard_keeps_the_last_good_checkpoint(digits, tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config("train.epochs=4")
    # the reference: the same run stopped cleanly after 2 epochs
    good = build(cfg)
    Trainer(good, tiny_config("train.epochs=2")).fit(digits.train.x)

    calls = {"n": 0}

    def poisoned(model, batch, *optimizers):
        calls["n"] += 1
        out = REGULARIZATION.fn(model, batch, *optimizers)
        if calls["n"] > 2 * 10 + 3:  # 10 steps per epoch: NaN from step 4 of epoch 3
            out["generator"] = torch.tensor(float("nan"))
        return out

    run_dir = tmp_path / "run"
    trainer = Trainer(build(cfg), cfg, run_dir)
    with_phase(trainer, "regularization", poisoned)
    with pytest.raises(TrainingError) as err:
        trainer.fit(digits.train.x)
    msg = str(err.value)
    assert re.match(r"the generator loss became nan \(first 0\.\d+\) in epoch 3 by step 10; ", msg)
    assert f"the last good checkpoint is {run_dir / 'checkpoint.safetensors'}" in msg
    assert "lower train.lr.generator and resume" in msg

    tensors, meta = io.read_checkpoint(run_dir)
    assert meta["epoch"] == "2"
    assert [r["epoch"] for r in json.loads(meta["history"])] == [1, 2]
    assert [r["epoch"] for r in rows(run_dir)] == [1, 2]
    loaded = io.load(run_dir)
    assert_same_weights(state(loaded), state(good))
    x = torch.as_tensor(digits.test.x[:10])
    assert torch.isfinite(loaded.reconstruct(x)).all()


@pytest.mark.parametrize("loss, rate", [("classification", "classification"), ("vat", "generator")])
def test_nan_guard_names_the_rate_of_the_phase_a_loss_comes_from(digits, tiny_config, loss, rate):
    cfg = tiny_config("train.epochs=1", "model.regime=semi_supervised", "model.vat_weight=1")
    trainer = Trainer(build(cfg), cfg)
    if loss == "classification":
        with_phase(trainer, "classification", lambda model, batch, opt: {loss: torch.tensor(float("inf"))})
    else:  # a y head's term, inside the generator step of the regularization phase
        with_phase(trainer, "regularization", lambda model, batch, *opts: {loss: torch.tensor(float("inf"))})
    with pytest.raises(
        TrainingError,
        match=rf"^the {loss} loss became inf \(first inf\) in epoch 1 by step 10; "
        rf"lower train\.lr\.{rate} and train again$",
    ):
        trainer.fit(digits.train.x, digits.train.y)


# ----------------------------------------------------------------------------- phases


def _semi_supervised(tiny_config, digits, *settings):
    cfg = tiny_config("model.regime=semi_supervised", *settings)
    model = build(cfg).train()
    optimizers = Optimizers(model, cfg.train)
    x = torch.as_tensor(digits.train.x[:100])
    y = torch.as_tensor(digits.train.y[:100])
    batch = Batch(x, torch.full((100,), -1), x_labeled=x[:40], y_labeled=y[:40])
    return model, optimizers, batch


PARTS = {
    "encoder.trunk": "encoder.trunk.",
    "encoder.z_head": "encoder.z_head.",
    "encoder.y_head": "encoder.y_head.",
    "decoder": "decoder.",
    "disc.z": "discriminators.z.",
    "disc.y": "discriminators.y.",
}


def _changed(model, before: dict, parts: dict[str, str] = PARTS) -> dict[str, bool]:
    """Per part (by default encoder trunk / z head / y head, decoder, each discriminator; else
    ``parts``, name to parameter prefix): did any weight change?"""
    after = state(model)
    return {
        name: any(not torch.equal(before[k], after[k]) for k in before if k.startswith(p)) for name, p in parts.items()
    }


def test_parameter_groups_cover_the_model_by_role(tiny_config):
    model = build(tiny_config("model.regime=semi_supervised"))
    groups = {k: {id(p) for p in v} for k, v in model.parameter_groups().items()}
    enc, dec = {id(p) for p in model.encoder.parameters()}, {id(p) for p in model.decoder.parameters()}
    disc = {id(p) for p in model.discriminators.parameters()}
    assert groups == {"reconstruction": enc | dec, "discriminator": disc, "generator": enc, "classification": enc}
    assert enc | dec | disc == {id(p) for p in model.parameters()}


def test_reconstruction_phase_updates_encoder_and_decoder_only(tiny_config, digits):
    model, optimizers, batch = _semi_supervised(tiny_config, digits)
    before = state(model)
    out = RECONSTRUCTION(model, batch, optimizers)
    assert set(out) == {"reconstruction"}
    assert _changed(model, before) == {
        "encoder.trunk": True,
        "encoder.z_head": True,
        "encoder.y_head": True,
        "decoder": True,
        "disc.z": False,
        "disc.y": False,
    }


def test_regularization_phase_updates_discriminators_and_encoder_not_decoder(tiny_config, digits):
    model, optimizers, batch = _semi_supervised(tiny_config, digits)
    before = state(model)
    out = REGULARIZATION(model, batch, optimizers)
    assert set(out) == {"discriminator", "generator"}
    # two heads, each with a two-term BCE near 2 log 2 at the start
    assert 2 < out["discriminator"].item() < 4
    assert _changed(model, before) == {
        "encoder.trunk": True,
        "encoder.z_head": True,
        "encoder.y_head": True,
        "decoder": False,
        "disc.z": True,
        "disc.y": True,
    }


def test_classification_phase_updates_only_the_encoder(tiny_config, digits):
    model, optimizers, batch = _semi_supervised(tiny_config, digits)
    before = state(model)
    out = CLASSIFICATION(model, batch, optimizers)
    assert set(out) == {"classification"}
    assert out["classification"].item() == pytest.approx(np.log(10), abs=0.5)  # untrained: near uniform over 10
    # the style head z does not enter q(y|x), so it stays too
    assert _changed(model, before) == {
        "encoder.trunk": True,
        "encoder.z_head": False,
        "encoder.y_head": True,
        "decoder": False,
        "disc.z": False,
        "disc.y": False,
    }


def test_classification_phase_without_a_labeled_batch_does_nothing(tiny_config, digits):
    model, optimizers, batch = _semi_supervised(tiny_config, digits)
    batch.x_labeled = batch.y_labeled = None
    before = state(model)
    assert CLASSIFICATION(model, batch, optimizers) == {}
    assert not any(_changed(model, before).values())


def test_discriminator_takes_prior_samples_as_real_and_codes_as_fake(tiny_config, digits, monkeypatch):
    model, optimizers, batch = _semi_supervised(tiny_config, digits)
    with torch.no_grad():
        codes = model.head_codes(model.encode(batch.x))
    sampled, seen, pairs = {}, [], []
    real_sample, real_disc, real_loss = model.sample_prior, model.discriminate, aae.model.phases.discriminator_loss

    def sample_prior(head, n, labels=None):
        sampled[head] = real_sample(head, n, labels)
        return sampled[head]

    def discriminate(head, code, labels=None, batches=1):
        out = real_disc(head, code, labels, batches)
        seen.append((head, code, out))
        return out

    def discriminator_loss(on_prior, on_codes):
        pairs.append((on_prior, on_codes))
        return real_loss(on_prior, on_codes)

    monkeypatch.setattr(model, "sample_prior", sample_prior)
    monkeypatch.setattr(model, "discriminate", discriminate)
    monkeypatch.setattr(aae.model.phases, "discriminator_loss", discriminator_loss)
    REGULARIZATION(model, batch, optimizers)

    assert len(pairs) == 2  # one per head
    for head, (on_prior, on_codes) in zip(("z", "y"), pairs):
        # the discriminator step's forward pass of this head, over both, before the generator step's
        _, inputs, outputs = next(s for s in seen if s[0] == head)
        n = len(sampled[head])
        assert torch.equal(inputs[:n], sampled[head])  # real: the prior's samples
        assert torch.equal(inputs[n:], codes[head])  # fake: the encoder's codes
        assert torch.equal(torch.cat([on_prior, on_codes]), outputs)
    assert set(sampled) == {"z", "y"}


def test_trained_discriminator_scores_prior_above_zero_and_codes_below(tiny_config, digits):
    cfg = tiny_config(MIXTURE, "train.optimizer=sgd", "train.lr.discriminator=0.05")
    model = build(cfg).train()
    groups = model.parameter_groups()
    # the discriminator's optimizer alone steps: the generator's has rate 0 (a config refuses that rate)
    optimizers = {
        "discriminator": Optimizers(model, cfg.train)["discriminator"],
        "generator": torch.optim.SGD(groups["generator"], lr=0.0),
    }
    x = torch.as_tensor(digits.train.x[:200])
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    for i in range(150):
        REGULARIZATION(model, Batch(x[(i % 2) * 100 : (i % 2 + 1) * 100]), optimizers)
    assert_same_weights(encoder_before, model.encoder.state_dict())  # lr 0: the encoder stayed frozen
    with torch.no_grad():
        on_prior = model.discriminate("z", model.sample_prior("z", 500)).mean().item()
        on_codes = model.discriminate("z", model.encode(x).z).mean().item()
    assert on_prior > 0 > on_codes


# ----------------------------------------------------------------------------- data checks


def test_wrong_x_shape_is_a_data_error(digits, tiny_config):
    cfg = tiny_config("train.epochs=1")
    with pytest.raises(DataError, match=r"x has shape \(1077, 63\), expected \(n, 64\)"):
        Trainer(build(cfg), cfg).fit(digits.train.x[:, :63])
    with pytest.raises(DataError, match=r"x has shape \(1077, 8, 8\), expected \(n, 64\)"):
        Trainer(build(cfg), cfg).fit(digits.train.x.reshape(-1, 8, 8))


def test_non_finite_x_and_too_few_points_are_data_errors(digits, tiny_config):
    cfg = tiny_config("train.epochs=1")
    x = digits.train.x.copy()
    x[5, 3] = np.nan
    with pytest.raises(DataError, match="NaN or infinite"):
        Trainer(build(cfg), cfg).fit(x)
    with pytest.raises(DataError, match="99 training points is fewer than train.batch_size = 100"):
        Trainer(build(cfg), cfg).fit(digits.train.x[:99])


def test_supervised_regime_needs_every_label(digits, tiny_config):
    cfg = tiny_config("train.epochs=1", "model.regime=supervised")
    with pytest.raises(DataError, match="this regime needs labels"):
        Trainer(build(cfg), cfg).fit(digits.train.x, None)
    y = digits.train.y.copy()
    y[[3, 7, 11]] = -1
    with pytest.raises(DataError, match="the supervised regime needs every label; 3 of 1077 are -1"):
        Trainer(build(cfg), cfg).fit(digits.train.x, y)


def test_semi_supervised_needs_a_labeled_point(digits, tiny_config):
    cfg = tiny_config("train.epochs=1", "model.regime=semi_supervised")
    with pytest.raises(DataError, match="needs at least one labeled point"):
        Trainer(build(cfg), cfg).fit(digits.train.x, np.full(len(digits.train), -1))
    with pytest.raises(DataError, match="this regime needs labels"):
        Trainer(build(cfg), cfg).fit(digits.train.x, None)


def test_label_out_of_range_is_a_data_error(digits, tiny_config):
    cfg = tiny_config("train.epochs=1", "model.regime=label_conditioned", MIXTURE)
    y = digits.train.y.copy()
    y[4] = 10
    with pytest.raises(DataError, match=r"y\[4\] = 10 is not a valid label; allowed: -1 \(unlabeled\) or 0\.\.9"):
        Trainer(build(cfg), cfg).fit(digits.train.x, y)
    y[4] = -2
    with pytest.raises(DataError, match=r"y\[4\] = -2 is not a valid label"):
        Trainer(build(cfg), cfg).fit(digits.train.x, y)
    with pytest.raises(DataError, match=r"has shape \(1076,\), expected \(1077,\)"):
        Trainer(build(cfg), cfg).fit(digits.train.x, digits.train.y[:-1])


def test_data_errors_leave_no_run_files(digits, tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=1")
    with pytest.raises(DataError):
        Trainer(build(cfg), cfg, tmp_path / "run").fit(digits.train.x[:, :10])
    assert not (tmp_path / "run").exists()


def test_bf16_training_reaches_the_fp32_result(tiny_config, digits):
    """bf16 autocast (losses, weights and optimizer state in float32) trains the tiny semi-supervised
    AAE on digits to within 5 % of float32's reconstruction and 5 points of its test error."""
    from aae.evaluation.evaluate import final_metrics
    from aae.model.autoencoder import build_model

    measured = {}
    for precision in ("fp32", "bf16"):
        cfg = tiny_config(
            "model.regime=semi_supervised",
            "train.epochs=15",
            "train.batch_size=50",
            "model.z_dim=5",
            "model.hidden=[128]",
            "model.disc_hidden=[64]",
            f"train.precision={precision}",
            "data.n_labeled=200",
        )
        torch.manual_seed(0)
        trainer = Trainer(build_model(cfg.model, 64), cfg, progress=False)
        assert trainer.autocast == (torch.bfloat16 if precision == "bf16" else None)
        trainer.fit(digits.train.x, digits.train.y)
        measured[precision] = final_metrics(trainer.result.eval(), digits, cfg)
    fp32, bf16 = measured["fp32"], measured["bf16"]
    assert abs(bf16["test_reconstruction"] - fp32["test_reconstruction"]) < 0.05 * fp32["test_reconstruction"]
    assert abs(bf16["test_error"] - fp32["test_error"]) < 0.05
    assert fp32["test_error"] < 0.2  # both learned (fp32 7.5 %, bf16 8.2 % when written)


def test_a_step_autocast_computes_with_the_weights_an_earlier_phase_stepped():
    """Within one step's autocast a phase's optimizer step moves weights that a later phase reads:
    the later forward pass must cast the new weights, not reuse a cached bf16 copy of the old."""
    lin, x = torch.nn.Linear(4, 3), torch.ones(2, 4)
    with step_autocast(torch.device("cpu"), torch.bfloat16):
        before = lin(x)
        before.float().sum().backward()
        torch.optim.SGD(lin.parameters(), lr=1.0).step()
        after = lin(x)
    assert after.dtype == torch.bfloat16
    assert not torch.equal(before, after)


def test_auto_precision_takes_bf16_only_with_bf16_matrix_units(monkeypatch):
    import aae.training.devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(aae.training.devices, "cpu_flags", lambda: {"avx2", "fma"})
    assert aae.training.devices.pick_precision("auto", cpu) == (
        None,
        "fp32 (auto: CPU has neither amx_bf16 nor avx512_bf16)",
    )
    monkeypatch.setattr(aae.training.devices, "cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert aae.training.devices.pick_precision("auto", cpu) == (torch.bfloat16, "bf16 (auto: CPU has amx_bf16)")
    assert aae.training.devices.pick_precision("fp32", cpu)[0] is None
