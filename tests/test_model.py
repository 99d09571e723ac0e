import math

import pytest
import torch

from aae.config.schema import ModelConfig
from aae.errors import ConfigError
from aae.model.autoencoder import Classifier, one_hot_with_unlabeled
from aae.model.losses import cluster_head_penalty, discriminator_loss, generator_loss, kl_divergence
from aae.model.nets import Codes
from aae.model.priors import Gaussian, GaussianMixture
from conftest import build


def tiny_model(x_dim=16, **kw):
    """A seeded model of these [model] keys, on tiny networks, for ``x_dim`` features."""
    return build(ModelConfig(**{"hidden": [32], "disc_hidden": [16], **kw}), x_dim)


def test_deterministic_encoder_is_a_function_of_x():
    m = tiny_model(encoder="deterministic")
    x = torch.rand(8, 16)
    assert torch.equal(m.encode(x).z, m.encode(x).z)
    assert m.encode(x).mean is None


def test_gaussian_encoder_samples_around_its_mean():
    m = tiny_model(encoder="gaussian", z_dim=3)
    x = torch.rand(1, 16).repeat(20000, 1)
    codes = m.encode(x)
    assert codes.z.shape == (20000, 3)
    assert torch.allclose(codes.z.mean(0), codes.mean[0], atol=0.05)
    assert torch.allclose(codes.z.var(0), codes.logvar[0].exp(), rtol=0.05)
    assert torch.allclose(m.encode(x[:2], sample=False).z, codes.mean[:2], atol=1e-6)


def test_universal_encoder_reads_noise_beside_x():
    m = tiny_model(encoder="universal", noise_dim=4)
    assert m.encoder.trunk[0].in_features == 16 + 4
    x = torch.rand(4, 16)
    assert not torch.equal(m.encode(x).z, m.encode(x).z)
    assert torch.equal(m.encode(x, sample=False).z, m.encode(x, sample=False).z)


def test_dropout_acts_in_training_only_in_every_network():
    m = tiny_model(dropout=0.5, regime="semi_supervised", n_classes=3)
    nets = [m.encoder.trunk, m.decoder, *(d.net for d in m.discriminators.values())]
    assert all(any(isinstance(layer, torch.nn.Dropout) for layer in net) for net in nets)
    x = torch.rand(8, 16)
    assert not torch.equal(m.train().encode(x).z, m.encode(x).z)
    m.eval()
    assert torch.equal(m.encode(x).z, m.encode(x).z)
    assert not any(isinstance(layer, torch.nn.Dropout) for layer in tiny_model().modules())
    classifier = Classifier(ModelConfig(regime="semi_supervised", n_classes=3, hidden=[8], dropout=0.5), 16)
    assert any(isinstance(layer, torch.nn.Dropout) for layer in classifier.encoder.trunk)


def test_unknown_encoder_kind_is_refused():
    with pytest.raises(ConfigError, match="deterministic, gaussian, universal"):
        tiny_model(encoder="magic")


def test_vae_needs_a_gaussian_encoder():
    # refused when the config is loaded, before a model is built
    from aae.config.load import load_config

    with pytest.raises(
        ConfigError, match="^model.objective = 'vae' needs model.encoder = 'gaussian', not 'deterministic'$"
    ):
        load_config(None, ["model.objective=vae", "model.encoder=deterministic"])
    assert tiny_model(objective="vae", encoder="gaussian").encoder.kind == "gaussian"


def test_unlabeled_slot_is_the_extra_last_one():
    oh = one_hot_with_unlabeled(torch.tensor([0, 9, -1]), 10)
    assert oh.shape == (3, 11)
    assert oh[0, 0] == 1 and oh[1, 9] == 1 and oh[2, 10] == 1
    assert torch.equal(oh.sum(1), torch.ones(3))


def test_label_conditioned_discriminator_reads_code_and_label():
    m = tiny_model(regime="label_conditioned", prior={"name": "mixture"})
    assert m.discriminators["z"].net[0].in_features == 2 + 11
    code = torch.zeros(2, 2)
    a = m.discriminate("z", code, torch.tensor([3, 3]))
    b = m.discriminate("z", code, torch.tensor([4, -1]))
    assert a[0] == a[1] and b[0] != a[0] and b[1] != b[0]


def test_label_conditioned_prior_samples_follow_labels():
    m = tiny_model(regime="label_conditioned", prior={"name": "mixture"})
    labels = torch.tensor([2] * 500 + [-1] * 500)
    z = m.sample_prior("z", 1000, labels)
    nearest = torch.cdist(z, m.prior.part_means()).argmin(1)
    assert (nearest[:500] == 2).float().mean() > 0.95
    assert len(set(nearest[500:].tolist())) == 10


def test_unconditioned_model_ignores_labels_for_prior():
    m = tiny_model(regime="unsupervised", prior={"name": "mixture"})
    z = m.sample_prior("z", 2000, torch.full((2000,), 2))
    assert len(set(torch.cdist(z, m.prior.part_means()).argmin(1).tolist())) == 10
    assert m.discriminators["z"].net[0].in_features == 2


def test_supervised_label_goes_to_the_decoder_only():
    m = tiny_model(regime="supervised", z_dim=3)
    assert m.decoder[0].in_features == 3 + 10
    assert m.discriminators["z"].net[0].in_features == 3
    codes = Codes(torch.zeros(2, 3))
    rep = m.representation(codes, torch.tensor([1, 7]))
    assert rep[0, 3 + 1] == 1 and rep[1, 3 + 7] == 1 and rep[:, 3:].sum() == 2
    out = m.decode(rep)
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(ConfigError, match="needs a label for every point"):
        m.representation(codes, torch.tensor([1, -1]))


