"""Typed configs, read from plain TOML files with dotted overrides.

An experiment is four tables, ``[model]``, ``[train]``, ``[data]`` and ``[eval]``; every key
has a default (the paper's MNIST setting where the paper gives one), so a config file only
says what differs. An unknown key or a wrong type ends in an error naming the key and what
is allowed.

>>> cfg = load_config(None, overrides=["model.z_dim=8", "train.epochs=3"])
>>> cfg.model.z_dim, cfg.train.epochs
(8, 3)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class ModelConfig:
    regime: str = "unsupervised"
    """unsupervised | label_conditioned | supervised | semi_supervised | clustering | dim_reduction"""
    objective: str = "aae"
    """aae (adversarial), vae (ELBO with the same nets), ae (plain autoencoder, no regularization),
    classifier (the encoder alone trained on the labeled points: the paper's NN baseline; vat_weight is
    ignored), or vat (the same classifier plus virtual adversarial training on the unlabeled points, with
    vat_weight and vat_eps: the AAE recipe without the autoencoder)"""
    encoder: str = "deterministic"
    """deterministic | gaussian (reparametrization trick) | universal (input plus noise)"""
    z_dim: int = 2
    n_classes: int = 10
    """label classes, or clusters m of the categorical head"""
    hidden: list[int] = field(default_factory=lambda: [1000, 1000])
    disc_hidden: list[int] = field(default_factory=lambda: [1000, 1000])
    noise_dim: int = 100
    """size of the noise the universal-approximator encoder reads beside x"""
    noise_std: float = 1.0
    output: str = "bernoulli"
    """bernoulli (sigmoid, cross-entropy) or gaussian (linear, squared error)"""
    input_dropout: float = 0.0
    """dropout on the encoder's input while training"""
    input_noise: float = 0.0
    """std of Gaussian noise added to the encoder's input while training (the target stays clean)"""
    hidden_noise: float = 0.0
    """std of Gaussian noise added to each hidden layer of the encoder while training"""
    encoder_batch_norm: bool = False
    """batch normalization before each ReLU of the encoder's trunk"""
    separate_y_trunk: bool = False
    """models with a y head: q(y|x) reads a trunk of its own (same sizes) instead of sharing the
    encoder's layers with z, so the z discriminator (and, with reconstruction_trains_y = false, the
    reconstruction) cannot move the layers under y"""
    prior: dict[str, Any] = field(default_factory=lambda: {"name": "gaussian"})
    """table with 'name' (gaussian, mixture, swiss_roll, uniform, callable) and that prior's arguments"""
    label_to_discriminator: bool = False
    """the z discriminator also reads the one-hot label (label_conditioned always does). In the
    supervised regime, with a prior that has no parts, this makes q(z|y) match p(z) for every
    class, so the style code cannot carry the class"""
    z_disc_reads_y: bool = False
    """models with a y head: the z discriminator also reads q(y|x) (held fixed), with N(0, I) samples
    paired with the same y as real; q(z|y) must then match p(z), so z cannot carry the category"""
    vat_weight: float = 0.0
    """models with a y head: weight of virtual adversarial training (Miyato et al. 2018) on q(y|x) of
    the unlabeled batch, added to the encoder's generator step. Not in the AAE paper: it makes the
    categorical head locally smooth, which the adversarial prior alone does not"""
    vat_eps: float = 2.0
    """L2 norm of the virtual adversarial perturbation, in input units: 2 suits MNIST (784 pixels in
    [0, 1], median distance to the 10th nearest neighbour 5.1); 0.3 the 8x8 digits. Too large a radius
    smooths q(y|x) into one category"""
    vat_knn: int = 0
    """k > 0: each training image's VAT radius is vat_eps times its distance to its k-th nearest
    neighbour among the training images, so dense regions get small perturbations and sparse ones
    large (IMSAT, Hu et al. 2017: 0.25 times the 10th); 0: vat_eps for every image"""
    vat_xi: float = 1e-2
    """L2 norm of the probe perturbation of the power iteration that finds the adversarial direction"""
    y_batch_mean: bool = True
    """the y discriminator also reads its minibatch's mean y, which stops all codes collapsing onto one category"""
    y_marginal_weight: float = 0.0
    """models with a y head: weight of KL(batch mean of q(y|x) || Cat) in the encoder's generator step.
    Not in the AAE paper: the analytic twin of the y discriminator (as in RIM and IMSAT), which needs no
    discriminator to learn first, so it acts from the first step, before q(y|x) can saturate on one category"""
    y_entropy_weight: float = 0.0
    """models with a y head: weight of the mean entropy of q(y|x) over the unlabeled batch in the
    encoder's generator step. Not in the AAE paper: with y_marginal_weight it makes IMSAT's mutual
    information objective (Hu et al. 2017), H(Y|X) - H(Y) up to a constant, which asks for confident
    categories without asking for equal ones"""
    y_adversary: bool = True
    """models with a y head: whether a discriminator matches q(y) to Cat (the paper). False leaves y to
    the analytic terms (y_marginal_weight, y_entropy_weight, vat_weight), one of which must be set"""
    reconstruction_trains_y: bool = True
    """models with a y head: whether the reconstruction error reaches q(y|x) (the paper). False: the
    decoder reads q(y|x) held fixed, so y is shaped only by its regularizers (the y discriminator,
    VAT, the mutual-information terms) while the reconstruction still shapes the shared layers
    through z"""
    eta: float = 1.0
    """dim_reduction: cluster heads closer than eta are penalized (Section 7)"""
    head_penalty: float = 1.0
    """dim_reduction: weight of the cluster-head distance penalty"""


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 100
    labeled_batch_size: int = 100
    optimizer: str = "adam"
    """adam | sgd (with momentum, as in the paper)"""
    classification_optimizer: str = ""
    """the classification phase's own optimizer, adam | sgd; empty: train.optimizer. Adam's step
    keeps its size as the labeled loss goes to zero, so it goes on fitting the labeled points
    ever harder; an SGD step shrinks with the loss"""
    lr: dict[str, float] = field(
        default_factory=lambda: {"reconstruction": 1e-3, "discriminator": 1e-3, "generator": 1e-3, "classification": 1e-3}
    )
    """learning rate per phase: reconstruction, discriminator, generator, classification (elbo uses reconstruction's)"""
    momentum: float = 0.9
    shift: int = 0
    """data augmentation: every training image (unlabeled and labeled batches alike) is translated by a
    random whole number of pixels in [-shift, shift] along each axis, zero filled, drawn anew each step.
    The encoder, and so q(y|x), sees the shifted image; the decoder reconstructs it. Not in the AAE paper"""
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    lr_milestones: list[int] = field(default_factory=list)
    """epochs at which every learning rate is multiplied by lr_gamma"""
    lr_gamma: float = 0.1
    ema: float = 0.0
    """decay of an exponential moving average of the weights (Polyak averaging), updated every step;
    when > 0 the averaged weights are the ones measured, saved as the model and used, while training
    continues from the raw weights (kept in the checkpoint too). The average is the plain mean of the
    first 1 / (1 - ema) steps, then moves at this decay: 0.999 averages over ~1000 steps"""
    select_by: str = ""
    """early stopping: a per-epoch metric (e.g. valid_error, the error of q(y|x) on the labeled validation
    split); the run's result is then the model at the evaluation where it was lowest, not the last one.
    Empty keeps the last"""
    seed: int = 0
    device: str = "auto"
    """auto (cuda if available, else cpu), cpu, cuda, cuda:N, mps"""
    threads: int = 0
    """torch intra-op threads; 0 keeps torch's default"""
    checkpoint_every: int = 1
    eval_every: int = 1
    progress: bool = True


