"""What the six estimators of :mod:`aae.estimators.classes` share (:class:`Estimator`): fit, transform,
sample and inverse_transform over the one trainer. Their parameters, the sizes derived from the data
and the data they take are documented in :mod:`aae.estimators.classes`; the run's config is built
in :mod:`aae.estimators.settings`, X read and written in :mod:`aae.estimators.io`.
"""

from __future__ import annotations

import os
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ..config.checks import check_model_size
from ..config.schema import MAX_VALUES
from ..errors import DataError
from ..evaluation.evaluate import embed, encode
from ..model.autoencoder import build_model
from ..model.conv import MIN_SIDE
from ..model.priors import PRIORS, Prior
from ..training.trainer import Trainer
from . import columns, store
from .io import FLOATS, DataIO, by_blocks
from .settings import build_config, seed

_PATH = [str, os.PathLike, None]
_WIDTHS = [Interval(Integral, 1, None, closed="left"), list, tuple, np.ndarray, None]
PARAMETERS: dict = {
    "n_components": [Interval(Integral, 1, None, closed="left"), None],
    "net": [StrOptions({"auto", "mlp", "conv"})],
    "hidden": _WIDTHS,
    "disc_hidden": _WIDTHS,
    "prior": [StrOptions(set(PRIORS) - {"callable", "categorical"}), dict, Prior, callable, None],
    "encoder": [StrOptions({"deterministic", "gaussian", "universal"}), None],
    "output": [StrOptions({"auto", "bernoulli", "gaussian"})],
    "column_types": [StrOptions({"auto"}), dict, None],
    "epochs": [Interval(Integral, 1, None, closed="left"), None],
    "batch_size": [Interval(Integral, 1, None, closed="left"), None],
    "lr": [Interval(Real, 0, None, closed="neither"), dict, None],
    "config": _PATH,
    "overrides": [list, tuple],
    "checkpoint_dir": _PATH,
    "log_dir": _PATH,
    "device": [str, torch.device],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}
"""The parameters every estimator has, as scikit-learn's parameter validation reads them in fit."""


def _net(net: str, image_shape) -> str:
    """``net="auto"``: the convolutional networks for images of at least MIN_SIDE pixels a side."""
    if net != "auto":
        return net
    return "conv" if image_shape is not None and min(image_shape[:2]) >= MIN_SIDE else "mlp"


def _prior_object(prior):
    """A prior passed as an object (a function or Prior) goes to the model; a name or table is the config's."""
    return None if prior is None or isinstance(prior, (str, dict)) else prior


def _warn_sizes(n_components: int | None, d: int) -> None:
    if n_components is not None and n_components > d:
        warnings.warn(
            f"n_components = {n_components} is more than the {d} features of X: the code is "
            "larger than the data it encodes",
            UserWarning,
            stacklevel=4,
        )


