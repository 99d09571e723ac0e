"""scikit-learn estimators over the same model and trainer the command line uses.

Each class is one regime of the paper. Constructors only store their arguments (so ``clone``,
``get_params``, grid searches and pipelines work); ``fit`` checks them (scikit-learn's parameter
validation, one line naming the parameter and what it allows) and returns the estimator. What it
learned ends in ``_``: ``model_`` (the :class:`~aae.model.AdversarialAutoencoder`), ``history_``
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
phase, or a dict by phase: reconstruction, discriminator, generator, classification), ``config``,
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

**Runs.** With ``checkpoint_dir`` the run is checkpointed there and a later ``fit`` with the same
settings resumes it; ``log_dir`` writes TensorBoard event files (needs ``pip install tensorboard``).
``train.select_by`` (early stopping on a validation split) is for ``aae train``: an estimator trains
its epochs and keeps the last (or, with ``train.ema``, the averaged) weights.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .config import LR_PHASES, ExperimentConfig, load_config, validate
from .errors import ConfigError, DataError
from .evaluate import embed, encode
from .model import AdversarialAutoencoder, build_model
from .priors import PRIORS, Prior, describe
from .train import Trainer

UNLABELED = -1
FLOATS = (np.float64, np.float32)
UNIT_TOLERANCE = 1e-6
"""how far outside [0, 1] data may lie and still be read as Bernoulli under output='auto'"""


# -- the core: the only two places this module knows the config's keys and the trainer -------------
def _build_config(
    est: _Estimator, n: int, d: int, n_classes: int | None, regime: str, labeled: bool
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
) -> tuple[AdversarialAutoencoder, list[dict]]:
    """Build the model and train it: the estimators' one call into the trainer."""
    model = build_model(cfg.model, x.shape[1], prior=prior)
    trainer = Trainer(model, cfg, run_dir, device=device, progress=progress, log_dir=log_dir)
    history = trainer.fit(x, labels, resume=run_dir is not None)
    return trainer.result.eval(), history


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


