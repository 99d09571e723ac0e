"""Tests for aae.evaluation.metrics: each asserts a number computed by hand or by a direct reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from aae.errors import AAEError, ConfigError, DataError
from aae.evaluation.metrics import (
    classification_error,
    cluster_breakdown,
    cluster_error_paper,
    cluster_error_split_half,
    cluster_scores,
    hungarian_accuracy,
    mmd,
    one_nn_error,
    parzen_log_likelihood,
    select_parzen_sigma,
)


def _parzen_reference(samples: np.ndarray, test: np.ndarray, sigma: float) -> np.ndarray:
    d = samples.shape[1]
    d2 = ((test[:, None, :] - samples[None, :, :]) ** 2).sum(-1)
    return logsumexp(-d2 / (2 * sigma**2), axis=1) - math.log(len(samples)) - d / 2 * math.log(2 * math.pi * sigma**2)


# --------------------------------------------------------------------------- classification
def test_classification_error_known_arrays() -> None:
    assert classification_error([0, 1, 2, 3], [0, 1, 2, 3]) == 0.0
    assert classification_error(np.array([0, 1, 2, 3]), np.array([0, 0, 2, 1])) == 0.5
    assert classification_error(torch.tensor([1, 1, 1]), torch.tensor([0, 0, 0])) == 1.0


def test_classification_error_rejects_mismatched_lengths() -> None:
    with pytest.raises(DataError, match="same length"):
        classification_error([0, 1], [0, 1, 2])
    with pytest.raises(DataError, match="empty"):
        classification_error([], [])


def test_one_nn_error_zero_on_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    ytr, yte = rng.integers(0, 3, 300), rng.integers(0, 3, 100)
    xtr = centres[ytr] + 0.3 * rng.standard_normal((300, 2))
    xte = centres[yte] + 0.3 * rng.standard_normal((100, 2))
    assert one_nn_error(xtr, ytr, xte, yte) == 0.0
    # flipping all test labels by one class makes every prediction wrong
    assert one_nn_error(xtr, ytr, xte, (yte + 1) % 3) == 1.0


def test_hungarian_accuracy_permutation_is_perfect() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    perm = np.array([2, 0, 1])
    assert hungarian_accuracy(y, perm[y]) == 1.0
    assert hungarian_accuracy(y, perm[y] + 7) == 1.0  # arbitrary cluster ids


def test_hungarian_accuracy_hand_case() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    c = np.array([5, 5, 6, 6, 6, 5])  # 5->0 gives 2 right, 6->1 gives 2 right
    assert hungarian_accuracy(y, c) == pytest.approx(4 / 6)


def test_hungarian_accuracy_more_clusters_than_classes() -> None:
    y = np.array([0, 0, 0, 0, 1, 1])
    c = np.array([0, 0, 1, 1, 2, 2])  # clusters 0 and 1 both hold class 0: only one can map to it
    assert hungarian_accuracy(y, c) == pytest.approx(4 / 6)


def test_cluster_error_paper_hand_case() -> None:
    # 3 clusters; validation images with their labels and q(y|x)
    valid_proba = np.array(
        [
            [0.9, 0.05, 0.05],  # label 0: top for cluster 0
            [0.1, 0.80, 0.10],  # label 1: top for cluster 1
            [0.1, 0.10, 0.80],  # label 2
            [0.0, 0.05, 0.95],  # label 1: top for cluster 2 -> cluster 2 is labelled "1" (wrong)
        ]
    )
    y_valid = np.array([0, 1, 2, 1])
    test_assign = np.array([0, 0, 1, 2, 2, 2])
    y_test = np.array([0, 1, 1, 2, 2, 1])
    # cluster labels: [0, 1, 1] -> predictions [0, 0, 1, 1, 1, 1] vs [0, 1, 1, 2, 2, 1]: 3 wrong
    assert cluster_error_paper(valid_proba, y_valid, test_assign, y_test) == pytest.approx(3 / 6)
    with pytest.raises(DataError, match="test_assign"):
        cluster_error_paper(valid_proba, y_valid, np.array([0, 3]), np.array([0, 1]))


def test_cluster_error_split_half_is_the_protocol_between_the_halves() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 50)
    # two clusters that match the classes exactly: no half mislabels the other
    proba = np.where(y[:, None] == np.arange(2), 0.9, 0.1) * rng.uniform(0.9, 1.0, (100, 1))
    assert cluster_error_split_half(proba, y) == 0.0
    proba[7] = [1.0, 0.0]  # the top of cluster 0 now; y[7] = 0, so it labels cluster 0 rightly
    y_bad = y.copy()
    y_bad[7] = 1  # ...now it is a 1: whichever half holds it calls cluster 0 "1"
    rng = np.random.default_rng(0)

    def by_hand(halves: list[np.ndarray]) -> float:
        # the half that holds image 7 labels cluster 0 "1"; cluster 1 is always labelled 1
        return np.mean(
            [
                (np.where(proba[b].argmax(1) == 0, 1 if 7 in a else 0, 1) != y_bad[b]).mean()
                for a, b in (halves, halves[::-1])
            ]
        )

    each = [by_hand(np.array_split(rng.permutation(100), 2)) for _ in range(20)]
    assert cluster_error_split_half(proba, y_bad, halvings=1) == pytest.approx(each[0]) and each[0] > 0.2
    # the default is the mean over many halvings, here 20 drawn from the same seed
    assert cluster_error_split_half(proba, y_bad, halvings=20) == pytest.approx(np.mean(each))
    assert len(set(np.round(each, 6))) > 1
    with pytest.raises(ConfigError, match="halvings"):
        cluster_error_split_half(proba, y_bad, halvings=0)
    with pytest.raises(DataError, match="2 or more validation images"):
        cluster_error_split_half(proba[:1], y[:1])


def test_cluster_error_by_majority_lets_no_single_image_label_a_cluster() -> None:
    valid_proba = np.array(
        [
            [0.9, 0.05, 0.05],  # label 0
            [0.1, 0.10, 0.80],  # label 2
            [0.1, 0.10, 0.80],  # label 2
            [0.0, 0.05, 0.95],  # label 1: the most confident for cluster 2, against two 2s
            [0.6, 0.35, 0.05],  # label 1: no validation image falls in cluster 1; this is its most confident
        ]
    )
    y_valid = np.array([0, 2, 2, 1, 1])
    test_assign = np.array([0, 1, 2, 2, 2])
    y_test = np.array([0, 1, 2, 2, 1])
    # the paper's labels [0, 1, 1]: 2 wrong; by majority [0, 1, 2] (cluster 1 keeps its most confident): 1 wrong
    assert cluster_error_paper(valid_proba, y_valid, test_assign, y_test) == pytest.approx(2 / 5)
    assert cluster_error_paper(valid_proba, y_valid, test_assign, y_test, majority=True) == pytest.approx(1 / 5)

    # the breakdown says which cluster those errors sit in, and sums to both errors
    rows = cluster_breakdown(valid_proba, y_valid, test_assign, y_test)
    assert rows[0] == {
        "cluster": 2,
        "size": 3,
        "classes": [0, 1, 2],
        "paper_label": 1,
        "majority_label": 2,
        "paper_cost": pytest.approx(2 / 5),
        "majority_cost": pytest.approx(1 / 5),
    }
    assert sorted(r["cluster"] for r in rows) == [0, 1, 2]
    assert sum(r["paper_cost"] for r in rows) == pytest.approx(2 / 5)
    assert sum(r["majority_cost"] for r in rows) == pytest.approx(1 / 5)


def test_cluster_scores_perfect_and_random() -> None:
    y = np.repeat(np.arange(4), 50)
    s = cluster_scores(y, (y + 1) % 4)
    assert s == {"nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}
    rnd = cluster_scores(y, np.random.default_rng(0).integers(0, 4, len(y)))
    assert abs(rnd["ari"]) < 0.05 and rnd["nmi"] < 0.1


# --------------------------------------------------------------------------- MMD
def test_mmd_same_distribution_is_near_zero_and_symmetric() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2000, 2)), rng.standard_normal((2000, 2))
    v = mmd(a, b)
    assert abs(v) < 0.01
    assert mmd(b, a) == pytest.approx(v, abs=1e-12)
    assert mmd(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(v, abs=1e-12)


def test_mmd_shifted_distribution_is_large() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2000, 2)), rng.standard_normal((2000, 2)) + 3.0
    v = mmd(a, b)
    assert v > 0.1
    assert mmd(b, a) == pytest.approx(v, rel=1e-10)


def test_mmd_matches_direct_unbiased_formula_and_subsamples() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((30, 3)), rng.standard_normal((40, 3)) + 0.5
    hs = (0.5, 1.0)

    def k(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        d2 = ((u[:, None] - v[None]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * h**2)) for h in hs)

    kxx, kyy = k(x, x), k(y, y)
    ref = (kxx.sum() - np.trace(kxx)) / (30 * 29) + (kyy.sum() - np.trace(kyy)) / (40 * 39) - 2 * k(x, y).mean()
    assert mmd(x, y, bandwidths=hs) == pytest.approx(ref, abs=1e-12)
    # subsampling is seeded: same seed same number, and it changes the value
    assert mmd(x, y, bandwidths=hs, max_points=20, seed=5) == mmd(x, y, bandwidths=hs, max_points=20, seed=5)
    assert mmd(x, y, bandwidths=hs, max_points=20) != pytest.approx(ref, abs=1e-12)


def test_mmd_bad_arguments() -> None:
    x = np.zeros((10, 2))
    with pytest.raises(ConfigError, match="bandwidths"):
        mmd(x, x, bandwidths=(0.0, 1.0))
    with pytest.raises(DataError, match="same dimension"):
        mmd(x, np.zeros((10, 3)))


# --------------------------------------------------------------------------- Parzen
def test_parzen_matches_scipy_logsumexp_and_is_batch_invariant() -> None:
    rng = np.random.default_rng(4)
    samples, test = rng.random((200, 5)), rng.random((50, 5))
    for sigma in (0.05, 0.2, 1.0):
        ll = _parzen_reference(samples, test, sigma)
        mean, se = parzen_log_likelihood(samples, test, sigma)
        assert mean == pytest.approx(ll.mean(), abs=1e-4)
        assert se == pytest.approx(ll.std(ddof=1) / math.sqrt(len(ll)), abs=1e-4)
        for bs in (1, 7, 50, 10_000):
            assert parzen_log_likelihood(samples, test, sigma, batch_size=bs)[0] == pytest.approx(mean, abs=1e-5)
    tmean, _ = parzen_log_likelihood(torch.from_numpy(samples), torch.from_numpy(test), 0.2)
    assert tmean == pytest.approx(_parzen_reference(samples, test, 0.2).mean(), abs=1e-4)


def test_parzen_is_stable_far_from_samples() -> None:
    # every exp underflows in a naive implementation; logsumexp keeps the exact value
    samples, test = np.zeros((3, 2)), np.full((1, 2), 30.0)
    mean, _ = parzen_log_likelihood(samples, test, 0.1)
    expected = -(2 * 900) / (2 * 0.01) - math.log(2 * math.pi * 0.01)
    assert np.isfinite(mean) and mean == pytest.approx(expected, rel=1e-5)


def test_parzen_bad_arguments() -> None:
    x = np.zeros((4, 2))
    with pytest.raises(ConfigError, match="sigma"):
        parzen_log_likelihood(x, x, 0.0)
    with pytest.raises(ConfigError, match="batch_size"):
        parzen_log_likelihood(x, x, 1.0, batch_size=0)
    with pytest.raises(DataError, match="same dimension"):
        parzen_log_likelihood(x, np.zeros((4, 3)), 1.0)
    assert issubclass(ConfigError, AAEError)


def test_select_parzen_sigma_finds_true_sigma_and_grid_best() -> None:
    rng = np.random.default_rng(5)
    centres = rng.random((300, 2)) * 10
    true_sigma = 0.3
    samples = centres  # the Parzen window is placed on the mixture centres
    valid = centres[rng.integers(0, 300, 3000)] + true_sigma * rng.standard_normal((3000, 2))
    grid = np.logspace(-1, 0, 10)
    best = select_parzen_sigma(samples, valid, sigmas=grid)
    brute = grid[np.argmax([_parzen_reference(samples, valid, s).mean() for s in grid])]
    assert best == pytest.approx(brute)
    assert abs(math.log(best / true_sigma)) < math.log(10) / 9 + 1e-9  # within one grid step
    assert select_parzen_sigma(samples, valid) == pytest.approx(best)  # default grid is logspace(-1, 0, 10)
    # the second pass searches between the best width's neighbours, 0.1 apart in log10, on 41 widths
    fine = select_parzen_sigma(samples, valid, sigmas=grid, refine=41)
    i = int(np.argmin(abs(grid - best)))
    between = np.geomspace(grid[i - 1], grid[i + 1], 43)
    brute_fine = between[np.argmax([_parzen_reference(samples, valid, s).mean() for s in between])]
    assert fine == pytest.approx(brute_fine)
    assert _parzen_reference(samples, valid, fine).mean() > _parzen_reference(samples, valid, best).mean()
    assert abs(math.log(fine / true_sigma)) < abs(math.log(best / true_sigma))
    with pytest.raises(ConfigError, match="refine"):
        select_parzen_sigma(samples, valid, refine=-1)


def test_balanced_cluster_floor_is_the_best_of_every_allocation_of_equal_clusters() -> None:
    import itertools

    from aae.evaluation.metrics import balanced_cluster_floor

    # two classes of 6 and 4 in 3 clusters of 10/3: two clusters for the 6, one for the 4
    assert balanced_cluster_floor([0] * 6 + [1] * 4, 3) == pytest.approx(1 - (6 + 10 / 3) / 10)
    assert balanced_cluster_floor([0] * 5 + [1] * 5, 4) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 4, rng.integers(8, 40))
        m, sizes = int(rng.integers(1, 7)), np.bincount(y, minlength=4)
        best = max(
            np.minimum(np.array(a) * len(y) / m, sizes).sum()
            for a in itertools.product(range(m + 1), repeat=4)
            if sum(a) == m
        )
        assert balanced_cluster_floor(y, m) == pytest.approx(1 - best / len(y))
    with pytest.raises(DataError, match="positive number of clusters"):
        balanced_cluster_floor([0, 1], 0)