def _train(est, cfg, xin: np.ndarray, labels: np.ndarray | None, stamp: dict | None):
    """Build the model of ``cfg`` and train it on ``xin``: the estimators' one call into the trainer,
    which leaves the caller's torch random state alone. ``stamp``: what each checkpoint in
    ``checkpoint_dir`` keeps beside the model, the fit's fingerprint among them. Returns the trained
    model and its history."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model, xin.shape[1], prior=_prior_object(est.prior), image_shape=est.image_shape_)
        model.columns = columns.likelihood(est.column_types_, est.output_, xin.shape[1])
        trainer = Trainer(
            model, cfg, est.checkpoint_dir, device=str(est.device), progress=bool(est.verbose), log_dir=est.log_dir
        )
        trainer.stamp = stamp  # read by aae.training.resume: which checkpoint to continue, what to keep
        history = trainer.fit(xin, labels, resume=est.checkpoint_dir is not None)
        return trainer.result.eval(), history


def _check_samples(n_samples, d: int) -> None:
    """Refuse a number of samples that is not an int >= 1, or that asks for more than MAX_VALUES values."""
    if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples = {n_samples!r}; give an int >= 1")
    if n_samples * d > MAX_VALUES:
        raise ValueError(
            f"n_samples = {n_samples} asks for {n_samples} x {d} values, more than "
            f"{MAX_VALUES:.0e}; ask for fewer (several calls with other random_state values)"
        )


class Estimator(DataIO, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """What every estimator shares: the config it trains, fit, transform, sample. Each subclass has
    its own ``__init__`` (:mod:`aae.estimators.classes`)."""

    _regime = "unsupervised"
    _objective = "aae"
    _labels = "none"
    """how fit reads y: none (ignored), optional, some (semi-supervised: -1 for unlabeled), all"""
    _parameter_constraints: dict = PARAMETERS

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        tags.target_tags.required = self._labels in ("some", "all")
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- what a subclass decides --------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """Model keys this class's parameters set (None: the config's value)."""
        return {"encoder": self.encoder}

    def _batch_size(self, n: int) -> int:
        return int(np.clip(n // 10, 16, 100))

    def _recipe(self, n: int, d: int, batch: int, labeled: bool) -> dict[str, Any]:
        """Config keys this class starts from where no ``config`` is given (below the parameters)."""
        return {}

    def _labels_for_fit(self, y, n: int) -> tuple[np.ndarray | None, int | None, str]:
        """(labels coded 0..k-1 or -1, the number of categories, the regime) for this fit."""
        labels = None if self._labels == "none" else self._encode_labels(y, n)
        return labels, None if labels is None else self._n_classes(), self._regime

    def _n_classes(self) -> int:
        """The model's categories for ``classes_``: at least two (a second, never seen, beside a
        single class, which fit has warned about)."""
        return max(len(self.classes_), 2)

    # -- fit ---------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train on X (n_samples, n_features), or images (n, h, w) or (n, h, w, c), and, where the
        estimator reads labels, y (-1 for an unlabeled point); an estimator without labels ignores y."""
        if self._labels == "none" or y is None:
            x, y = self._check_X(X, reset=True), None
        else:
            x, y = self._check_X(X, y, reset=True)
        x = x.toarray() if hasattr(x, "toarray") else x
        self._fit_scaling(x)
        labels, k, regime = self._labels_for_fit(y, len(x))
        _warn_sizes(self.n_components, x.shape[1])
        xin = self._model_input(x)
        decided = {
            "regime": regime,
            "objective": self._objective,
            "output": self.output_,
            "net": _net(self.net, self.image_shape_),
        }
        if k is not None:
            decided["n_classes"] = k
        self.config_ = cfg = build_config(self, len(x), x.shape[1], model=decided, labeled=labels is not None)
        check_model_size(cfg.model, xin.shape[1])
        stamp = None if self.checkpoint_dir is None else store.fit_stamp(self, x, labels, cfg)
        self.model_, history = _train(self, cfg, xin, labels, stamp)
        self._set_history(history)
        self._n_features_out = cfg.model.z_dim
        self.embedding_ = self._embed(xin, x.dtype)
        self._after_fit(xin)
        return self

    def _after_fit(self, xin: np.ndarray) -> None:
        pass

    def _set_history(self, history: list[dict]) -> None:
        """``history_`` and what is read from it: ``n_iter_`` and ``loss_curve_``."""
        self.history_, self.n_iter_ = history, len(history)
        self.loss_curve_ = [row["reconstruction"] + row.get("kl", 0.0) for row in history]

    def save(self, path: str | os.PathLike) -> str:
        """Write the fitted estimator to the folder ``path``: the model as safetensors, its
        parameters, scaling and classes as JSON beside it, as a run is written; read it back with
        :func:`aae.load_estimator`, which runs no code from the files (unlike ``pickle.load``).
        ``aae sample --run path`` decodes prior samples in the units of fit's X."""
        check_is_fitted(self, "model_")
        return str(store.save(self, path))

    # -- use ----------------------------------------------------------------------------------
    def _embed(self, xin: np.ndarray, dtype) -> np.ndarray:
        return by_blocks(lambda b: embed(self.model_, b), xin).astype(dtype, copy=False)

    def transform(self, X) -> np.ndarray:
        """The code of each row: z (the posterior mean, zero noise), or W_C y + z with cluster heads."""
        check_is_fitted(self, "model_")
        x = self._check_X(X)
        return self._embed(self._model_input(x), x.dtype)

    def _proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        x = self._check_X(X)
        tta = self.config_.eval.tta_shift
        proba = by_blocks(lambda b: encode(self.model_, b, sample=False, tta_shift=tta)[1], self._model_input(x))
        return proba.astype(x.dtype, copy=False)

    def sample(self, n_samples: int = 1, y=None, random_state=None):
        """Decode ``n_samples`` draws of the prior: ``(X, y)`` as ``GaussianMixture.sample`` gives,
        with y the class, cluster or prior part each row was drawn from (given, or uniform over
        them), or None for a model without categories. X is in the units, dtype and image shape of
        fit's X, each column holding values of its kind (``column_types_``)."""
        check_is_fitted(self, "model_")
        _check_samples(n_samples, self.n_features_in_)
        k = self._n_categories()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed(random_state))
            if y is not None:
                if k is None:
                    raise DataError(
                        f"this {type(self).__name__} has no classes to sample from; call sample(n) without y"
                    )
                labels = self._encode_given(y, n_samples)
            else:
                labels = None if k is None else torch.randint(k, (n_samples,)).numpy()
            t = None if labels is None else torch.as_tensor(labels, device=self.model_.device)
            x = self.model_.generate(n_samples, labels=t).cpu().numpy()
        out = self._features_out(self._data_space(x, self._dtype))
        return out, None if labels is None else self._labels_out(labels)

    def inverse_transform(self, Z, y=None):
        """Decode codes back to data space (fit's units and image shape, Z's dtype); y gives the
        class or cluster where the decoder reads one."""
        check_is_fitted(self, "model_")
        m = self.model_
        Z = check_array(Z, dtype=FLOATS, input_name="Z")
        if Z.shape[1] != m.config.z_dim:
            raise DataError(f"Z has shape {Z.shape}, expected (n, {m.config.z_dim})")
        z = torch.as_tensor(Z.astype(np.float32), device=m.device)
        with torch.no_grad():
            if m.has_cluster_heads:  # Z is the representation W_C y + z itself
                out = m.to_data(m.decode(z))
            else:
                labels = None if y is None else torch.as_tensor(self._encode_given(y, len(z)), device=m.device)
                if labels is None and (m.has_y_head or m.decoder_reads_label):
                    raise DataError(
                        f"{type(self).__name__}.inverse_transform needs y: its decoder reads the class as well as z"
                    )
                out = m.generate(len(z), labels=labels, z=z)
        return self._features_out(self._data_space(out.cpu().numpy(), Z.dtype))
