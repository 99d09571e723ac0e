"""scikit-learn-style estimators over the same model and trainer the command line uses.

Each class is one regime of the paper. Constructors only store their arguments (so
``sklearn.base.clone``, ``get_params`` and pipelines work); ``fit`` returns the estimator; what it
learned ends in ``_``: ``model_`` (the :class:`~aae.model.AdversarialAutoencoder`), ``history_``
(one dict per epoch), ``classes_`` where labels were seen, ``n_features_in_``. Labels may be any
integers or strings; as in :mod:`sklearn.semi_supervised`, -1 marks an unlabeled point.

>>> from sklearn.datasets import load_digits
>>> X, y = load_digits(return_X_y=True)
>>> X = X / 16.0                                                  # inputs in [0, 1]
>>> y_some = y.copy(); y_some[100:] = -1                          # 100 labels
>>> clf = SemiSupervisedAAE(z_dim=5, hidden=[256], epochs=20).fit(X, y_some)   # doctest: +SKIP
>>> clf.predict(X[:5]), clf.transform(X[:5]).shape                           # doctest: +SKIP
>>> images, labels = clf.sample(16)                                          # doctest: +SKIP

A parameter left at None takes its value from ``config`` (a bundled config's name, e.g.
``"mnist_semi_100"``, or a TOML file), else the library's default (the paper's MNIST setting);
``overrides`` are dotted ``key=value`` strings as ``aae train --set`` takes them. With
``checkpoint_dir`` the run is checkpointed there and a later ``fit`` with the same settings
resumes it. ``train.select_by`` (early stopping on a validation split) is for ``aae train``: an
estimator trains its epochs and keeps the last (or, with ``train.ema``, the averaged) weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .config import ExperimentConfig, load_config, validate
from .data import _features
from .errors import DataError
from .evaluate import embed, encode
from .model import AdversarialAutoencoder
from .priors import describe
from .regimes import get_regime
from .train import Trainer

UNLABELED = -1


class _Estimator(TransformerMixin, BaseEstimator):
    """What every estimator shares: the config it trains, fit, transform, sample."""

    _regime = "unsupervised"
    _objective = "aae"
    _encoder: str | None = None

    def __init__(self, z_dim: int | None = None, hidden: Sequence[int] | None = None,
                 disc_hidden: Sequence[int] | None = None, prior: Any = None, encoder: str | None = None,
                 epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 config: str | None = None, overrides: Sequence[str] = (), checkpoint_dir: str | None = None,
                 device: str = "auto", random_state: int = 0, verbose: bool = False):
        self.z_dim, self.hidden, self.disc_hidden, self.prior, self.encoder = z_dim, hidden, disc_hidden, prior, encoder
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.config, self.overrides, self.checkpoint_dir = config, overrides, checkpoint_dir
        self.device, self.random_state, self.verbose = device, random_state, verbose

    # -- the config -------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """Model settings this class adds, by config key (None: the config's value)."""
        return {}

    def _code_dim(self) -> int | None:
        return self.z_dim

    def _make_config(self, n_classes: int | None, regime: str) -> ExperimentConfig:
        cfg = load_config(self.config, list(self.overrides))
        m, t = cfg.model, cfg.train
        m.regime, m.objective = regime, self._objective
        chosen = {"z_dim": self._code_dim(), "hidden": self.hidden, "disc_hidden": self.disc_hidden,
                  "encoder": self.encoder or self._encoder, "n_classes": n_classes, **self._settings()}
        for key, value in chosen.items():
            if value is not None:
                setattr(m, key, list(value) if key in ("hidden", "disc_hidden") else value)
        if isinstance(self.prior, (str, dict)):
            m.prior = {"name": self.prior} if isinstance(self.prior, str) else dict(self.prior)
        if self.epochs is not None:
            t.epochs = int(self.epochs)
        if self.batch_size is not None:
            t.batch_size = int(self.batch_size)
        if self.lr is not None:
            t.lr = {k: float(self.lr) for k in t.lr}
        t.seed, t.select_by = int(self.random_state), ""
        if self._prior_object() is not None:
            m.prior = describe(self._prior_object())
        return validate(cfg)

    # -- data ---------------------------------------------------------------------------------
    def _check_X(self, X, fitting: bool = False) -> np.ndarray:
        x, _ = _features(np.asarray(X), "X")
        if fitting:
            self.n_features_in_ = x.shape[1]
        elif x.shape[1] != self.n_features_in_:
            raise DataError(f"X has {x.shape[1]} features, but {type(self).__name__} was fitted with {self.n_features_in_}")
        return x

    def _encode_labels(self, y, n: int, need: str) -> np.ndarray | None:
        """Labels as 0..k-1 (-1 kept for unlabeled points), learning ``classes_``; None if y is None
        (forgetting the classes of an earlier fit)."""
        if y is None:
            self.__dict__.pop("classes_", None)
            if need != "optional":
                raise DataError(f"{type(self).__name__}.fit needs y ({need} labels; -1 marks an unlabeled point)")
            return None
        y = np.asarray(y)
        if y.shape != (n,):
            raise DataError(f"y has shape {y.shape}, expected ({n},): one label per row of X")
        if y.dtype.kind in "iuf":
            unlabeled = y == UNLABELED
        elif y.dtype.kind == "O":  # e.g. strings with -1 for the unlabeled points
            unlabeled = np.array([isinstance(v, (int, float, np.number)) and v == UNLABELED for v in y], bool)
        else:
            unlabeled = np.zeros(n, bool)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DataError("y contains NaN or infinite values; mark unlabeled points with -1")
        if need == "all" and unlabeled.any():
            raise DataError(f"{type(self).__name__} needs every label; {int(unlabeled.sum())} of {n} are -1")
        if unlabeled.all():
            raise DataError("every label in y is -1 (unlabeled); label at least one point per class")
        self.classes_ = np.unique(y[~unlabeled])
        out = np.full(n, UNLABELED, dtype=np.int64)
        out[~unlabeled] = np.searchsorted(self.classes_, y[~unlabeled])
        return out

    def _prior_object(self):
        return None if self.prior is None or isinstance(self.prior, (str, dict)) else self.prior

    def _fit(self, x: np.ndarray, labels: np.ndarray | None, n_classes: int | None, regime: str | None = None):
        """Train on ``x`` (already checked) and labels coded 0..k-1 (-1 unlabeled)."""
        self.config_ = cfg = self._make_config(n_classes, regime or self._regime)
        torch.manual_seed(cfg.train.seed)
        model = AdversarialAutoencoder(cfg.model, x.shape[1], prior=self._prior_object())
        trainer = Trainer(model, cfg, self.checkpoint_dir, device=self.device, progress=bool(self.verbose))
        self.history_ = trainer.fit(x, labels, resume=self.checkpoint_dir is not None)
        self.model_ = trainer.result.eval()
        return self

    def fit(self, X, y=None):
        """Train on X (n, features) with values in [0, 1] (or 0..255 integers) and, where the regime
        reads labels, y (-1 for an unlabeled point); a regime without labels ignores y."""
        x = self._check_X(X, fitting=True)
        need = get_regime(self._regime).labels
        labels = None if need == "none" else self._encode_labels(y, len(x), need)
        return self._fit(x, labels, None if labels is None else len(self.classes_))

    # -- use ----------------------------------------------------------------------------------
    def transform(self, X) -> np.ndarray:
        """The code of each row: z (the posterior mean, zero noise), or W_C y + z with cluster heads."""
        check_is_fitted(self, "model_")
        return embed(self.model_, self._check_X(X))

    def _proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return encode(self.model_, self._check_X(X), sample=False, tta_shift=self.config_.eval.tta_shift)[1]

    def _labels_out(self, k: np.ndarray) -> np.ndarray:
        return self.classes_[k] if hasattr(self, "classes_") else k

    def _n_categories(self) -> int | None:
        """How many categories sample() draws from: the y head's, the decoder's labels, or None."""
        m = self.model_
        if "y" in m.priors or m.regime.label_to == "decoder":
            return m.config.n_classes
        if m.z_reads_labels and m.prior.n_parts is not None:
            return m.config.n_classes  # class k is drawn from part k of the prior
        return None

    def sample(self, n_samples: int = 1, y=None, random_state: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode ``n_samples`` draws of the prior: ``(X, y)`` as ``GaussianMixture.sample`` gives,
        with y the class, cluster or prior part each image was drawn from (given, or uniform over
        them), or None for a model without categories."""
        check_is_fitted(self, "model_")
        k = self._n_categories()
        with torch.random.fork_rng(devices=[]):
            if random_state is not None:
                torch.manual_seed(random_state)
            if y is not None:
                if k is None:
                    raise DataError(f"this {type(self).__name__} has no classes to sample from; call sample(n) without y")
                labels = self._encode_given(y, n_samples)
            else:
                labels = None if k is None else torch.randint(k, (n_samples,)).numpy()
            t = None if labels is None else torch.as_tensor(labels, device=self.model_.device)
            x = self.model_.generate(n_samples, labels=t).cpu().numpy()
        return x, None if labels is None else self._labels_out(labels)

    def _encode_given(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,):
            raise DataError(f"y has shape {y.shape}, expected ({n},)")
        if not hasattr(self, "classes_"):
            k = self._n_categories()
            if y.dtype.kind not in "iu" or (y < 0).any() or (y >= k).any():
                raise DataError(f"y must hold integers in 0..{k - 1}")
            return y.astype(np.int64)
        pos = np.searchsorted(self.classes_, y).clip(0, len(self.classes_) - 1)
        bad = np.flatnonzero(self.classes_[pos] != y)
        if bad.size:
            raise DataError(f"y[{bad[0]}] = {y[bad[0]]!r} is not a class seen in fit; classes: {list(self.classes_)}")
        return pos

    def inverse_transform(self, Z, y=None) -> np.ndarray:
        """Decode codes back to data space; y gives the class or cluster where the decoder reads one."""
        check_is_fitted(self, "model_")
        m = self.model_
        z = torch.as_tensor(np.asarray(Z, dtype=np.float32), device=m.device)
        if z.ndim != 2 or z.shape[1] != m.config.z_dim:
            raise DataError(f"Z has shape {tuple(z.shape)}, expected (n, {m.config.z_dim})")
        with torch.no_grad():
            if m.cluster_heads is not None:  # Z is the representation W_C y + z itself
                return m.to_data(m.decode(z)).cpu().numpy()
            labels = None if y is None else torch.as_tensor(self._encode_given(y, len(z)), device=m.device)
            if labels is None and ("y" in m.priors or m.regime.label_to == "decoder"):
                raise DataError(f"{type(self).__name__}.inverse_transform needs y: its decoder reads the class as well as z")
            return m.generate(len(z), labels=labels, z=z).cpu().numpy()


class AAE(_Estimator):
    """The basic adversarial autoencoder (Section 2): q(z) matched to ``prior``. With y in
    ``fit(X, y)`` the z discriminator also reads the label (Section 2.3, -1 for unlabeled), so each
    class lands on its own part of a prior with parts (mixture, swiss roll)."""

    def fit(self, X, y=None):
        x = self._check_X(X, fitting=True)
        labels = self._encode_labels(y, len(x), "optional")
        if labels is None:
            return self._fit(x, None, None)
        return self._fit(x, labels, len(self.classes_), "label_conditioned")


class VAE(_Estimator):
    """The variational autoencoder on the same networks (Gaussian posterior, ELBO): the baseline."""

    _objective, _encoder = "vae", "gaussian"


class SupervisedAAE(_Estimator):
    """Section 4: the label goes to the decoder, so z holds only style. ``transform`` gives the
    style; ``inverse_transform(Z, y)`` and ``sample(n, y)`` draw any style in any class."""

    _regime = "supervised"


class _Categorical:
    """predict and predict_proba from the categorical head q(y|x)."""

    def predict_proba(self, X) -> np.ndarray:
        """q(y|x): one column per class (``classes_``) or cluster."""
        return self._proba(X)

    def predict(self, X) -> np.ndarray:
        """argmax q(y|x), as the class labels fit saw (clusters: 0..m-1)."""
        return self._labels_out(self.predict_proba(X).argmax(1))


class SemiSupervisedAAE(ClassifierMixin, _Categorical, _Estimator):
    """Section 5: categorical y and style z, each with its own discriminator, and a classification
    phase on the labeled points (y = -1 for the rest). ``predict`` is argmax q(y|x);
    ``transform`` gives the style z."""

    _regime = "semi_supervised"


class ClusteringAAE(ClusterMixin, _Categorical, _Estimator):
    """Section 6: the semi-supervised model with ``n_clusters`` categories and no labels.
    ``labels_`` holds the training points' clusters; ``predict`` assigns new ones."""

    _regime = "clustering"

    def __init__(self, n_clusters: int = 16, z_dim: int | None = None, hidden: Sequence[int] | None = None,
                 disc_hidden: Sequence[int] | None = None, prior: Any = None, encoder: str | None = None,
                 epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 config: str | None = None, overrides: Sequence[str] = (), checkpoint_dir: str | None = None,
                 device: str = "auto", random_state: int = 0, verbose: bool = False):
        super().__init__(z_dim, hidden, disc_hidden, prior, encoder, epochs, batch_size, lr, config, overrides,
                         checkpoint_dir, device, random_state, verbose)
        self.n_clusters = n_clusters

    def fit(self, X, y=None):
        """Cluster X; y is ignored."""
        x = self._check_X(X, fitting=True)
        self._fit(x, None, int(self.n_clusters))
        self.labels_ = self.predict(x)
        return self


class DimReductionAAE(_Categorical, _Estimator):
    """Section 7: r = W_C y + z in ``n_components`` dimensions, with ``n_clusters`` learned cluster
    heads kept ``eta`` apart. Unsupervised with ``fit(X)``; with labels (-1 for unlabeled points) the
    categories are the classes and a classification phase runs. ``transform`` gives r."""

    _regime = "dim_reduction"

    def __init__(self, n_components: int = 2, n_clusters: int | None = None, eta: float | None = None,
                 hidden: Sequence[int] | None = None, disc_hidden: Sequence[int] | None = None, prior: Any = None,
                 encoder: str | None = None, epochs: int | None = None, batch_size: int | None = None,
                 lr: float | None = None, config: str | None = None, overrides: Sequence[str] = (),
                 checkpoint_dir: str | None = None, device: str = "auto", random_state: int = 0, verbose: bool = False):
        self.n_components, self.n_clusters, self.eta = n_components, n_clusters, eta
        self.hidden, self.disc_hidden, self.prior, self.encoder = hidden, disc_hidden, prior, encoder
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.config, self.overrides, self.checkpoint_dir = config, overrides, checkpoint_dir
        self.device, self.random_state, self.verbose = device, random_state, verbose

    def _code_dim(self) -> int | None:
        return self.n_components

    def _settings(self) -> dict[str, Any]:
        return {"eta": self.eta}

    def fit(self, X, y=None):
        x = self._check_X(X, fitting=True)
        labels = self._encode_labels(y, len(x), "optional")
        if labels is not None:
            if self.n_clusters is not None and self.n_clusters != len(self.classes_):
                raise DataError(f"n_clusters = {self.n_clusters} but y has {len(self.classes_)} classes; "
                                "with labels the categories are the classes (leave n_clusters None)")
            return self._fit(x, labels, len(self.classes_))
        return self._fit(x, None, None if self.n_clusters is None else int(self.n_clusters))