@dataclass
class DataConfig:
    name: str = "mnist"
    """mnist | digits | svhn | path to a .npy/.npz file"""
    data_dir: str | None = None
    """where data sets live; default $AAE_DATA_DIR, else the per-user cache"""
    download: bool = True
    n_labeled: int | None = None
    """labels kept for training (balanced across classes); None keeps all"""
    label_seed: int = 0
    valid_size: int | None = None
    subset: int | None = None
    """use only the first N training images (quick runs)"""


@dataclass
class EvalConfig:
    mmd_points: int = 2000
    tta_shift: int = 0
    """test-time augmentation: q(y|x), wherever it is measured (errors, clusters, early stopping) and
    predicted, is the mean of q(y|x') over every translation x' of x by whole pixels in
    [-tta_shift, tta_shift] along each axis ((2 tta_shift + 1)^2 of them, zero filled). Meant for
    models trained with train.shift. 0: x alone. Not in the AAE paper"""


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


CHOICES = {
    "model.regime": ("unsupervised", "label_conditioned", "supervised", "semi_supervised", "clustering", "dim_reduction"),
    "model.objective": ("aae", "vae", "ae", "classifier", "vat"),
    "model.encoder": ("deterministic", "gaussian", "universal"),
    "model.output": ("bernoulli", "gaussian"),
    "train.optimizer": ("adam", "sgd"),
    "train.classification_optimizer": ("", "adam", "sgd"),
}
PHASE_NAMES = ("reconstruction", "discriminator", "generator", "classification")