# -- parameters ------------------------------------------------------------------------------------
def _store(est, params: dict[str, Any]) -> None:
    """A constructor's arguments as the estimator's attributes of the same names, as scikit-learn's
    contract asks (one line for every constructor, instead of one assignment per parameter)."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(est, name, value)


def _ema(total_steps: int) -> float:
    """A weight-average decay whose window is a fifth of the run (0.999 from 5000 steps on)."""
    return min(0.999, 1 - 5 / max(total_steps, 10))


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
        unknown = sorted(set(lr) - set(LR_PHASES), key=str)
        if unknown:
            raise ConfigError(f"lr has unknown phase {unknown[0]!r}; allowed: {', '.join(LR_PHASES)}")
        bad = [k for k, v in lr.items() if not isinstance(v, Real) or isinstance(v, bool) or not v > 0]
        if bad:
            raise ConfigError(f"lr[{bad[0]!r}] = {lr[bad[0]]!r}; each learning rate must be a float > 0")
        return {k: float(v) for k, v in lr.items()}
    return {k: float(lr) for k in LR_PHASES}


def _seed(random_state) -> int:
    """An int seed for torch: an int is used as it is (the ``train.seed`` of ``aae train``); None or a
    RandomState draws one (from numpy's global state for None), as scikit-learn's estimators do."""
    rng = check_random_state(random_state)
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(rng.randint(np.iinfo(np.int32).max))


def _power_of_two(v: float) -> int:
    return 2 ** round(math.log2(v))


_PATH = [str, os.PathLike, None]
_WIDTHS = [Interval(Integral, 1, None, closed="left"), list, tuple, np.ndarray, None]


class _Estimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """What every estimator shares: the config it trains, fit, transform, sample."""

    _regime = "unsupervised"
    _objective = "aae"
    _encoder: str | None = None
    _labels = "none"
    """how fit reads y: none (ignored), optional, some (semi-supervised: -1 for unlabeled), all"""

    _parameter_constraints: dict = {
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

    # fmt: off
    def __init__(
        self, n_components: int | None = None, *,
        hidden=None, disc_hidden=None, prior: Any = None, encoder: str | None = None, output: str = "auto",
        epochs: int | None = None, batch_size: int | None = None, lr=None, config: str | None = None, overrides=(),
        checkpoint_dir: str | None = None, log_dir: str | None = None, device: str = "auto", random_state=None,
        verbose: bool = False,
    ):
    # fmt: on
        _store(self, locals())

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
        """The sizes derived from the data where no config is given (see the module docstring);
        ``labeled``: whether this fit has labels."""
        width = int(np.clip(_power_of_two(2 * d), 64, 512))
        batch = min(self._batch_size(n), n)
        steps = int(np.clip(n, 600, 3000))
        return {
            "model": {"hidden": [width, width], "disc_hidden": [width, width]},
            "train": {"batch_size": batch, "epochs": math.ceil(steps / (n // batch))},
        }

    # -- data ---------------------------------------------------------------------------------
    def _check_X(self, X, fitting: bool = False, y=None):
        """X (and y) checked by scikit-learn: a dense finite float32/float64 array (other dtypes as
        float64), with the fit's features; with ``fitting`` it learns what the model reads."""
        if fitting and y is not None:
            x, y = validate_data(self, X, y, dtype=FLOATS, ensure_min_samples=2, y_numeric=False)
        else:
            x = validate_data(self, X, reset=fitting, dtype=FLOATS, ensure_min_samples=2 if fitting else 1)
        if fitting:
            self._learn_scaling(x)
        return (x, y) if fitting else x

    def _learn_scaling(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())
        in_unit = lo >= -UNIT_TOLERANCE and hi <= 1 + UNIT_TOLERANCE
        output = self.output if self.output != "auto" else ("bernoulli" if in_unit else "gaussian")
        if output == "bernoulli" and not in_unit:
            raise DataError(
                f"output='bernoulli' needs X in [0, 1], but X has values in [{lo:g}, {hi:g}]; "
                "use output='auto' or 'gaussian' (standardized inside), or rescale X"
            )
        self.output_ = output
        if output == "gaussian":
            self.mean_ = x.mean(0, dtype=np.float64)
            scale = x.std(0, dtype=np.float64)
            self.scale_ = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(self.mean_)), scale, 1.0)
        else:
            self.__dict__.pop("mean_", None)
            self.__dict__.pop("scale_", None)
        self._dtype = x.dtype

    def _model_input(self, x: np.ndarray) -> np.ndarray:
        """What the network reads: x clipped into [0, 1] (Bernoulli) or standardized (Gaussian), float32."""
        if self.output_ == "bernoulli":
            return np.clip(x, 0, 1).astype(np.float32)
        return ((x - self.mean_) / self.scale_).astype(np.float32)

    def _data_space(self, out: np.ndarray, dtype) -> np.ndarray:
        """Decoder output back in the units of the training data."""
        if self.output_ == "gaussian":
            out = out.astype(np.float64) * self.scale_ + self.mean_
        return out.astype(dtype, copy=False)

    def _encode_labels(self, y, n: int) -> np.ndarray | None:
        """Labels as 0..k-1 (-1 kept for unlabeled points), learning ``classes_``; None if y is None
        (forgetting the classes of an earlier fit)."""
        name = type(self).__name__
        if y is None:
            self.__dict__.pop("classes_", None)
            if self._labels in ("some", "all"):
                hint = "; -1 marks an unlabeled point" if self._labels == "some" else ""
                raise ValueError(
                    f"This {name} estimator requires y to be passed, but the target y is None "
                    f"(one label per row of X{hint})"
                )
            return None
        unlabeled = _unlabeled(y)
        if self._labels == "all" and unlabeled.any():
            raise DataError(
                f"{name} needs every label; {int(unlabeled.sum())} of {n} are -1, which marks an "
                "unlabeled point (use SemiSupervisedAAE for those, or recode a class named -1)"
            )
        if unlabeled.all():
            raise DataError("every label in y is -1 (unlabeled); label at least one point per class")
        known = y[~unlabeled]
        check_classification_targets(known)
        classes = unique_labels(known)
        if len(classes) == 1:
            why = (
                (
                    f"; -1 marks an unlabeled point, so the {int(unlabeled.sum())} rows labeled -1 are not a class: "
                    "recode the labels (e.g. to 0 and 1) if -1 is one"
                )
                if unlabeled.any()
                else ""
            )
            if self._labels == "some":
                raise DataError(f"y has only one class ({classes[0]!r}){why}; a classifier needs two or more")
            warnings.warn(f"y has only one class ({classes[0]!r}){why}", UserWarning, stacklevel=3)
        self.classes_ = classes
        out = np.full(n, UNLABELED, dtype=np.int64)
        out[~unlabeled] = np.searchsorted(classes, known)
        return out

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
            )
        self._n_features_out = cfg.model.z_dim
        self.embedding_ = self._embed(xin, x.dtype)
        self._after_fit(xin)
        return self

    def _after_fit(self, xin: np.ndarray) -> None:
        pass

    # -- use ----------------------------------------------------------------------------------
    def _embed(self, xin: np.ndarray, dtype) -> np.ndarray:
        return _by_blocks(lambda b: embed(self.model_, b), xin).astype(dtype, copy=False)

    def transform(self, X) -> np.ndarray:
        """The code of each row: z (the posterior mean, zero noise), or W_C y + z with cluster heads."""
        check_is_fitted(self, "model_")
        x = self._check_X(X)
        return self._embed(self._model_input(x), x.dtype)

    def _proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        x = self._check_X(X)
        tta = self.config_.eval.tta_shift
        proba = _by_blocks(lambda b: encode(self.model_, b, sample=False, tta_shift=tta)[1], self._model_input(x))
        return proba.astype(x.dtype, copy=False)

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

    def sample(self, n_samples: int = 1, y=None, random_state=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode ``n_samples`` draws of the prior: ``(X, y)`` as ``GaussianMixture.sample`` gives,
        with y the class, cluster or prior part each row was drawn from (given, or uniform over
        them), or None for a model without categories. X is in the units (and dtype) of fit's X."""
        check_is_fitted(self, "model_")
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples = {n_samples!r}; give an int >= 1")
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
        """Decode codes back to data space (fit's units, Z's dtype); y gives the class or cluster where
        the decoder reads one."""
        check_is_fitted(self, "model_")
        m = self.model_
        Z = check_array(Z, dtype=FLOATS, input_name="Z")
        if Z.shape[1] != m.config.z_dim:
            raise DataError(f"Z has shape {Z.shape}, expected (n, {m.config.z_dim})")
        z = torch.as_tensor(Z.astype(np.float32), device=m.device)
        with torch.no_grad():
            if m.cluster_heads is not None:  # Z is the representation W_C y + z itself
                out = m.to_data(m.decode(z))
            else:
                labels = None if y is None else torch.as_tensor(self._encode_given(y, len(z)), device=m.device)
                if labels is None and ("y" in m.priors or m.regime.label_to == "decoder"):
                    raise DataError(
                        f"{type(self).__name__}.inverse_transform needs y: its decoder reads the class as well as z"
                    )
                out = m.generate(len(z), labels=labels, z=z)
        return self._data_space(out.cpu().numpy(), Z.dtype)


BLOCK = 256


def _by_blocks(fn, x: np.ndarray) -> np.ndarray:
    """``fn`` over blocks of exactly BLOCK rows (the last one zero-padded), so that a row's result does not
    depend on how many rows came with it (a matrix product's kernel, and so its float32 rounding, can
    change with the number of rows)."""
    out = []
    for i in range(0, len(x), BLOCK):
        block = x[i : i + BLOCK]
        padded = np.zeros((BLOCK, x.shape[1]), x.dtype)
        padded[: len(block)] = block
        out.append(fn(padded)[: len(block)])
    return np.concatenate(out)


def _unlabeled(y: np.ndarray) -> np.ndarray:
    """Where y marks an unlabeled point: the number -1, or the string '-1'."""
    if y.dtype.kind in "iuf":
        return y == UNLABELED
    if y.dtype.kind in "US":
        return np.char.strip(y.astype(str)) == "-1"
    return np.array(
        [
            (isinstance(v, numbers.Number) and not isinstance(v, bool) and v == UNLABELED)
            or (isinstance(v, str) and v.strip() == "-1")
            for v in y
        ],
        bool,
    )


class AAE(_Estimator):
    """The basic adversarial autoencoder (Section 2): q(z) matched to ``prior``. With y in
    ``fit(X, y)`` the z discriminator also reads the label (Section 2.3, -1 for unlabeled), so each
    class lands on its own part of a prior with parts (mixture, swiss roll)."""

    _labels = "optional"

    def _labels_for_fit(self, y, n):
        labels, k, _ = super()._labels_for_fit(y, n)
        return labels, k, "unsupervised" if labels is None else "label_conditioned"


class VAE(_Estimator):
    """The variational autoencoder on the same networks (Gaussian posterior, ELBO): the baseline."""

    _objective, _encoder = "vae", "gaussian"


class SupervisedAAE(_Estimator):
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


class SemiSupervisedAAE(ClassifierMixin, _Categorical, _Estimator):
    """Section 5: categorical y and style z, each with its own discriminator, and a classification
    phase on the labeled points (y = -1, or '-1', for the rest; at least two classes). ``predict`` is
    argmax q(y|x); ``transform`` gives the style z."""

    _regime, _labels = "semi_supervised", "some"


class ClusteringAAE(ClusterMixin, _Categorical, _Estimator):
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
        **_Estimator._parameter_constraints,
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
        _store(self, locals())

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
        self.labels_ = _by_blocks(lambda b: encode(self.model_, b, sample=False)[1], xin).argmax(1).astype(np.int64)


class DimReductionAAE(_Categorical, _Estimator):
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
        **_Estimator._parameter_constraints,
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
        _store(self, locals())

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
