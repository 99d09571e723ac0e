"""scikit-learn estimators over the same model and trainer the command line uses.

Each class is one regime of the paper. Constructors only store their arguments (so ``clone``,
``get_params``, grid searches and pipelines work); ``fit`` checks them (scikit-learn's parameter
validation, one line naming the parameter and what it allows) and returns the estimator. What it
learned ends in ``_``: ``model_`` (the :class:`~aae.model.autoencoder.AdversarialAutoencoder`), ``history_``
(one dict per epoch), ``config_``, ``embedding_`` (the transform of the training data),
``output_``, ``n_features_in_`` (and ``feature_names_in_`` for a DataFrame), ``classes_`` where
labels were seen.

>>> from sklearn.datasets import load_wine
>>> X, y = load_wine(return_X_y=True)                       # raw features: standardized inside
>>> y_some = y.copy(); y_some[::3] = -1                      # -1 marks an unlabeled point
>>> clf = SemiSupervisedAAE(random_state=0).fit(X, y_some)   # doctest: +SKIP
>>> clf.predict(X[:5]), clf.transform(X[:5]).shape           # doctest: +SKIP
>>> X_new, y_new = clf.sample(16)                            # doctest: +SKIP

**Data.** Any real-valued dense X (sparse input is refused: densify it with ``X.toarray()``).
``output="auto"`` keeps the Bernoulli decoder of the paper for data in [0, 1] (within 1e-6; values
are clipped into [0, 1], in ``fit`` and later) and otherwise standardizes each feature with the
mean and standard deviation learned in ``fit`` and uses a Gaussian decoder; ``inverse_transform``
and ``sample`` undo the standardization. At transform time data outside the training range is
fine. float32 and float64 inputs come back in the same dtype (other dtypes as float64).

**Labels** may be any integers or strings; as in :mod:`sklearn.semi_supervised`, -1 marks an
unlabeled point, and so does the string ``'-1'`` (so -1 can never be a class: recode such labels).

**Parameters** shared by all six: ``n_components`` (the size of the code ``transform`` gives: z,
or W_C y + z), ``hidden`` and ``disc_hidden`` (widths of the encoder/decoder and discriminator
layers: a sequence, or an int for one layer), ``prior`` (a name, a table, a ``Prior`` or a function
n -> samples), ``encoder``, ``output``, ``epochs``, ``batch_size``, ``lr`` (one float for every
optimizer, or a dict by the parameter group each steps: reconstruction, discriminator, generator,
classification, as ``train.lr``), ``config``,
``overrides``, ``checkpoint_dir``, ``log_dir``, ``device``, ``random_state`` (an int is the run's
torch seed, the ``train.seed`` of ``aae train``; None or a ``RandomState`` draws one, None from
numpy's global state) and ``verbose`` (a progress bar).

**Sizes.** With ``config`` None, what is left at None is derived from the data (n rows, d features):
``hidden`` two layers of ``clip(2 d, 64, 512)`` rounded to a power of two (digits: 128-128, wine
and iris: 64-64, MNIST: 512-512), ``disc_hidden`` the same; ``batch_size`` ``clip(n // 10, 16,
100)`` (ClusteringAAE: at least 8 points per cluster); ``epochs`` enough for a budget of ``clip(n,
600, 3000)`` optimizer steps (digits: 106 epochs of 17 batches). ``n_components`` is 2 (ClusteringAAE:
``min(5, n_features)``). A default ``fit`` takes a few seconds on iris or wine and under half a
minute on digits on two CPU cores (docs/results/estimators.md). With ``config`` (a bundled config's
name such as ``"mnist_semi_100"``, or a TOML file) what is None takes that config's values (the
library's defaults, the paper's MNIST networks, for what the file does not set); ``overrides`` are
dotted ``key=value`` strings as ``aae train --set`` takes them, below the parameters and above the
config. A batch larger than the data is clamped to it, as ``MLPClassifier`` does.

**Runs.** With ``checkpoint_dir`` the run is checkpointed there, with a fingerprint of the fit: the
training data (shape, dtype, a SHA-256 of X's bytes, and the labels) and every parameter but
``epochs``. A later ``fit`` with the same fingerprint continues it (more epochs train on from
where it stopped, as ``aae train --resume`` does); a fit of anything else (other data, as in each
fold of a cross-validation, other parameters, or fewer epochs than it holds) trains afresh and
replaces it, so a checkpoint_dir holds one fit, the last, and never serves a model of other data
(with ``random_state=None`` every fit draws a new seed, so every fit is a new one). Folds fitted
in parallel (``n_jobs``) need a checkpoint_dir each: a second fit on a folder in use is refused.
A folder holding other files, or an ``aae train`` run, is refused. ``log_dir`` writes
TensorBoard event files (needs ``pip install tensorboard``).

**Saving.** ``est.save(folder)`` writes the fitted estimator as a run is written (the model as
safetensors, its parameters, scaling and classes as JSON) and ``aae.load_estimator(folder)``
reads it back; loading runs no code from the files, and ``aae sample --run folder`` decodes prior
samples in the units of fit's X (so does it on a checkpoint_dir). ``pickle`` works too, as for any
scikit-learn estimator, but unpickling runs whatever code the file names: unpickle only files you
trust, and prefer ``save`` for anything you share.
``train.select_by`` (early stopping on a validation split) is for ``aae train``: an estimator trains
its epochs and keeps the last (or, with ``train.ema``, the averaged) weights.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, ClusterMixin
from sklearn.utils._param_validation import Interval

from ..evaluation.evaluate import encode
from .base import Estimator, store_params
from .io import by_blocks


def _clustering_recipe(total_steps: int) -> dict[str, Any]:
    """The head that clusters (src/aae/configs/mnist_cluster_30.toml): q(y|x) trained by IMSAT's
    terms (VAT at 0.25 times each point's distance to its 10th neighbour, the mutual information
    between x and y) instead of a y discriminator, the decoder reading q(y|x) held fixed, batch
    norm in the encoder, generator lr 0.002 and a weight average over a fifth of the run."""
    model = {
        "y_regularizer": "imsat",
        "vat_weight": 1.0,
        "vat_eps": 0.25,
        "vat_knn": 10,
        "y_entropy_weight": 0.1,
        "y_marginal_weight": 0.4,
        "encoder_batch_norm": True,
    }
    return {"model": model, "train": {"lr": {"generator": 0.002}, "ema": _ema(total_steps)}}


def _ema(total_steps: int) -> float:
    """A weight-average decay whose window is a fifth of the run (0.999 from 5000 steps on)."""
    return min(0.999, 1 - 5 / max(total_steps, 10))


class AAE(Estimator):
    """The basic adversarial autoencoder (Section 2): q(z) matched to ``prior``. With y in
    ``fit(X, y)`` the z discriminator also reads the label (Section 2.3, -1 for unlabeled), so each
    class lands on its own part of a prior with parts (mixture, swiss roll)."""

    _labels = "optional"

    def _labels_for_fit(self, y, n):
        labels, k, _ = super()._labels_for_fit(y, n)
        return labels, k, "unsupervised" if labels is None else "label_conditioned"


class VAE(Estimator):
    """The variational autoencoder on the same networks (Gaussian posterior, ELBO): the baseline."""

    _objective, _encoder = "vae", "gaussian"


class SupervisedAAE(Estimator):
    """Section 4: the label goes to the decoder, so z holds only style. ``transform`` gives the
    style; ``inverse_transform(Z, y)`` and ``sample(n, y)`` draw any style in any class."""

    _regime, _labels = "supervised", "all"


class _Categorical:
    """predict and predict_proba from the categorical head q(y|x)."""

    def predict_proba(self, X) -> np.ndarray:
        """q(y|x): one column per class (``classes_``) or cluster."""
        return self._proba(X)

    def predict(self, X) -> np.ndarray:
        """argmax q(y|x), as the class labels fit saw (clusters: 0..m-1)."""
        return self._labels_out(self.predict_proba(X).argmax(1))


class SemiSupervisedAAE(ClassifierMixin, _Categorical, Estimator):
    """Section 5: categorical y and style z, each with its own discriminator, and a classification
    phase on the labeled points (y = -1, or '-1', for the rest; at least two classes). ``predict`` is
    argmax q(y|x); ``transform`` gives the style z."""

    _regime, _labels = "semi_supervised", "some"


class ClusteringAAE(ClusterMixin, _Categorical, Estimator):
    """Section 6: a categorical head with ``n_clusters`` categories and no labels. ``labels_`` holds
    the training points' clusters; ``predict`` assigns new ones.

    Without ``config`` the head is the one that clusters MNIST in this library
    (``mnist_cluster_30``): q(y|x) trained by IMSAT's terms (virtual adversarial training at 0.25
    times each point's distance to its 10th neighbour, weight 1; the mutual information between x
    and y, 0.1 on the entropy of q(y|x) and 0.4 on the KL of the batch's marginal to the uniform)
    instead of the paper's y discriminator, the decoder reading q(y|x) held fixed, batch norm in the
    encoder, a generator learning rate of 0.002 and a weight average over the last fifth of the run;
    the style code has ``min(5, n_features)`` dimensions. Sized by the data as the other estimators,
    with at least 8 points per cluster in a batch."""

    _regime = "clustering"
    _parameter_constraints = {
        **Estimator._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
    }

    # fmt: off
    def __init__(
        self, n_clusters: int = 16, n_components: int | None = None, *,
        hidden=None, disc_hidden=None, prior: Any = None, encoder: str | None = None, output: str = "auto",
        epochs: int | None = None, batch_size: int | None = None, lr=None, config: str | None = None, overrides=(),
        checkpoint_dir: str | None = None, log_dir: str | None = None, device: str = "auto", random_state=None,
        verbose: bool = False,
    ):
    # fmt: on
        store_params(self, locals())

    def _batch_size(self, n: int) -> int:
        return max(super()._batch_size(n), 8 * int(self.n_clusters))

    def _data_defaults(self, n: int, d: int, labeled: bool = False) -> dict[str, Any]:
        table = super()._data_defaults(n, d)
        t = table["train"]
        recipe = _clustering_recipe(t["epochs"] * (n // t["batch_size"]))
        table["model"].update(recipe["model"], z_dim=min(5, d))
        table["train"].update(recipe["train"])
        return table

    def _labels_for_fit(self, y, n):
        return None, int(self.n_clusters), self._regime

    def _after_fit(self, xin: np.ndarray) -> None:
        self.labels_ = by_blocks(lambda b: encode(self.model_, b, sample=False)[1], xin).argmax(1).astype(np.int64)


class DimReductionAAE(_Categorical, Estimator):
    """Section 7: r = W_C y + z in ``n_components`` dimensions, with ``n_clusters`` learned cluster
    heads kept ``eta`` apart. Unsupervised with ``fit(X)``; with labels (-1 for unlabeled points) the
    categories are the classes (``n_clusters``, if set otherwise, is ignored with a warning) and a
    classification phase runs. ``transform`` gives r.

    Without ``config``, an unsupervised fit uses ClusteringAAE's head (IMSAT's terms on q(y|x), see
    there) with a lighter weight of 0.1 on the marginal term, since ``n_clusters`` (the config's 10
    by default) need not be the data's number of groups, and heads at least ``eta = 4`` apart, four
    standard deviations of the z prior (as ``mnist_dimred_unsup20``); a fit with labels uses the
    library's defaults, sized by the data."""

    _regime, _labels = "dim_reduction", "optional"
    _parameter_constraints = {
        **Estimator._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
        "eta": [Interval(Real, 0, None, closed="neither"), None],
    }

    # fmt: off
    def __init__(
        self, n_components: int | None = None, n_clusters: int | None = None, eta: float | None = None, *,
        hidden=None, disc_hidden=None, prior: Any = None, encoder: str | None = None, output: str = "auto",
        epochs: int | None = None, batch_size: int | None = None, lr=None, config: str | None = None, overrides=(),
        checkpoint_dir: str | None = None, log_dir: str | None = None, device: str = "auto", random_state=None,
        verbose: bool = False,
    ):
    # fmt: on
        store_params(self, locals())

    def _settings(self) -> dict[str, Any]:
        return {"eta": self.eta}

    def _data_defaults(self, n: int, d: int, labeled: bool = False) -> dict[str, Any]:
        table = super()._data_defaults(n, d)
        if labeled:
            return table
        t = table["train"]
        recipe = _clustering_recipe(t["epochs"] * (n // t["batch_size"]))
        # a lighter pull to equal clusters than ClusteringAAE's: n_clusters (10 by default) need not be
        # the data's number of classes
        table["model"].update(recipe["model"], y_marginal_weight=0.1, eta=4.0)
        table["train"].update(recipe["train"])
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
            return labels, len(self.classes_), self._regime
        return None, None if self.n_clusters is None else int(self.n_clusters), self._regime
