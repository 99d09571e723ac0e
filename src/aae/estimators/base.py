"""What the six estimators of :mod:`aae.estimators.classes` share (:class:`Estimator`): the run's config
from their parameters, fit, transform, sample and inverse_transform. The parameters, the sizes
derived from the data and the data the estimators take are documented in :mod:`aae.estimators.classes`.
"""

from __future__ import annotations

import math
import numbers
import os
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ..config.checks import check_model_size, validate
from ..config.load import load_config
from ..config.schema import MAX_VALUES, ExperimentConfig
from ..errors import ConfigError, DataError
from ..evaluation.evaluate import embed, encode
from ..model.autoencoder import AdversarialAutoencoder, build_model
from ..model.phases import RATE_GROUPS
from ..model.priors import PRIORS, Prior, describe
from ..training.trainer import Trainer
from . import store
from .io import FLOATS, DataIO, by_blocks
from .store import fit_stamp


# -- the core: the estimators' one way to their config and to the trainer --------------------------
def _build_config(
    est: Estimator, n: int, d: int, n_classes: int | None, regime: str, labeled: bool
) -> ExperimentConfig:
    """The run's config: data-derived defaults (without ``config``) < config file < overrides <
    the estimator's parameters; batches clamped to the data."""
    base = {} if est.config is not None else est._data_defaults(n, d, labeled)
    # the regime and objective are the estimator's own, whatever the config file says
    own = [f"model.regime={regime}", f"model.objective={est._objective}"]
    if est.encoder or est._encoder:
        own.append(f"model.encoder={est.encoder or est._encoder}")
    cfg = load_config(est.config, [*est.overrides, *own], base=base)
    m, t = cfg.model, cfg.train
    chosen = {
        "z_dim": est._code_dim(),
        "hidden": _layers(est.hidden, "hidden"),
        "disc_hidden": _layers(est.disc_hidden, "disc_hidden"),
        "encoder": est.encoder or est._encoder,
        "n_classes": n_classes,
        "output": est.output_,
        **est._settings(),
    }
    for key, value in chosen.items():
        if value is not None:
            setattr(m, key, value)
    if isinstance(est.prior, (str, dict)):
        m.prior = {"name": est.prior} if isinstance(est.prior, str) else dict(est.prior)
    if est.epochs is not None:
        t.epochs = int(est.epochs)
    if est.batch_size is not None:
        t.batch_size = int(est.batch_size)
    t.batch_size = min(t.batch_size, n)
    if est.lr is not None:
        t.lr = {**t.lr, **_learning_rates(est.lr)}
    if m.vat_knn:
        m.vat_knn = min(m.vat_knn, n - 1)
    t.seed, t.select_by = _seed(est.random_state), ""
    if est.prior is not None and not isinstance(est.prior, (str, dict)):
        m.prior = describe(est.prior)  # a function or Prior object: recorded by name, passed to the model
    return validate(cfg)


def _train(
    cfg: ExperimentConfig,
    x: np.ndarray,
    labels: np.ndarray | None,
    prior: Any,
    *,
    run_dir: str | None,
    log_dir: str | None,
    device: str,
    progress: bool,
    stamp: dict | None = None,
) -> tuple[AdversarialAutoencoder, list[dict]]:
    """Build the model and train it: the estimators' one call into the trainer. ``stamp``: what each
    checkpoint in ``run_dir`` keeps beside the model, with the fit's fingerprint
    (:func:`aae.estimators.store.fit_stamp`)."""
    check_model_size(cfg.model, x.shape[1])
    model = build_model(cfg.model, x.shape[1], prior=prior)
    trainer = Trainer(model, cfg, run_dir, device=device, progress=progress, log_dir=log_dir)
    trainer.stamp = stamp  # read by aae.training.resume: which checkpoint to continue, what to keep
    history = trainer.fit(x, labels, resume=run_dir is not None)
    return trainer.result.eval(), history


