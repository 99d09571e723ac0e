import math

import pytest
import torch

from aae.errors import ConfigError
from aae.model.priors import (
    CallablePrior,
    Categorical,
    Gaussian,
    GaussianMixture,
    SwissRoll,
    Uniform,
    describe,
    make_prior,
)

N = 20000


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_gaussian_moments_match_its_std():
    z = Gaussian(dim=3, std=2.0).sample(N, generator=gen())
    assert z.shape == (N, 3)
    assert z.mean(0).abs().max() < 0.06
    assert (z.std(0) - 2.0).abs().max() < 0.05


def test_gaussian_log_prob_is_the_normal_density():
    z = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    expected = torch.distributions.Normal(0, 1.5).log_prob(z).sum(1)
    assert torch.allclose(Gaussian(2, 1.5).log_prob(z), expected)


def test_mixture_samples_of_label_k_sit_on_mode_k():
    prior = GaussianMixture(n_modes=10)
    means = prior.part_means()
    for k in range(10):
        z = prior.sample(4000, labels=torch.full((4000,), k), generator=gen(k))
        assert torch.allclose(z.mean(0), means[k], atol=0.06)
        nearest = torch.cdist(z, means).argmin(1)
        assert (nearest == k).float().mean() > 0.95


def test_unlabeled_points_see_whole_prior():
    prior = GaussianMixture(n_modes=10)
    z = prior.sample(N, labels=torch.full((N,), -1), generator=gen())
    counts = torch.bincount(torch.cdist(z, prior.part_means()).argmin(1), minlength=10).float() / N
    assert (counts - 0.1).abs().max() < 0.015


def test_mixed_labels_route_each_point():
    prior = GaussianMixture(n_modes=10)
    labels = torch.tensor([3, -1, 7] * 2000)
    z = prior.sample(len(labels), labels=labels, generator=gen())
    nearest = torch.cdist(z, prior.part_means()).argmin(1)
    assert (nearest[labels == 3] == 3).float().mean() > 0.95
    assert (nearest[labels == 7] == 7).float().mean() > 0.95
    assert len(set(nearest[labels == -1].tolist())) == 10


@pytest.mark.parametrize("prior", [GaussianMixture(10), SwissRoll(10), Gaussian(2, 1.3)])
def test_log_prob_integrates_to_one(prior):
    g = torch.linspace(-8, 8, 401)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    grid = torch.stack([xx.flatten(), yy.flatten()], 1)
    p = torch.cat([prior.log_prob(c).exp() for c in grid.split(50000)])
    cell = (g[1] - g[0]) ** 2
    assert abs(float(p.sum() * cell) - 1.0) < 0.02


def test_mixture_log_prob_per_label_is_the_component():
    prior = GaussianMixture(10)
    z = prior.sample(5, labels=torch.full((5,), 2), generator=gen())
    own = prior.log_prob(z, labels=torch.full((5,), 2))
    other = prior.log_prob(z, labels=torch.full((5,), 7))
    whole = prior.log_prob(z)
    assert (own > whole).all() and (other < whole).all()


def test_swiss_roll_piece_k_lies_in_its_radius_band():
    prior = SwissRoll(n_parts=10, scale=3.0, noise=0.05)
    for k in (0, 4, 9):
        r = prior.sample(3000, labels=torch.full((3000,), k), generator=gen(k)).norm(dim=1)
        lo, hi = 3.0 * math.sqrt(k / 10), 3.0 * math.sqrt((k + 1) / 10)
        assert ((r > lo - 0.25) & (r < hi + 0.25)).float().mean() > 0.99


def test_uniform_moments():
    z = Uniform(dim=2, low=-1, high=3).sample(N, generator=gen())
    assert z.min() >= -1 and z.max() <= 3
    assert (z.mean(0) - 1).abs().max() < 0.05
    assert (z.var(0) - 16 / 12).abs().max() < 0.05