def _check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        for arg in typing.get_args(tp):
            if arg is not type(None):
                try:
                    return _check_type(value, arg, key)
                except ConfigError:
                    pass
        raise ConfigError(f"{key}: {value!r} is not a {tp}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(v, item, key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        _, vt = typing.get_args(tp)
        return {k: _check_type(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def _build(cls: type, table: dict[str, Any], prefix: str, strict: bool = True) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    obj = cls()
    for key, value in table.items():
        full = f"{prefix}{key}"
        if key not in names:
            if not strict:
                logging.getLogger("aae").warning("ignoring config key %r, which this version of aae no longer has", full)
                continue
            raise ConfigError(f"unknown config key {full!r}; allowed in [{prefix.rstrip('.') or 'top level'}]: {', '.join(names)}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{full} must be a table")
            value = _build(hints[key], value, f"{full}.", strict)
        else:
            value = _check_type(value, hints[key], full)
            if full in CHOICES and value not in CHOICES[full]:
                raise ConfigError(f"{full} = {value!r} is not allowed; choose one of: {', '.join(CHOICES[full])}")
            if full == "train.lr":
                unknown = set(value) - set(PHASE_NAMES)
                if unknown:
                    raise ConfigError(f"train.lr has unknown phase {sorted(unknown)[0]!r}; allowed: {', '.join(PHASE_NAMES)}")
                value = {**TrainConfig().lr, **value}
        setattr(obj, key, value)
    return obj


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        old = out.get(k)
        # A prior table that names another prior replaces the old one, whose arguments would not fit.
        renamed = k == "prior" and isinstance(v, dict) and isinstance(old, dict) and v.get("name", old.get("name")) != old.get("name")
        out[k] = _merge(old, v) if isinstance(v, dict) and isinstance(old, dict) and not renamed else v
    return out


def _parse_override(item: str) -> dict:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} must look like section.key=value, e.g. train.epochs=5")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word, e.g. model.regime=supervised
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def resolve_config_path(name: str | Path) -> Path:
    """A config file by path, or by name among the bundled ones (``aae train --config mnist_mixture_aae``)."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / f"{path.stem}.toml"
    if path.parent == Path(".") and path.suffix in ("", ".toml") and bundled.is_file():
        return bundled  # a bare name, never a mistyped path
    raise ConfigError(f"config {str(name)!r} not found; give a path, or one of: {', '.join(bundled_configs())}")


def bundled_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def from_dict(table: dict[str, Any], strict: bool = True) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from nested dicts (as in a TOML or JSON file).
    ``strict=False`` (for configs saved in checkpoints by another version) drops unknown keys with a warning."""
    return _build(ExperimentConfig, table, "", strict)


def load_config(path: str | Path | None = None, overrides: list[str] = (), base: dict | None = None) -> ExperimentConfig:
    """Read a TOML config (a path or a bundled name), apply ``section.key=value`` overrides, validate."""
    table: dict[str, Any] = dict(base or {})
    if path is not None:
        file = resolve_config_path(path)
        try:
            table = _merge(table, tomllib.loads(file.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    for item in overrides:
        table = _merge(table, _parse_override(item))
    return from_dict(table)