# -- parameters ------------------------------------------------------------------------------------
def store_params(est, params: dict[str, Any]) -> None:
    """A constructor's arguments as the estimator's attributes of the same names, as scikit-learn's
    contract asks (one line for every constructor, instead of one assignment per parameter)."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(est, name, value)


def _layers(value, name: str) -> list[int] | None:
    """``hidden``/``disc_hidden`` as a list of widths: an int is one layer (as ``MLPClassifier`` reads it)."""
    if value is None:
        return None
    if isinstance(value, Integral):
        return [int(value)]
    widths = list(np.asarray(value).ravel()) if not isinstance(value, (list, tuple)) else list(value)
    if not all(isinstance(w, Integral) and not isinstance(w, bool) and w >= 1 for w in widths):
        raise ConfigError(
            f"{name} = {value!r}: give an int >= 1 (one layer) or a sequence of ints >= 1 (one per layer)"
        )
    return [int(w) for w in widths]


def _learning_rates(lr) -> dict[str, float]:
    if isinstance(lr, dict):
        unknown = sorted(set(lr) - set(RATE_GROUPS), key=str)
        if unknown:
            raise ConfigError(f"lr has unknown parameter group {unknown[0]!r}; allowed: {', '.join(RATE_GROUPS)}")
        bad = [k for k, v in lr.items() if not isinstance(v, Real) or isinstance(v, bool) or not v > 0]
        if bad:
            raise ConfigError(f"lr[{bad[0]!r}] = {lr[bad[0]]!r}; each learning rate must be a float > 0")
        return {k: float(v) for k, v in lr.items()}
    return {k: float(lr) for k in RATE_GROUPS}


def _seed(random_state) -> int:
    """An int seed for torch: an int is used as it is (the ``train.seed`` of ``aae train``); None or a
    RandomState draws one (from numpy's global state for None), as scikit-learn's estimators do."""
    rng = check_random_state(random_state)
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(rng.randint(np.iinfo(np.int32).max))


def _power_of_two(v: float) -> int:
    return 2 ** round(math.log2(v))


def _default_sizes(n: int, d: int, batch: int) -> dict[str, Any]:
    """The sizes derived from the data (n rows, d features) where no config is given (see
    :mod:`aae.estimators.classes`), with ``batch`` rows a batch."""
    width = int(np.clip(_power_of_two(2 * d), 64, 512))
    steps = int(np.clip(n, 600, 3000))
    return {
        "model": {"hidden": [width, width], "disc_hidden": [width, width]},
        "train": {"batch_size": batch, "epochs": math.ceil(steps / (n // batch))},
    }


_PATH = [str, os.PathLike, None]
_WIDTHS = [Interval(Integral, 1, None, closed="left"), list, tuple, np.ndarray, None]
_PARAMETERS: dict = {
    "n_components": [Interval(Integral, 1, None, closed="left"), None],
    "hidden": _WIDTHS,
    "disc_hidden": _WIDTHS,
    "prior": [StrOptions(set(PRIORS) - {"callable", "categorical"}), dict, Prior, callable, None],
    "encoder": [StrOptions({"deterministic", "gaussian", "universal"}), None],
    "output": [StrOptions({"auto", "bernoulli", "gaussian"})],
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


class Estimator(DataIO, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """What every estimator shares: the config it trains, fit, transform, sample."""

    _regime = "unsupervised"
    _objective = "aae"
    _encoder: str | None = None
    _labels = "none"
    """how fit reads y: none (ignored), optional, some (semi-supervised: -1 for unlabeled), all"""
    _parameter_constraints: dict = _PARAMETERS

    # fmt: off
    def __init__(
        self, n_components: int | None = None, *,
        hidden=None, disc_hidden=None, prior: Any = None, encoder: str | None = None, output: str = "auto",
        epochs: int | None = None, batch_size: int | None = None, lr=None, config: str | None = None, overrides=(),
        checkpoint_dir: str | None = None, log_dir: str | None = None, device: str = "auto", random_state=None,
        verbose: bool = False,
    ):
    # fmt: on
        store_params(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.target_tags.required = self._labels in ("some", "all")
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- the config -------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """Model settings this class adds, by config key (None: the config's value)."""
        return {}

    def _code_dim(self) -> int | None:
        return self.n_components

    def _batch_size(self, n: int) -> int:
        return int(np.clip(n // 10, 16, 100))

    def _data_defaults(self, n: int, d: int, labeled: bool = False) -> dict[str, Any]:
        """The sizes derived from the data where no config is given; ``labeled``: whether this fit has
        labels."""
        return _default_sizes(n, d, min(self._batch_size(n), n))

    def _prior_object(self):
        return None if self.prior is None or isinstance(self.prior, (str, dict)) else self.prior

    def _labels_for_fit(self, y, n: int) -> tuple[np.ndarray | None, int | None, str]:
        """(labels coded 0..k-1 or -1, the number of categories, the regime) for this fit."""
        labels = None if self._labels == "none" else self._encode_labels(y, n)
        return labels, None if labels is None else len(self.classes_), self._regime

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train on X (n_samples, n_features) and, where the estimator reads labels, y (-1 for an
        unlabeled point); an estimator without labels ignores y."""
        x, y = self._check_X(X, fitting=True, y=None if self._labels == "none" else y)
        labels, n_categories, regime = self._labels_for_fit(y, len(x))
        xin = self._model_input(x)
        self.config_ = cfg = _build_config(self, len(x), x.shape[1], n_categories, regime, labels is not None)
        stamp = None if self.checkpoint_dir is None else fit_stamp(self, x, labels, cfg)
        with torch.random.fork_rng(devices=[]):  # fitting leaves the caller's torch random state alone
            torch.manual_seed(cfg.train.seed)
            self.model_, self.history_ = _train(
                cfg,
                xin,
                labels,
                self._prior_object(),
                run_dir=self.checkpoint_dir,
                log_dir=self.log_dir,
                device=str(self.device),
                progress=bool(self.verbose),
                stamp=stamp,
            )
        self._n_features_out = cfg.model.z_dim
        self.embedding_ = self._embed(xin, x.dtype)
        self._after_fit(xin)
        return self

    def _after_fit(self, xin: np.ndarray) -> None:
        pass

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

    def sample(self, n_samples: int = 1, y=None, random_state=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode ``n_samples`` draws of the prior: ``(X, y)`` as ``GaussianMixture.sample`` gives,
        with y the class, cluster or prior part each row was drawn from (given, or uniform over
        them), or None for a model without categories. X is in the units (and dtype) of fit's X."""
        check_is_fitted(self, "model_")
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples = {n_samples!r}; give an int >= 1")
        if n_samples * self.n_features_in_ > MAX_VALUES:
            raise ValueError(
                f"n_samples = {n_samples} asks for {n_samples} x {self.n_features_in_} values, more than "
                f"{MAX_VALUES:.0e}; ask for fewer (several calls with other random_state values)"
            )
        k = self._n_categories()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(random_state))
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
        return self._data_space(x, self._dtype), None if labels is None else self._labels_out(labels)

    def inverse_transform(self, Z, y=None) -> np.ndarray:
        """Decode codes back to data space (fit's units, Z's dtype); y gives the class or cluster where
        the decoder reads one."""
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
        return self._data_space(out.cpu().numpy(), Z.dtype)
