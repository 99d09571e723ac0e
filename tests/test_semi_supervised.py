"""The semi-supervised regime (Section 5): two discriminators, three phases, label budgets."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aae.model.losses as losses
import aae.model.phases as phases
from aae.config.load import load_config
from aae.config.schema import ModelConfig
from aae.errors import ConfigError, DataError
from aae.experiment import run
from aae.model.autoencoder import AdversarialAutoencoder, Classifier, build_model
from aae.model.losses import marginal_kl, mean_entropy, virtual_adversarial_loss
from aae.model.nets import Discriminator
from aae.model.phases import REGULARIZATION, Batch
from conftest import build


def small_model(**kw):
    return build(ModelConfig(regime="semi_supervised", z_dim=3, hidden=[32], disc_hidden=[16], **kw), 20)


def optimizers(model):
    return {k: torch.optim.SGD(v, lr=0.01) for k, v in model.parameter_groups().items()}


def test_each_discriminator_takes_its_prior_as_real_and_codes_as_fake(monkeypatch):
    model = small_model()
    x = torch.rand(64, 20)
    with torch.no_grad():
        codes = model.encode(x)
    seen, losses = [], []
    original, real_loss = model.discriminate, phases.discriminator_loss

    def spy(head, code, labels=None, batches=1):
        out = original(head, code, labels, batches)
        seen.append((head, code.detach().clone(), out.detach().clone()))
        return out

    def loss_spy(on_prior, on_codes):
        losses.append((on_prior.detach(), on_codes.detach()))
        return real_loss(on_prior, on_codes)

    monkeypatch.setattr(model, "discriminate", spy)
    monkeypatch.setattr(phases, "discriminator_loss", loss_spy)
    REGULARIZATION(model, Batch(x), optimizers(model))
    # the y discriminator reads each code beside its minibatch's mean (always); the z discriminator the code alone
    assert model.discriminators["y"].batch_mean and model.discriminators["y"].net[0].in_features == 2 * 10
    assert not model.discriminators["z"].batch_mean and model.discriminators["z"].net[0].in_features == 3

    # the discriminator step: per head, its prior samples then its codes in one forward pass
    by_head = {}
    for h in ("y", "z"):
        inputs, outputs = next((c, d) for hh, c, d in seen if hh == h)
        by_head[h] = (inputs[:64], outputs[:64]), (inputs[64:], outputs[64:])
    (y_real, _), (y_fake, _) = by_head["y"]
    assert torch.equal(y_real.sum(1), torch.ones(64)) and set(y_real.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(y_fake, codes.y)
    (z_real, _), (z_fake, _) = by_head["z"]
    assert torch.allclose(z_fake, codes.z) and not torch.allclose(z_real, codes.z)
    # discriminator_loss(on_prior, on_codes) got D(prior samples) first and D(codes) second, per head
    assert len(losses) == 2
    for on_prior, on_codes in losses:
        head = next(h for h, pairs in by_head.items() if torch.equal(pairs[0][1], on_prior))
        assert torch.equal(by_head[head][1][1], on_codes)


def test_a_batch_mean_discriminator_reads_each_minibatch_of_a_joint_pass_apart():
    torch.manual_seed(0)
    disc = Discriminator(10, [16], batch_mean=True)
    a, b = torch.rand(8, 10), torch.rand(8, 10) + 1.0
    joint = disc(torch.cat([a, b]), batches=2)
    assert torch.allclose(joint, torch.cat([disc(a), disc(b)]), atol=1e-6)
    assert not torch.allclose(joint, disc(torch.cat([a, b])), atol=1e-3)  # one mean over both differs


def test_the_y_discriminator_learns_to_tell_one_hot_from_softmax():
    model = small_model()
    opts = {k: torch.optim.Adam(v, lr=1e-2) for k, v in model.parameter_groups().items()}
    x = torch.rand(64, 20)
    for _ in range(100):  # discriminator steps only: the encoder stays as it is
        with torch.no_grad():
            codes = model.head_codes(model.encode(x))
        loss = phases.discriminator_loss(
            model.discriminate("y", model.sample_prior("y", 64)), model.discriminate("y", codes["y"])
        )
        phases._step(model, opts["discriminator"], loss)
    with torch.no_grad():
        real = model.discriminate("y", model.sample_prior("y", 256)).mean()
        fake = model.discriminate("y", model.head_codes(model.encode(x))["y"]).mean()
    assert real > 0 > fake


@pytest.mark.slow
def test_short_semi_supervised_run_beats_chance_by_far(tmp_path, mnist_dir):
    cfg = load_config(
        "mnist_semi_1000",
        [
            "train.epochs=3",
            "model.hidden=[256, 256]",
            "model.disc_hidden=[128]",
            "data.subset=5000",
            "train.lr_milestones=[]",
            f"data.data_dir='{mnist_dir}'",
            "data.download=false",
        ],
    )
    result = run(cfg, tmp_path / "run", figures=False)
    assert (result.splits.train.y >= 0).sum() == 1000
    assert np.bincount(result.splits.train.y[result.splits.train.y >= 0]).tolist() == [100] * 10
    assert result.metrics["test_error"] < 0.25  # chance is 0.90
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert all("test_error" in r for r in result.history)


def test_virtual_adversarial_loss_finds_the_direction_that_changes_q_y_most():
    torch.manual_seed(0)
    w = torch.zeros(20, 2)
    w[3, 0], w[3, 1] = 4.0, -4.0  # the class depends on pixel 3 alone
    logits_of = lambda x: x @ w  # noqa: E731
    x = torch.zeros(256, 20)
    vat = virtual_adversarial_loss(logits_of, x, eps=0.5)
    # the adversarial perturbation lies along pixel 3: its KL is the largest a step of 0.5 can give
    along = F.kl_div(
        ((x + 0.5 * torch.eye(20)[3]) @ w).log_softmax(-1),
        (x @ w).log_softmax(-1),
        log_target=True,
        reduction="batchmean",
    )
    assert vat.item() == pytest.approx(along.item(), rel=1e-3)
    # a classifier that ignores its input has nothing to smooth
    assert virtual_adversarial_loss(lambda x: x[:, :2] * 0, x, eps=0.5).item() == 0


def test_virtual_adversarial_loss_takes_one_radius_per_point():
    w = torch.zeros(20, 2)
    w[3, 0], w[3, 1] = 4.0, -4.0
    logits_of = lambda x: x @ w  # noqa: E731
    x = torch.zeros(4, 20)
    per_point = virtual_adversarial_loss(logits_of, x, eps=torch.tensor([[0.1], [0.1], [1.0], [1.0]]))
    small, large = (virtual_adversarial_loss(logits_of, x[:2], eps=e) for e in (0.1, 1.0))
    assert per_point.item() == pytest.approx((small.item() + large.item()) / 2, rel=1e-3)


def test_virtual_adversarial_loss_under_bf16_finds_the_float32_direction():
    """The probe (norm 1e-2 over all pixels) is below bf16's rounding at pixel values of 0.5: under a
    bf16 autocast the direction must still be found in float32, or it is rounding noise."""
    w = torch.zeros(20, 2)
    w[3, 0], w[3, 1] = 4.0, -4.0
    logits_of = lambda x: x @ w  # noqa: E731
    x = torch.full((256, 20), 0.5)
    torch.manual_seed(5)
    fp32 = virtual_adversarial_loss(logits_of, x, eps=0.5)
    torch.manual_seed(5)
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        bf16 = virtual_adversarial_loss(logits_of, x, eps=0.5)
    assert bf16.item() == pytest.approx(fp32.item(), rel=1e-2)  # a third less with the probe in bf16


def test_neighbour_distance_is_the_kth_nearest_other_point(tiny_config, digits):
    from sklearn.neighbors import NearestNeighbors

    from aae.data.augment import neighbour_distance

    x = torch.as_tensor(digits.train.x[:300])
    ours = neighbour_distance(x, 5, chunk=64)  # several chunks
    theirs = NearestNeighbors(n_neighbors=6).fit(x.numpy()).kneighbors(x.numpy())[0][:, 5]  # itself first
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="model.vat_knn = 300 must be between 1"):
        neighbour_distance(x, 300)


def test_spread_scaled_radii_keep_the_neighbour_proportions_at_the_spread_median():
    from aae.data.augment import median_distance, neighbour_distance, vat_radii

    x = torch.randn(500, 3)
    x[:250] += 6  # two groups: the spread is far above the neighbour distances
    near, spread = neighbour_distance(x, 10), median_distance(x)
    assert torch.equal(vat_radii(x, 0.25, 10), 0.25 * near)
    radii = vat_radii(x, 0.1, 10, "spread")
    assert radii.median().item() == pytest.approx(0.1 * spread.item(), rel=1e-5)
    torch.testing.assert_close(radii / near, (radii / near).mean().expand(500))
    assert median_distance(x, most=500).item() == pytest.approx(torch.pdist(x).median().item())


def test_vat_knn_gives_each_training_image_its_own_radius(tiny_config, digits, monkeypatch):
    from aae.data.augment import neighbour_distance
    from aae.training.trainer import Trainer

    cfg = tiny_config(
        "model.regime=semi_supervised", "model.vat_weight=1", "model.vat_eps=0.25", "model.vat_knn=10", "train.epochs=1"
    )
    model = AdversarialAutoencoder(cfg.model, digits.train.x.shape[1])
    seen, vat = [], losses.virtual_adversarial_loss
    monkeypatch.setattr(
        losses, "virtual_adversarial_loss", lambda f, x, eps, **kw: (seen.append(eps), vat(f, x, eps, **kw))[1]
    )
    Trainer(model, cfg).fit(digits.train.x, digits.train.y)
    radii = 0.25 * neighbour_distance(torch.as_tensor(digits.train.x), 10)
    assert seen and all(r.shape == (cfg.train.batch_size, 1) for r in seen)
    assert torch.isin(torch.cat(seen).squeeze(1), radii).all() and torch.cat(seen).std() > 0


def test_vat_enters_the_generator_step_and_trains_the_encoder_only():
    model = small_model(vat_weight=1.0, vat_eps=0.5)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    out = REGULARIZATION(model, Batch(torch.rand(64, 20)), optimizers(model))
    assert out["vat"].item() > 0
    changed = {k.split(".")[0] for k, v in model.named_parameters() if not torch.equal(params[k], v)}
    assert changed == {"encoder", "discriminators"}
    plain = small_model()
    assert "vat" not in REGULARIZATION(plain, Batch(torch.rand(64, 20)), optimizers(plain))


def test_marginal_kl_is_zero_on_the_prior_and_grows_as_q_y_collapses():
    uniform = torch.full((10,), 0.1)
    spread = torch.eye(10).repeat(3, 1)  # every category equally often
    assert marginal_kl(spread, uniform).item() == pytest.approx(0, abs=1e-6)
    one = F.one_hot(torch.zeros(30, dtype=torch.long), 10).float()
    assert marginal_kl(one, uniform).item() == pytest.approx(np.log(10), rel=1e-5)
    half = torch.tensor([0.5, 0.5] + [0.0] * 8).expand(30, 10)
    assert 0 < marginal_kl(half, uniform).item() < marginal_kl(one, uniform).item()


def test_marginal_kl_spreads_q_y_and_trains_the_encoder_only():
    torch.manual_seed(0)
    model = small_model(y_marginal_weight=10.0)
    x = torch.rand(64, 20)
    with torch.no_grad():  # start collapsed: every input on category 0
        model.encoder.y_head.bias.copy_(torch.tensor([3.0] + [0.0] * 9))
    before = marginal_kl(model.encode(x).y, model.priors["y"].probs).item()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    for _ in range(20):
        out = REGULARIZATION(model, Batch(x), optimizers(model))
    assert out["y_marginal"].item() < before / 2
    changed = {k.split(".")[0] for k, v in model.named_parameters() if not torch.equal(params[k], v)}
    assert changed == {"encoder", "discriminators"}
    plain = small_model()
    assert "y_marginal" not in REGULARIZATION(plain, Batch(x), optimizers(plain))


def test_mean_entropy_is_log_m_when_uniform_and_zero_when_sure():
    assert mean_entropy(torch.zeros(5, 16)).item() == pytest.approx(np.log(16), rel=1e-6)
    assert mean_entropy(torch.tensor([[50.0, 0.0, 0.0]])).item() == pytest.approx(0, abs=1e-12)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert mean_entropy(p.log()[None]).item() == pytest.approx(-(p * p.log()).sum().item(), rel=1e-6)


def test_without_the_y_adversary_mutual_information_sharpens_q_y_and_keeps_it_spread():
    torch.manual_seed(0)
    model = small_model(y_regularizer="imsat", y_marginal_weight=4.0, y_entropy_weight=1.0)
    assert set(model.discriminators) == {"z"} and "y" in model.priors
    x = 5 * torch.eye(20)[torch.arange(64) % 10] + 0.1 * torch.randn(64, 20)  # ten well-separated groups
    adam = {k: torch.optim.Adam(v, lr=1e-2) for k, v in model.parameter_groups().items()}
    first = REGULARIZATION(model, Batch(x), adam)
    for _ in range(100):
        out = REGULARIZATION(model, Batch(x), adam)
    assert out["y_entropy"].item() < first["y_entropy"].item() / 2  # q(y|x) became sure
    assert out["y_marginal"].item() < 0.5  # without collapsing onto few categories (one category: log 10 = 2.3)
    plain = small_model()
    assert "y_entropy" not in REGULARIZATION(plain, Batch(x), optimizers(plain))
    # refused when the config is loaded: without both terms nothing keeps q(y|x) from collapsing
    imsat = ["model.regime=semi_supervised", "model.y_regularizer=imsat"]
    for terms in ([], ["model.vat_weight=1"], ["model.y_marginal_weight=1"], ["model.y_entropy_weight=1"]):
        with pytest.raises(
            ConfigError,
            match="^model.y_regularizer = 'imsat' trains q\\(y\\|x\\) by the mutual "
            "information: it needs model.y_marginal_weight > 0 and model.y_entropy_weight > 0$",
        ):
            load_config(None, [*imsat, *terms])


@pytest.mark.parametrize("regularizer", ["adversary", "imsat"])
def test_the_reconstruction_reaches_q_y_only_under_the_y_adversary(regularizer):
    trains_y = regularizer == "adversary"  # imsat: the decoder reads q(y|x) held fixed
    model = small_model(y_regularizer=regularizer, y_marginal_weight=1.0, y_entropy_weight=1.0)
    assert ("y" in model.discriminators) == trains_y
    head = model.encoder.y_head.weight.detach().clone()
    decoder = next(model.decoder.parameters()).detach().clone()
    phases.RECONSTRUCTION(model, Batch(torch.rand(64, 20)), optimizers(model))
    assert not torch.equal(decoder, next(model.decoder.parameters()))  # the decoder still learns from y
    assert torch.equal(head, model.encoder.y_head.weight) != trains_y


def names(phases) -> tuple[str, ...]:
    return tuple(p.name for p in phases)


def small_classifier(**kw):
    torch.manual_seed(0)
    kw = {"regime": "semi_supervised", "objective": "classifier", "z_dim": 3, "hidden": [32], **kw}
    return build_model(ModelConfig(**kw), 20)


def test_the_nn_baselines_run_the_classification_phase_and_vat_alone():
    nn = small_classifier()
    assert isinstance(nn, Classifier) and names(nn.phases) == ("classification",)
    assert {n.split(".")[0] for n, _ in nn.named_parameters()} == {"encoder"}  # no decoder, no discriminator
    assert nn.encoder.z_head is None and nn.encode(torch.rand(4, 20)).y_logits.shape == (4, 10)
    assert set(nn.parameter_groups()) == {"generator", "classification"}
    assert names(small_classifier(vat_weight=1.0).phases) == ("smoothing", "classification")
    clustering = small_classifier(regime="clustering", y_marginal_weight=1.0, y_entropy_weight=1.0)
    assert names(clustering.phases) == ("smoothing",)
    model = small_classifier(vat_weight=1.0, vat_eps=0.5)
    head = model.encoder.y_head.weight.detach().clone()
    out = phases.SMOOTHING(model, Batch(torch.rand(64, 20)), optimizers(model))
    assert set(out) == {"vat"} and out["vat"].item() > 0
    assert not torch.equal(head, model.encoder.y_head.weight)


IMSAT_TERMS = "it needs model.y_marginal_weight > 0 and model.y_entropy_weight > 0"


@pytest.mark.parametrize(
    "items, message",
    [
        (
            ["model.regime=unsupervised"],
            "needs the semi_supervised, dim_reduction or clustering regime, not 'unsupervised'",
        ),
        (["model.regime=supervised", "model.vat_weight=1"], "not 'supervised'"),
        (["model.regime=clustering"], IMSAT_TERMS),
        (["model.regime=clustering", "model.vat_weight=1"], IMSAT_TERMS),  # VAT alone is content with one cluster
        (["model.regime=clustering", "model.vat_weight=1", "model.y_marginal_weight=1"], IMSAT_TERMS),
    ],
)
def test_a_baseline_objective_that_cannot_train_is_refused(items, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, ["model.objective=classifier", *items])
    assert str(err.value).startswith("model.objective = 'classifier' ")
    # with labels, or with both mutual-information terms, the same classifier loads
    assert (
        load_config(None, ["model.objective=classifier", "model.regime=semi_supervised"]).model.objective
        == "classifier"
    )
    assert (
        load_config(
            None,
            [
                "model.objective=classifier",
                "model.regime=clustering",
                "model.y_marginal_weight=1",
                "model.y_entropy_weight=1",
            ],
        ).model.regime
        == "clustering"
    )


def test_nn_with_vat_trains_on_digits_and_beats_chance(tiny_config, tmp_path):
    from aae.evaluation.evaluate import encode
    from aae.training.checkpoint import load

    cfg = tiny_config(
        "model.regime='semi_supervised'",
        "model.objective='classifier'",
        "model.vat_weight=1.0",
        "model.vat_eps=0.3",
        "model.z_dim=2",
        "data.n_labeled=100",
        "train.epochs=8",
    )
    result = run(cfg, tmp_path / "nn", figures=False, progress=False)
    assert (
        result.metrics["test_error"] < 0.5
    )  # chance is 0.9 (measured 0.36; without VAT 0.27: too small a net to gain)
    assert all(r["vat"] > 0 and r["classification"] > 0 for r in result.history)
    # the run loads back as the same classifier, with its VAT (a saved config is not taken for the old NN's)
    loaded = load(tmp_path / "nn")
    assert isinstance(loaded, Classifier) and loaded.config == cfg.model and loaded.phases == result.model.phases
    x = result.splits.test.x[:50]
    np.testing.assert_array_equal(encode(loaded, x, sample=False)[1], encode(result.model, x, sample=False)[1])


def test_log_q_y_ranks_images_a_sure_head_rounds_to_one(tiny_config, digits):
    """The paper's cluster protocol takes each cluster's most confident validation image; a sure head
    gives hundreds of them q(y|x) = 1.0 in float32 (and past margin 37, in float64), so the ranking
    must come from log q(y|x) computed through 1 - q."""
    from aae.evaluation.evaluate import encode, log_mean_softmax

    logits = torch.tensor([[50.0, 0.0, 0.0], [60.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert logits.double().softmax(1)[0, 0] == logits.double().softmax(1)[1, 0] == 1.0
    log_q = log_mean_softmax([logits])
    np.testing.assert_allclose(
        log_q[:, 0], [-2 * np.exp(-50.0), -2 * np.exp(-60.0), np.log(1 / (2 + np.e))], rtol=1e-12
    )
    np.testing.assert_allclose(log_q.exp().sum(1), 1, rtol=1e-12)
    averaged = log_mean_softmax([logits, 0.9 * logits])  # q averaged over two views, both sure of class 0
    np.testing.assert_allclose(
        averaged[:2, 0], [-np.exp(-50.0) - np.exp(-45.0), -np.exp(-60.0) - np.exp(-54.0)], rtol=1e-12
    )
    np.testing.assert_allclose(
        averaged[2].exp(), (logits[2].double().softmax(0) + (0.9 * logits[2]).double().softmax(0)) / 2, rtol=1e-12
    )

    model = build(tiny_config("model.regime=semi_supervised")).eval()
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.mul_(30)  # logit margins of hundreds
    x = digits.test.x[:200]
    proba, log_q = encode(model, x, sample=False)[1], encode(model, x, sample=False, log=True)[1]
    assert log_q.dtype == np.float64 and np.allclose(np.exp(log_q), proba, atol=1e-6)
    top = proba.argmax(1)[0]
    assert (proba[:, top] == proba[:, top].max()).sum() > 1 and (log_q[:, top] == log_q[:, top].max()).sum() == 1


def test_test_time_shifts_average_q_y_over_every_translation(tiny_config, digits):
    from aae.data.augment import translate
    from aae.evaluation.evaluate import encode

    cfg = tiny_config("model.regime=semi_supervised")
    model = build(cfg).eval()
    x = digits.test.x[:50]
    plain = encode(model, x, sample=False)[1]
    averaged = encode(model, x, sample=False, tta_shift=1)[1]
    xt = torch.as_tensor(x)
    by_hand = (
        sum(model.encode(translate(xt, dy, dx, 1, (8, 8, 1)), sample=False).y for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        / 9
    )
    np.testing.assert_allclose(averaged, by_hand.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(averaged, plain) and np.allclose(averaged.sum(1), 1, atol=1e-5)
    with pytest.raises(ConfigError, match="eval.tta_shift = -1 must be 0 or more"):
        encode(model, x, tta_shift=-1)
    with pytest.raises(DataError, match="set eval.tta_shift = 0"):
        encode(AdversarialAutoencoder(cfg.model, 70).eval(), np.zeros((3, 70), np.float32), tta_shift=1)


def _label_conditioned(x_dim: int, **weights):
    """A small label-conditioned AAE on the 10-mode mixture, with the given term weights."""
    shape = {"z_dim": 2, "hidden": [32], "disc_hidden": [16], "prior": {"name": "mixture"}}
    return build(ModelConfig(regime="label_conditioned", **shape, **weights), x_dim)


def test_the_part_term_pulls_labeled_codes_into_their_part_and_skips_the_unlabeled():
    model = _label_conditioned(20, label_part_weight=1.0)
    x, labels = torch.rand(64, 20), torch.arange(64) % 10
    labels[::2] = -1
    before = losses.part_loss(model.prior, model.encode(x).z.detach(), labels)
    opts = {k: torch.optim.Adam(v, lr=0.01) for k, v in model.parameter_groups().items()}
    for _ in range(20):
        out = REGULARIZATION(model, Batch(x, labels), opts)
    after = losses.part_loss(model.prior, model.encode(x).z.detach(), labels)
    assert "part" in out and after < before
    assert losses.part_loss(model.prior, model.encode(x).z, torch.full((64,), -1)).item() == 0


def test_a_label_conditioned_code_part_is_made_invariant_on_every_image():
    torch.manual_seed(0)
    model = _label_conditioned(64, y_invariance_weight=1.0)
    x, labels = torch.rand(64, 64), torch.full((64,), -1)
    view = losses.small_transforms(x, (8, 8, 1))

    def disagreement():
        parts = losses.part_logits(model.prior, model.encode(x).z.detach())
        return losses.invariance_loss(lambda v: losses.part_logits(model.prior, model.encode(v).z), view, parts)

    before = disagreement().item()
    assert before > 0.01
    encoder = torch.optim.Adam(model.parameter_groups()["generator"], lr=0.01)
    for _ in range(20):  # the term alone, on the part posterior of every code (none labeled)
        torch.manual_seed(1)
        encoder.zero_grad()
        parts = losses.part_logits(model.prior, model.encode(x).z)
        phases._y_terms(model, Batch(x, labels), parts, {}, parts=True).backward()
        encoder.step()
    assert disagreement().item() < 0.5 * before
    opts = {k: torch.optim.Adam(v, lr=1e-3) for k, v in model.parameter_groups().items()}
    assert "y_invariance" in REGULARIZATION(model, Batch(x, labels), opts)
