"""Tests for aae.training.trainer: learning, repeatability, the NaN guard, the data checks of
Trainer.fit and the precision of its steps. Tiny nets on sklearn's digits."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from aae.errors import DataError, TrainingError
from aae.evaluation import metrics
from aae.evaluation.evaluate import encode, epoch_metrics, final_metrics
from aae.model.phases import CLASSIFICATION, REGULARIZATION
from aae.training import checkpoint as io
from aae.training.devices import flushing_denormals, step_autocast
from aae.training.trainer import Trainer
from conftest import MIXTURE, assert_same_weights, build, losses_of, rows, state, with_phase

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
