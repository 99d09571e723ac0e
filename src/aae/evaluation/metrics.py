"""Evaluation metrics: classification / clustering error, MMD, Parzen log-likelihood.

Every function takes numpy arrays or torch tensors and returns plain Python floats
(or a dict / tuple of floats). Invalid input raises :class:`aae.errors.DataError`
or :class:`aae.errors.ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from aae.errors import ConfigError, DataError

__all__ = [
    "classification_error",
    "mmd",
    "hungarian_accuracy",
    "cluster_error_paper",
    "cluster_error_split_half",
    "cluster_breakdown",
    "balanced_cluster_floor",
    "cluster_scores",
    "parzen_log_likelihood",
    "select_parzen_sigma",
    "one_nn_error",
]


# --------------------------------------------------------------------------- helpers
def _np(x: Any, name: str, ndim: int | None = None, dtype: Any = None) -> np.ndarray:
    """Convert a numpy array / torch tensor / sequence to numpy and check its rank."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=dtype)
    if ndim is not None and arr.ndim != ndim:
        raise DataError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if arr.shape[:1] == (0,):
        raise DataError(f"{name} is empty; need at least one row")
    return arr


def _labels(x: Any, name: str) -> np.ndarray:
    """A 1-D integer label vector."""
    arr = _np(x, name, ndim=1)
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise DataError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _same_len(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if len(a) != len(b):
        raise DataError(f"{na} and {nb} must have the same length, got {len(a)} and {len(b)}")


def _points(x: Any, name: str) -> np.ndarray:
    """A 2-D float array of points (n, d) with finite values."""
    arr = _np(x, name, dtype=None)
    if arr.ndim == 1:
        raise DataError(f"{name} must be 2-D (n, d), got shape {arr.shape}")
    arr = arr.reshape(len(arr), -1)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values")
    return arr


# --------------------------------------------------------------------------- classification
def classification_error(y_true: Any, y_pred: Any) -> float:
    """Fraction of predictions that differ from the true labels, in [0, 1]."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    _same_len(t, p, "y_true", "y_pred")
    return float(np.mean(t != p))


def one_nn_error(train_x: Any, train_y: Any, test_x: Any, test_y: Any) -> float:
    """Test error of a 1-nearest-neighbour classifier (Euclidean) fitted on the training set."""
    from sklearn.neighbors import KNeighborsClassifier

    tx, ty = _points(train_x, "train_x"), _labels(train_y, "train_y")
    sx, sy = _points(test_x, "test_x"), _labels(test_y, "test_y")
    _same_len(tx, ty, "train_x", "train_y")
    _same_len(sx, sy, "test_x", "test_y")
    if tx.shape[1] != sx.shape[1]:
        raise DataError(f"train_x and test_x must have the same dimension, got {tx.shape[1]} and {sx.shape[1]}")
    clf = KNeighborsClassifier(n_neighbors=1).fit(tx, ty)
    return float(np.mean(clf.predict(sx) != sy))


def hungarian_accuracy(y_true: Any, clusters: Any) -> float:
    """Accuracy under the best one-to-one map of clusters to classes (Hungarian algorithm).

    Works for any numbers of clusters and classes; points in clusters left unmatched count as wrong.
    """
    from scipy.optimize import linear_sum_assignment

    t, c = _labels(y_true, "y_true"), _labels(clusters, "clusters")
    _same_len(t, c, "y_true", "clusters")
    _, ti = np.unique(t, return_inverse=True)
    _, ci = np.unique(c, return_inverse=True)
    counts = np.zeros((ci.max() + 1, ti.max() + 1), dtype=np.int64)
    np.add.at(counts, (ci, ti), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(t))


def _cluster_inputs(valid_proba: Any, y_valid: Any, test_assign: Any, y_test: Any):
    """The checked arrays of `cluster_error_paper`, and how many labels they hold."""
    p = _np(valid_proba, "valid_proba", ndim=2, dtype=np.float64)
    yv, a, yt = _labels(y_valid, "y_valid"), _labels(test_assign, "test_assign"), _labels(y_test, "y_test")
    _same_len(p, yv, "valid_proba", "y_valid")
    _same_len(a, yt, "test_assign", "y_test")
    if a.min() < 0 or a.max() >= p.shape[1]:
        raise DataError(
            f"test_assign must be cluster indices in 0..{p.shape[1] - 1}, got values in {a.min()}..{a.max()}"
        )
    return p, yv, a, yt, int(max(yv.max(), yt.max())) + 1


def _cluster_labels(p: np.ndarray, yv: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster's label by the paper's protocol and by validation majority (see
    `cluster_error_paper`), both of shape (m,)."""
    paper = yv[np.argmax(p, axis=0)]
    votes = np.zeros((p.shape[1], n_labels))
    np.add.at(votes, (p.argmax(1), yv), 1)
    return paper, np.where(votes.sum(1) > 0, votes.argmax(1), paper)


def cluster_error_paper(valid_proba: Any, y_valid: Any, test_assign: Any, y_test: Any, majority: bool = False) -> float:
    """Test error of the AAE paper's clustering protocol (Makhzani et al., Section 6).

    Cluster ``i`` is labelled with the class of the validation image maximising
    ``q(y=i|x)`` (column ``i`` of ``valid_proba``, shape (n_valid, m); log-probabilities rank the
    same and do not tie where q(y|x) rounds to 1); each test image
    takes the label of its cluster ``test_assign`` (in 0..m-1). With ``majority`` (not the
    paper's) a cluster takes the most common class of the validation images assigned to it, and
    only a cluster no validation image falls in keeps its most confident image's class: one
    atypical image can no longer mislabel a whole cluster.
    """
    p, yv, a, yt, n_labels = _cluster_inputs(valid_proba, y_valid, test_assign, y_test)
    paper, by_majority = _cluster_labels(p, yv, n_labels)
    return float(np.mean((by_majority if majority else paper)[a] != yt))


def cluster_error_split_half(valid_proba: Any, y_valid: Any, halvings: int = 100, seed: int = 0) -> float:
    """`cluster_error_paper` within the validation split alone: the images are halved at random,
    the exemplars of one half label the clusters of the other (each image's cluster is the argmax of
    its row of ``valid_proba``), both directions are scored, and the mean is taken over ``halvings``
    random halvings drawn from ``seed`` (one halving moves by a few tenths of a percent with which images
    land in which half). It reads no test image, so it can judge a choice that the paper's protocol
    would otherwise be tuned on."""
    p = _np(valid_proba, "valid_proba", ndim=2, dtype=np.float64)
    yv = _labels(y_valid, "y_valid")
    _same_len(p, yv, "valid_proba", "y_valid")
    if len(yv) < 2:
        raise DataError(f"a split-half cluster error needs 2 or more validation images, got {len(yv)}")
    if int(halvings) < 1:
        raise ConfigError(f"halvings must be 1 or more, got {halvings!r}")
    rng, errors = np.random.default_rng(seed), []
    for _ in range(int(halvings)):
        halves = np.array_split(rng.permutation(len(yv)), 2)
        errors += [cluster_error_paper(p[a], yv[a], p[b].argmax(1), yv[b]) for a, b in (halves, halves[::-1])]
    return float(np.mean(errors))


def cluster_breakdown(valid_proba: Any, y_valid: Any, test_assign: Any, y_test: Any) -> list[dict]:
    """Where `cluster_error_paper` loses: for each cluster, its test images per class
    (``classes``, a list), its label by the paper's protocol and by validation majority, and the
    test error each label costs (as fractions of all test images), worst cluster first."""
    p, yv, a, yt, n_labels = _cluster_inputs(valid_proba, y_valid, test_assign, y_test)
    paper, by_majority = _cluster_labels(p, yv, n_labels)
    rows = []
    for i in range(p.shape[1]):
        counts = np.bincount(yt[a == i], minlength=n_labels)
        rows.append(
            {
                "cluster": i,
                "size": int(counts.sum()),
                "classes": counts.tolist(),
                "paper_label": int(paper[i]),
                "majority_label": int(by_majority[i]),
                "paper_cost": float((counts.sum() - counts[paper[i]]) / len(yt)),
                "majority_cost": float((counts.sum() - counts[by_majority[i]]) / len(yt)),
            }
        )
    return sorted(rows, key=lambda r: -r["paper_cost"])


def balanced_cluster_floor(y_true: Any, m: int) -> float:
    """The least error that ``m`` clusters of equal size can reach when each cluster takes one label,
    as in the paper's protocol: a model whose q(y) matches a uniform Cat(m) exactly cannot do better.
    With 10 classes of unequal size it is above zero whenever m is not a multiple of 10 (MNIST's test
    set: 13.0 % for m = 16, 2.1 % for m = 30)."""
    y = _labels(y_true, "y_true")
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise DataError(f"m must be a positive number of clusters, got {m!r}")
    sizes, size = np.bincount(y).astype(np.float64), len(y) / m
    taken = np.zeros_like(sizes)  # clusters per class; each extra cluster covers at most `size` more images
    for _ in range(m):  # greedy is optimal: a class's gain from one more cluster never grows
        gain = np.minimum((taken + 1) * size, sizes) - np.minimum(taken * size, sizes)
        taken[np.argmax(gain)] += 1
    return float(1 - np.minimum(taken * size, sizes).sum() / len(y))


def cluster_scores(y_true: Any, clusters: Any) -> dict[str, float]:
    """Normalized mutual information and adjusted Rand index: ``{"nmi": ..., "ari": ...}``."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    t, c = _labels(y_true, "y_true"), _labels(clusters, "clusters")
    _same_len(t, c, "y_true", "clusters")
    return {"nmi": float(normalized_mutual_info_score(t, c)), "ari": float(adjusted_rand_score(t, c))}


# --------------------------------------------------------------------------- MMD
def _pair(x, y, xname: str, yname: str) -> tuple[np.ndarray, np.ndarray]:
    """Two point sets of one dimension, checked."""
    a, b = _points(x, xname), _points(y, yname)
    if a.shape[1] != b.shape[1]:
        raise DataError(f"{xname} and {yname} must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    return a, b


def _positive(values, name: str) -> np.ndarray:
    """A non-empty list of positive finite numbers (kernel widths), as float64."""
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if out.size == 0 or not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise ConfigError(f"{name} must be a non-empty list of positive finite numbers, got {out.tolist()}")
    return out


def mmd(
    x: Any, y: Any, bandwidths: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0), max_points: int = 2000, seed: int = 0
) -> float:
    """Unbiased estimate of squared MMD between samples ``x`` (n, d) and ``y`` (m, d).

    The kernel is a sum of RBF kernels ``exp(-|a-b|^2 / (2 h^2))`` at fixed bandwidths ``h``
    (fixed so that numbers compare across models). Each sample is subsampled to at most
    ``max_points`` rows with a generator seeded by ``seed``. Can be slightly negative.
    """
    a, b = _pair(x, y, "x", "y")
    h = _positive(bandwidths, "bandwidths")
    if int(max_points) < 2:
        raise ConfigError(f"max_points must be an integer >= 2, got {max_points!r}")
    if len(a) < 2 or len(b) < 2:
        raise DataError(f"x and y need at least 2 rows each for the unbiased MMD, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    if len(a) > max_points:
        a = a[rng.choice(len(a), size=max_points, replace=False)]
    if len(b) > max_points:
        b = b[rng.choice(len(b), size=max_points, replace=False)]
    ta = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64))
    gammas = (1.0 / (2.0 * h**2)).tolist()

    def kernel_sum(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(u, v).pow_(2).neg_()
        acc, buf = torch.zeros_like(d2), torch.empty_like(d2)
        for g in gammas:
            acc += torch.mul(d2, g, out=buf).exp_()
        return acc

    n, m = len(ta), len(tb)
    kxx, kyy, kxy = kernel_sum(ta, ta), kernel_sum(tb, tb), kernel_sum(ta, tb)
    kxx.fill_diagonal_(0.0)
    kyy.fill_diagonal_(0.0)
    val = kxx.sum() / (n * (n - 1)) + kyy.sum() / (m * (m - 1)) - 2.0 * kxy.mean()
    return float(val)


# --------------------------------------------------------------------------- Parzen window
def _parzen_log_p(samples: Any, test: Any, sigmas: Sequence[float], batch_size: int) -> np.ndarray:
    """log p(x) for every test point and every sigma, shape (len(sigmas), n_test), float64.

    Distances use a float32 matmul on centred data (clamped at 0); memory is
    O(batch_size * n_samples) floats.
    """
    s, t = _pair(samples, test, "samples", "test")
    sig = _positive(sigmas, "sigmas")
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    batch_size = int(batch_size)
    n, d = s.shape
    centre = s.mean(axis=0, dtype=np.float64)  # centring reduces cancellation in |x|^2 + |s|^2 - 2 x.s
    ts = torch.from_numpy(np.ascontiguousarray(s - centre, dtype=np.float32))
    tt = torch.from_numpy(np.ascontiguousarray(t - centre, dtype=np.float32))
    s_sq = ts.double().pow(2).sum(1)
    const = -math.log(n) - 0.5 * d * np.log(2.0 * math.pi * sig**2)  # (len(sig),)
    out = np.empty((sig.size, len(tt)), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(tt), batch_size):
            xb = tt[start : start + batch_size]
            d2 = (xb.double().pow(2).sum(1)[:, None] + s_sq[None, :]).float()
            d2.addmm_(xb, ts.T, alpha=-2.0).clamp_(min=0.0)
            d2_min = d2.amin(dim=1, keepdim=True)
            buf = torch.empty_like(d2)
            for k, sk in enumerate(sig):  # logsumexp with the max term (nearest sample) factored out
                g = 0.5 / sk**2
                torch.sub(d2, d2_min, out=buf).mul_(-g).exp_()
                lse = buf.sum(dim=1).double().log_() - d2_min[:, 0].double() * g
                out[k, start : start + len(xb)] = lse.numpy() + const[k]
    return out


def parzen_log_likelihood(samples: Any, test: Any, sigma: float, batch_size: int = 1000) -> tuple[float, float]:
    """Mean and standard error of log p(test) under a Gaussian Parzen window on ``samples``.

    ``log p(x) = logsumexp_i(-|x - s_i|^2 / (2 sigma^2)) - log N - d/2 log(2 pi sigma^2)``
    (Breuleux et al. 2011; the protocol of the GAN and AAE papers). Test points are
    processed ``batch_size`` at a time. The standard error is ``std(ddof=1) / sqrt(n_test)``.
    """
    try:
        ok = float(sigma) > 0 and math.isfinite(float(sigma))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"sigma must be a positive number, got {sigma!r}")
    ll = _parzen_log_p(samples, test, [float(sigma)], batch_size)[0]
    se = float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1 else 0.0
    return float(ll.mean()), se


def select_parzen_sigma(
    samples: Any,
    valid: Any,
    sigmas: Sequence[float] = tuple(np.logspace(-1, 0, 10)),
    batch_size: int = 1000,
    refine: int = 0,
) -> float:
    """The sigma in ``sigmas`` maximising the mean Parzen log-likelihood of ``valid``. With
    ``refine`` = k, a second pass tries k widths evenly spaced in log between the best one's two
    neighbours in the sorted grid and returns the best of all: in 784 dimensions the log-likelihood
    is sharply peaked in sigma, and a grid step of 12 % can miss its top by half a nat."""
    if int(refine) < 0:
        raise ConfigError(f"refine must be 0 or more widths, got {refine!r}")
    sig = np.unique(_positive(sigmas, "sigmas"))
    ll = _parzen_log_p(samples, valid, sig, batch_size).mean(axis=1)
    best = int(np.argmax(ll))
    if not refine or len(sig) < 2:
        return float(sig[best])
    low, high = sig[max(best - 1, 0)], sig[min(best + 1, len(sig) - 1)]
    fine = np.geomspace(low, high, int(refine) + 2)[1:-1]
    fine_ll = _parzen_log_p(samples, valid, fine, batch_size).mean(axis=1)
    return float(fine[int(np.argmax(fine_ll))]) if fine_ll.max() > ll[best] else float(sig[best])
