"""The estimators with a categorical head q(y|x): :class:`SemiSupervisedAAE`, :class:`ClusteringAAE`
and :class:`DimReductionAAE` (parameters and data: :mod:`aae.estimators.classes`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, ClusterMixin
from sklearn.utils._param_validation import Interval

from ..evaluation.evaluate import encode
from .base import Estimator
from .io import by_blocks
from .settings import default_epochs, ema, recipe

CLUSTER_HEAD = ("encoder_batch_norm", "y_regularizer", "vat_weight", "vat_eps", "vat_knn")
CLUSTER_HEAD += ("y_entropy_weight", "y_marginal_weight", "z_dim")
"""the keys of the head that clusters MNIST (``mnist_cluster_30``) the clustering estimators start from"""


SPREAD_VAT_EPS = 0.13
"""the VAT radius, as a fraction of the median distance between points, of mnist_cluster_30's 0.25
times the 10th-neighbour distance on MNIST's 50k training images (whose median is 0.515 of the
median distance between images there)"""


def _cluster_recipe(n: int, d: int, batch: int) -> dict[str, Any]:
    """``mnist_cluster_30``'s head (its code at most d wide) and generator learning rate, with a
    weight average over the last fifth of the default run on n points in batches of ``batch``, and
    the VAT radius carried over as a fraction of the data's spread (SPREAD_VAT_EPS) rather than of
    the neighbour distance, which shrinks with the number of points and the dimension."""
    table = recipe("mnist_cluster_30", CLUSTER_HEAD, ("lr",))
    table["model"].update(z_dim=min(table["model"]["z_dim"], d), vat_scale="spread", vat_eps=SPREAD_VAT_EPS)
    table["train"]["ema"] = ema(default_epochs(n, batch) * (n // batch))
    return table


class _Categorical:
    """predict and predict_proba from the categorical head q(y|x)."""

    def predict_proba(self, X) -> np.ndarray:
        """q(y|x): one column per class (``classes_``) or cluster."""
        return self._fold(self._proba(X))

    def _fold(self, proba: np.ndarray) -> np.ndarray:
        """One column for a single cluster: the head has at least two categories, as a config's."""
        if getattr(self, "n_clusters", None) == 1 and not hasattr(self, "classes_"):
            return proba.sum(1, keepdims=True)
        return proba

    def predict(self, X) -> np.ndarray:
        """argmax q(y|x), as the class labels fit saw (clusters: 0..m-1)."""
        return self._labels_out(self.predict_proba(X).argmax(1))