def test_supervised_discriminator_can_read_the_label_against_the_whole_prior():
    # label_to_discriminator: D(z, y) with p(z) the same for every y, so q(z|y) must match p(z)
    m = tiny_model(regime="supervised", z_dim=3, label_to_discriminator=True)
    assert m.discriminators["z"].net[0].in_features == 3 + 11
    torch.manual_seed(1)
    z = m.sample_prior("z", 4000, torch.full((4000,), 2))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    code = torch.zeros(2, 3)
    a = m.discriminate("z", code, torch.tensor([1, 2]))
    assert a[0] != a[1]


def test_label_to_discriminator_needs_a_regime_with_labels():
    from aae.config.load import load_config

    with pytest.raises(
        ConfigError, match="^model.label_to_discriminator needs a regime that reads labels, not 'unsupervised'$"
    ):
        load_config(None, ["model.regime=unsupervised", "model.label_to_discriminator=true"])


def test_semi_supervised_has_two_heads_and_two_discriminators():
    m = tiny_model(regime="semi_supervised", z_dim=5, n_classes=10)
    assert set(m.discriminators) == {"y", "z"}
    codes = m.encode(torch.rand(4, 16))
    assert codes.y_logits.shape == (4, 10)
    assert torch.allclose(codes.y.sum(1), torch.ones(4))
    assert m.decoder[0].in_features == 10 + 5
    y = m.sample_prior("y", 1000)
    assert torch.equal(y.sum(1), torch.ones(1000)) and set(y.argmax(1).tolist()) == set(range(10))


def test_dim_reduction_decoder_reads_cluster_head_plus_style():
    m = tiny_model(regime="dim_reduction", z_dim=2, n_classes=4)
    assert m.cluster_heads.shape == (4, 2)
    y = torch.eye(4)[[1, 3]]
    codes = Codes(torch.ones(2, 2), torch.log(y.clamp_min(1e-12)))
    rep = m.representation(codes)
    assert torch.allclose(rep, m.cluster_heads[[1, 3]] + 1, atol=1e-5)


def test_head_penalty_is_zero_when_far_and_positive_when_near():
    far = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    assert cluster_head_penalty(far, eta=2.0) == 0
    near = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    assert torch.isclose(cluster_head_penalty(near, eta=2.0), torch.tensor(1.0))


def test_gan_losses_take_prior_as_real():
    big = torch.full((4,), 10.0)
    assert discriminator_loss(on_prior=big, on_codes=-big) < 1e-3
    assert discriminator_loss(on_prior=-big, on_codes=big) > 19
    assert generator_loss(big) < 1e-3 and generator_loss(-big) > 9


def test_kl_closed_form_matches_monte_carlo():
    mean, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[-0.5, 0.3]])
    exact = kl_divergence(None, mean, logvar, Gaussian(2, 1.0))
    z = mean + (0.5 * logvar).exp() * torch.randn(200000, 2)

    class NotClosed(Gaussian):
        pass

    mc = kl_divergence(z, mean.expand_as(z), logvar.expand_as(z), NotClosed(2, 1.0))
    assert abs(float(exact) - float(mc)) < 0.01
    assert float(kl_divergence(None, torch.zeros(1, 2), torch.zeros(1, 2), Gaussian(2))) == 0


def test_kl_against_mixture_uses_its_density():
    """q = N(mode 0's centre, 0.1^2 I) sits inside mode 0, far from the other nine: KL(q || mixture)
    is KL(q || mode 0), in closed form for mode 0's axis-aligned Gaussian (std 1 along its ray,
    0.15 across), plus log 10 for the mode's weight of 1/10."""
    prior = GaussianMixture(10)
    mean = prior.part_means()[:1]
    torch.manual_seed(0)
    z = mean + 0.1 * torch.randn(20000, 2)
    kl = kl_divergence(z, mean.expand_as(z), torch.full_like(z, 2 * math.log(0.1)), prior)
    one_axis = lambda q, p: 0.5 * (q**2 / p**2 - 1 - math.log(q**2 / p**2))  # noqa: E731  KL of two 1-D normals
    assert float(kl) == pytest.approx(one_axis(0.1, 1.0) + one_axis(0.1, 0.15) + math.log(10), abs=0.02)
    gaussian = kl_divergence(z, mean.expand_as(z), torch.full_like(z, 2 * math.log(0.1)), Gaussian(2))
    assert abs(float(gaussian) - float(kl)) > 1  # not the standard normal's KL


def test_parameter_groups_split_encoder_decoder_discriminators():
    m = tiny_model(regime="semi_supervised")
    g = {k: {id(p) for p in v} for k, v in m.parameter_groups().items()}
    enc = {id(p) for p in m.encoder.parameters()}
    assert g["generator"] == enc == g["classification"]
    assert g["discriminator"] == {id(p) for p in m.discriminators.parameters()}
    assert g["reconstruction"] == enc | {id(p) for p in m.decoder.parameters()}
    assert not g["discriminator"] & g["reconstruction"]


def test_generate_supervised_decodes_each_label():
    m = tiny_model(regime="supervised")
    images = m.generate(10, labels=torch.arange(10), z=torch.zeros(10, 2))
    assert images.shape == (10, 16) and images.min() >= 0 and images.max() <= 1
    assert len({tuple(r.tolist()) for r in images}) == 10
