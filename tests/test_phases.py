"""Tests for aae.model.phases and aae.training.optimizers: each phase steps its own parameter groups
at its own rate, and only those."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aae.model.phases
from aae.model.phases import CLASSIFICATION, RECONSTRUCTION, REGULARIZATION, Batch
from aae.training.optimizers import Optimizers
from aae.training.trainer import Trainer
from conftest import MIXTURE, assert_same_weights, build, state


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