class SemiSupervisedAAE(ClassifierMixin, _Categorical, Estimator):
    """Section 5: categorical y and style z, each with its own discriminator, and a classification
    phase on the labeled points (y = -1, or '-1', for the rest; at least two classes). ``predict`` is
    argmax q(y|x); ``transform`` gives the style z."""

    _regime, _labels = "semi_supervised", "some"

    def __init__(
        self,
        n_components: int | None = None,
        *,
        net: str = "auto",
        hidden: int | list[int] | None = None,
        disc_hidden: int | list[int] | None = None,
        prior: Any = None,
        encoder: str | None = None,
        output: str = "auto",
        column_types: str | dict | None = "auto",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | dict | None = None,
        config: str | None = None,
        overrides: Sequence[str] = (),
        checkpoint_dir: str | None = None,
        log_dir: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_components = n_components
        self.net = net
        self.hidden = hidden
        self.disc_hidden = disc_hidden
        self.prior = prior
        self.encoder = encoder
        self.output = output
        self.column_types = column_types
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.config = config
        self.overrides = overrides
        self.checkpoint_dir = checkpoint_dir
        self.log_dir = log_dir
        self.device = device
        self.random_state = random_state
        self.verbose = verbose


class ClusteringAAE(ClusterMixin, _Categorical, Estimator):
    """Section 6: a categorical head with ``n_clusters`` categories and no labels. ``labels_`` holds
    the training points' clusters; ``predict`` assigns new ones; ``score`` is the mean log q(y|x) of
    each point's own cluster (0 at best: how surely the points are assigned).

    Without ``config`` the head is the one that clusters MNIST in this library (the keys of
    ``mnist_cluster_30.toml`` in CLUSTER_HEAD, and its generator learning rate): q(y|x) trained by
    IMSAT's terms (virtual adversarial training at a radius proportional to each point's distance
    to its k-th neighbour, scaled so that the median radius is SPREAD_VAT_EPS of the median distance
    between points, and the mutual information between x and y) instead of the paper's y
    discriminator, the decoder reading q(y|x) held fixed, batch norm in the encoder, and a weight
    average over the last fifth of the run; the style code has ``min(5, n_features)`` dimensions.
    Sized by the data as the other estimators, with at least 8 points per cluster in a batch."""

    _regime = "clustering"
    _parameter_constraints = {
        **Estimator._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_clusters: int = 16,
        n_components: int | None = None,
        *,
        net: str = "auto",
        hidden: int | list[int] | None = None,
        disc_hidden: int | list[int] | None = None,
        prior: Any = None,
        encoder: str | None = None,
        output: str = "auto",
        column_types: str | dict | None = "auto",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | dict | None = None,
        config: str | None = None,
        overrides: Sequence[str] = (),
        checkpoint_dir: str | None = None,
        log_dir: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.net = net
        self.hidden = hidden
        self.disc_hidden = disc_hidden
        self.prior = prior
        self.encoder = encoder
        self.output = output
        self.column_types = column_types
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.config = config
        self.overrides = overrides
        self.checkpoint_dir = checkpoint_dir
        self.log_dir = log_dir
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _batch_size(self, n: int) -> int:
        return max(super()._batch_size(n), 8 * int(self.n_clusters))

    def _recipe(self, n: int, d: int, batch: int, labeled: bool) -> dict[str, Any]:
        return _cluster_recipe(n, d, batch)

    def _labels_for_fit(self, y, n):
        if self.n_clusters > n:
            raise ValueError(f"n_clusters = {self.n_clusters} is more than the {n} points of X")
        return None, max(int(self.n_clusters), 2), self._regime

    def _after_fit(self, xin: np.ndarray) -> None:
        proba = by_blocks(lambda b: encode(self.model_, b, sample=False)[1], xin)
        self.labels_ = self._fold(proba).argmax(1).astype(np.int64)

    def score(self, X, y=None) -> float:
        """The mean over X of log q(y|x) at each point's cluster (argmax): 0 when every point is
        assigned with certainty, log(1 / n_clusters) at worst. y is ignored."""
        proba = self.predict_proba(X).astype(np.float64)
        return float(np.log(np.clip(proba.max(1), 1e-300, None)).mean())


class DimReductionAAE(_Categorical, Estimator):
    """Section 7: r = W_C y + z in ``n_components`` dimensions, with ``n_clusters`` learned cluster
    heads kept ``eta`` apart. Unsupervised with ``fit(X)``; with labels (-1 for unlabeled points) the
    categories are the classes (``n_clusters``, if set otherwise, is ignored with a warning) and a
    classification phase runs. ``transform`` gives r.

    Without ``config``, an unsupervised fit uses ClusteringAAE's head (see there) with a lighter
    weight on the marginal term (MARGINAL_WEIGHT), since ``n_clusters`` (the config's 10 by
    default) need not be the data's number of groups, and heads at least ``eta`` apart as in
    ``mnist_dimred_unsup20`` (4, four standard deviations of the z prior); a fit with labels uses
    the library's defaults, sized by the data."""

    MARGINAL_WEIGHT = 0.1
    _regime, _labels = "dim_reduction", "optional"
    _parameter_constraints = {
        **Estimator._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
        "eta": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        n_components: int | None = None,
        n_clusters: int | None = None,
        eta: float | None = None,
        *,
        net: str = "auto",
        hidden: int | list[int] | None = None,
        disc_hidden: int | list[int] | None = None,
        prior: Any = None,
        encoder: str | None = None,
        output: str = "auto",
        column_types: str | dict | None = "auto",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | dict | None = None,
        config: str | None = None,
        overrides: Sequence[str] = (),
        checkpoint_dir: str | None = None,
        log_dir: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_components = n_components
        self.n_clusters = n_clusters
        self.eta = eta
        self.net = net
        self.hidden = hidden
        self.disc_hidden = disc_hidden
        self.prior = prior
        self.encoder = encoder
        self.output = output
        self.column_types = column_types
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.config = config
        self.overrides = overrides
        self.checkpoint_dir = checkpoint_dir
        self.log_dir = log_dir
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "eta": self.eta}

    def _recipe(self, n: int, d: int, batch: int, labeled: bool) -> dict[str, Any]:
        if labeled:
            return {}
        table = _cluster_recipe(n, d, batch)
        table["model"].pop("z_dim")
        table["model"].update(recipe("mnist_dimred_unsup20", ("eta",))["model"], y_marginal_weight=self.MARGINAL_WEIGHT)
        return table

    def _labels_for_fit(self, y, n):
        labels = self._encode_labels(y, n)
        if labels is not None:
            if self.n_clusters is not None and self.n_clusters != len(self.classes_):
                warnings.warn(
                    f"n_clusters = {self.n_clusters} is ignored: y has {len(self.classes_)} classes, and "
                    "with labels the categories are the classes (leave n_clusters None)",
                    UserWarning,
                    stacklevel=3,
                )
            return labels, self._n_classes(), self._regime
        if self.n_clusters is not None and self.n_clusters > n:
            raise ValueError(f"n_clusters = {self.n_clusters} is more than the {n} points of X")
        return None, None if self.n_clusters is None else max(int(self.n_clusters), 2), self._regime