def test_categorical_is_one_hot_with_prior_frequencies_and_labels():
    prior = Categorical(4, probs=[0.1, 0.2, 0.3, 0.4])
    z = prior.sample(N, generator=gen())
    assert torch.equal(z.sum(1), torch.ones(N))
    assert (z.mean(0) - torch.tensor([0.1, 0.2, 0.3, 0.4])).abs().max() < 0.015
    labelled = prior.sample(3, labels=torch.tensor([2, -1, 0]))
    assert labelled[0].argmax() == 2 and labelled[2].argmax() == 0


def test_callable_prior_wraps_a_user_function():
    prior = make_prior(lambda n: torch.ones(n, 3) * 5, dim=3)
    assert isinstance(prior, CallablePrior)
    assert torch.equal(prior.sample(4), torch.full((4, 3), 5.0))
    with pytest.raises(ConfigError, match="shape"):
        make_prior(lambda n: torch.ones(n), dim=1)
    # a function named in a config is never imported: the function itself must be passed
    for spec in ({"name": "callable", "fn": "os:getcwd"}, {"name": "callable"}, "callable"):
        with pytest.raises(ConfigError, match="aae never imports code named in a file: pass the function itself"):
            make_prior(spec, dim=2)


def ring(n):
    angle = torch.linspace(0, 6.283, n)
    return torch.stack([angle.cos(), angle.sin()], 1)


def test_a_prior_function_is_recorded_by_its_name_only():
    assert describe(ring) == {"name": "callable", "fn": f"{__name__}:ring"}
    assert describe(GaussianMixture.sample) == {"name": "callable", "fn": "aae.model.priors:GaussianMixture.sample"}
    prior = make_prior(ring, dim=2)  # the function itself is the prior
    assert isinstance(prior, CallablePrior) and torch.equal(prior.sample(5), ring(5))


def test_same_generator_seed_gives_same_samples():
    a = GaussianMixture().sample(10, generator=gen(3))
    b = GaussianMixture().sample(10, generator=gen(3))
    assert torch.equal(a, b)


def test_bad_prior_specs_name_what_is_wrong():
    with pytest.raises(ConfigError, match="unknown prior 'banana'.*gaussian, mixture"):
        make_prior("banana", 2)
    with pytest.raises(ConfigError, match="dimension 2 but the code has 5"):
        make_prior("mixture", 5)
    with pytest.raises(ConfigError, match="labels must lie in -1..9"):
        GaussianMixture(10).sample(2, labels=torch.tensor([0, 10]))
    with pytest.raises(ConfigError, match="no parts"):
        Gaussian(2).sample(2, labels=torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="prior 'gaussian'"):
        make_prior({"name": "gaussian", "n_modes": 3}, 2)


@pytest.mark.parametrize("prior", [GaussianMixture(10), SwissRoll(10)])
def test_assign_part_recovers_the_part_a_sample_came_from(prior):
    labels = torch.arange(10).repeat(300)
    z = prior.sample(len(labels), labels=labels, generator=gen())
    assert (prior.assign_part(z) == labels).float().mean() > 0.95


@pytest.mark.parametrize("prior", [GaussianMixture(10), SwissRoll(10), SwissRoll(3)])
def test_part_densities_are_the_labeled_log_prob_and_rank_the_own_part_first(prior):
    k = prior.n_parts
    labels = torch.arange(k).repeat(100)
    z = prior.sample(len(labels), labels=labels, generator=gen())
    parts = prior.part_log_probs(z)
    assert parts.shape == (len(z), k)
    if k == 10:  # the labeled density sums each part's run of the same grid
        torch.testing.assert_close(
            parts.gather(1, labels[:, None])[:, 0], prior.log_prob(z, labels), rtol=1e-4, atol=1e-3
        )
    assert (parts.argmax(1) == labels).float().mean() > 0.95
    with pytest.raises(ConfigError, match="label_part_weight needs mixture or swiss_roll"):
        Gaussian(2).part_log_probs(z)
